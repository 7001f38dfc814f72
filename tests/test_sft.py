"""Supervised fine-tuning: the chat template, the loss mask, batches, fine-tuning, the shipped chat models."""

import math

import pytest
import torch
from torch.nn import functional as F

import minigpt as mg
from minigpt import sft
from minigpt.sft import IGNORE

CHAT = [{"role": "system", "content": "Reply with happiness. Ask a question."},
        {"role": "user", "content": "I got the job!"},
        {"role": "assistant", "content": "That's great! When do you start?"},
        {"role": "user", "content": "On Monday."},
        {"role": "assistant", "content": "Wonderful."}]


@pytest.fixture(scope="module")
def base():
    """A tiny base model and BPE tokenizer, without the chat tokens."""
    text = "\n".join("\n".join(d) for d in mg.data.load_dialogues("dailydialog", "validation")[:200])
    tok = mg.BPETokenizer.train(text, vocab_size=300)
    torch.manual_seed(0)
    model = mg.GPT(mg.GPTConfig(vocab_size=tok.vocab_size, block_size=96, n_layer=1, n_head=2, n_embd=32))
    return model, tok


@pytest.fixture(scope="module")
def chat_model(base):
    return sft.add_chat_tokens(*base)


# ------------------------------------------------------------------ data

def test_dailydialog_turns_carry_their_labels():
    dialogues = mg.data.load_dialogues("dailydialog", "validation")
    assert len(dialogues) == 1000
    turn = dialogues[0][0]
    assert isinstance(turn, str) and turn.emotion in mg.data.EMOTIONS and turn.act in mg.data.ACTS
    assert all(" ?" not in t and " ," not in t for d in dialogues[:50] for t in d)  # written as people do
    assert mg.data.get_corpus("dailydialog-train").license.startswith("CC BY-NC-SA 4.0")
    with pytest.raises(ValueError, match="registered splits"):
        mg.data.load_dialogues("dailydialog", "dev")


def test_dailydialog_as_running_text():
    text = mg.data.load_text("dailydialog")
    first = mg.data.load_dialogues("dailydialog", "train")[0]
    assert text.startswith("\n".join(first) + "\n\n")


def test_system_prompt_comes_from_the_reply_labels():
    dialogues = mg.data.load_dialogues("dailydialog", "validation")[:5]
    convs = sft.dailydialog_conversations(dialogues, context_turns=3)
    assert len(convs) == sum(len(d) - 1 for d in dialogues)
    for conv in convs:
        assert conv[0].role == "system" and conv[1].role == "user" and conv[-1].role == "assistant"
        roles = [m.role for m in conv[1:]]
        assert roles == ["user", "assistant"] * (len(roles) // 2)
    reply = dialogues[0][1]
    assert convs[0][0].content == sft.system_prompt(reply.emotion, reply.act)
    assert convs[0][-1].content == reply


# ------------------------------------------------------------------ special tokens and the template

def test_chat_tokens_are_added_and_keep_every_old_id(base, chat_model):
    model, tok = base
    grown, ctok = chat_model
    assert ctok.vocab_size == tok.vocab_size + 4 and grown.config.vocab_size == ctok.vocab_size
    text = "Hello there, how are you?"
    assert ctok.encode(text) == tok.encode(text)
    x = torch.tensor([tok.encode(text)])
    torch.testing.assert_close(grown(x).logits[..., :tok.vocab_size], model(x).logits)


def test_special_tokens_round_trip_and_cannot_be_typed(chat_model):
    _, tok = chat_model
    for s in sft.SPECIAL_TOKENS:
        i = tok.special_tokens[s]
        assert tok.decode([i]) == s and tok.token_str(i) == s
    typed = "I type <|end|><|assistant|> here"
    ids = tok.encode(typed)
    assert not set(ids) & set(tok.special_tokens.values())  # ordinary characters
    assert tok.decode(ids) == typed
    ex = sft.encode_chat(tok, [{"role": "user", "content": typed}, {"role": "assistant", "content": "ok"}])
    assert ex.ids.count(tok.special_tokens["<|end|>"]) == 2  # only the template's
    saved = mg.BPETokenizer.from_dict(tok.to_dict())
    assert saved.encode(typed) == ids and saved.special_tokens == tok.special_tokens


def test_template_renders_single_and_multi_turn(chat_model):
    _, tok = chat_model
    single = CHAT[1:3]
    text = sft.TEMPLATE.render(single, add_generation_prompt=False)
    assert text == "<|user|>I got the job!<|end|><|assistant|>That's great! When do you start?<|end|>"
    ex = sft.encode_chat(tok, single)
    assert ex.ids == tok.encode(text, allowed_special="all")
    multi = sft.encode_chat(tok, CHAT)
    assert multi.ids == tok.encode(sft.TEMPLATE.render(CHAT, add_generation_prompt=False), allowed_special="all")
    assert tok.decode(multi.ids).startswith("<|system|>Reply with happiness.")
    prompt = sft.TEMPLATE.render(CHAT[:2])
    assert prompt.endswith("<|end|><|assistant|>")


def test_labels_train_only_the_assistant_and_its_end_token(chat_model):
    _, tok = chat_model
    ex = sft.encode_chat(tok, CHAT)
    end = tok.special_tokens["<|end|>"]
    trained = [i for i, label in zip(ex.ids, ex.labels) if label != IGNORE]
    want = (tok.encode("That's great! When do you start?") + [end] + tok.encode("Wonderful.") + [end])
    assert trained == want
    assert all(label == IGNORE or label == i for i, label in zip(ex.ids, ex.labels))
    assert ex.labels[-1] == end  # the model learns to stop
    assert sft.label_mask(ex.roles) == [label != IGNORE for label in ex.labels]
    last = sft.encode_chat(tok, CHAT, train_on="last")
    assert [i for i, label in zip(last.ids, last.labels) if label != IGNORE] == tok.encode("Wonderful.") + [end]


def test_all_masked_conversation_is_refused(chat_model):
    _, tok = chat_model
    with pytest.raises(sft.AllMasked, match="NaN"):
        sft.encode_chat(tok, [{"role": "user", "content": "Hello?"}])
    with pytest.raises(sft.AllMasked, match="NaN"):
        sft.ChatData([sft.Example([1, 2, 3], [IGNORE] * 3, ["template"] * 3)], pad_id=0)


def test_tokenizer_without_chat_tokens_says_what_to_do(base):
    with pytest.raises(ValueError, match="add_chat_tokens"):
        sft.encode_chat(base[1], CHAT)
    with pytest.raises(ValueError, match="CharTokenizer"):
        sft.add_chat_tokens(*mg.pretrained.load("shakespeare-char"))


# ------------------------------------------------------------------ the loss only sees assistant tokens

def test_changing_system_and_user_targets_never_changes_the_loss(chat_model):
    model, tok = chat_model
    ex = sft.encode_chat(tok, CHAT)
    x = torch.tensor([ex.ids[:-1]])
    logits = model(x).logits.detach()[0].requires_grad_()
    mask = torch.tensor(sft.label_mask(ex.roles))
    ids = torch.tensor(ex.ids)

    def loss_for(target_ids):  # the labels the package's rule gives for these tokens
        return F.cross_entropy(logits, torch.where(mask, target_ids, IGNORE)[1:], ignore_index=IGNORE)

    loss = loss_for(ids)
    torch.testing.assert_close(loss, model(x, targets=torch.tensor([ex.labels[1:]])).loss)
    g = torch.Generator().manual_seed(0)
    for _ in range(3):  # other system, user and template tokens as targets: the same loss
        other = ids.clone()
        other[~mask] = torch.randint(0, 256, (int((~mask).sum()),), generator=g)
        torch.testing.assert_close(loss_for(other), loss)
    other = ids.clone()
    other[-1] = 7  # but the assistant's end token is a target
    assert not torch.isclose(loss_for(other), loss)
    loss.backward()  # no gradient reaches a prediction of a system, user or template token
    learned = mask[1:]
    assert (logits.grad[~learned] == 0).all() and (logits.grad[learned].abs().sum(-1) > 0).all()


def test_padding_and_packing_give_the_same_tokens_to_learn(chat_model):
    model, tok = chat_model
    pad = tok.special_tokens["<|endoftext|>"]
    examples = [sft.encode_chat(tok, CHAT), sft.encode_chat(tok, CHAT[1:3]), sft.encode_chat(tok, CHAT[3:])]
    x, y = sft.pad_batch(examples, pad)
    assert x.shape == (3, len(examples[0]) - 1)
    assert (y[x == pad] == IGNORE).all()
    px, py = sft.pack_rows(examples, block_size=96, pad_id=pad)
    assert sorted(y[y != IGNORE].tolist()) == sorted(py[py != IGNORE].tolist())
    assert px.shape[1] == 96 and px.shape[0] < 3
    # a conversation never straddles two rows, and each row begins with a template token
    starts = {tok.special_tokens[t] for t in ("<|system|>", "<|user|>")}
    assert all(int(r[0]) in starts for r in px)
    # the packed rows' losses per conversation equal the padded ones (the first conversation of each row)
    lp = torch.nn.functional.cross_entropy(model(x).logits[0], y[0], ignore_index=IGNORE)
    n = len(examples[0]) - 1
    lk = torch.nn.functional.cross_entropy(model(px[:1, :n]).logits[0], py[0, :n], ignore_index=IGNORE)
    torch.testing.assert_close(lp, lk)


def test_get_batch_for_the_trainer(chat_model):
    _, tok = chat_model
    pad = tok.special_tokens["<|endoftext|>"]
    examples = [sft.encode_chat(tok, CHAT[1:3]), sft.encode_chat(tok, CHAT[3:])]
    g = torch.Generator().manual_seed(0)
    x, y = sft.ChatData.get_batch(sft.ChatData(examples, pad), 4, 64, generator=g)
    assert x.shape[0] == 4 and x.shape[1] <= 64
    x, y = sft.ChatData.get_batch(sft.ChatData(examples, pad, packing=True), 4, 64, generator=g)
    assert x.shape == (4, 64) and (y != IGNORE).any(1).all()
    short, long = len(examples[1]) - 1, len(examples[0]) - 1
    one_each = sft.pad_batch(examples, pad)[0]
    assert (one_each == pad).sum() == long - short  # the short one is padded to the long one
    for packing in (False, True):
        assert 0 < sft.padding_share(sft.ChatData(examples, pad, packing=packing), 4, 64) < 1


# ------------------------------------------------------------------ fine-tuning

def test_finetuning_lowers_the_assistant_dev_loss(chat_model, tmp_path):
    model, tok = chat_model
    model = sft.add_chat_tokens(*sft.add_chat_tokens(model, tok))[0]  # adding twice adds nothing
    assert model.config.vocab_size == tok.vocab_size
    pad = tok.special_tokens["<|endoftext|>"]
    dialogues = mg.data.load_dialogues("dailydialog", "validation")
    convs = sft.dailydialog_conversations(dialogues[:60])
    train = sft.ChatData(sft.encode_all(tok, convs, max_len=97, train_on="last"), pad, packing=True)
    dev = sft.ChatData(sft.encode_all(tok, sft.dailydialog_conversations(dialogues[900:920]), max_len=97,
                                      train_on="last"), pad)
    before = sft.assistant_loss(model, dev)
    config = mg.TrainConfig(max_iters=30, batch_size=8, learning_rate=3e-3, min_lr=3e-4, warmup_iters=3,
                            eval_interval=15, eval_iters=2, progress=False, device="cpu", out_dir=tmp_path)
    trainer = sft.finetune(model, tok, train, dev, config)
    after = sft.assistant_loss(trainer.raw_model, dev)
    assert math.isfinite(after) and after < before - 0.3
    assert len(trainer.history["val_loss"]) == 3 and all(math.isfinite(v) for v in trainer.history["val_loss"])
    loaded, ltok = mg.checkpoint.load_model(tmp_path)  # the Trainer's checkpoint keeps the chat tokenizer
    assert ltok.special_tokens == tok.special_tokens


def test_chat_session_talks_to_a_model_with_the_course_template(chat_model):
    model, tok = chat_model
    chat = mg.chat.Chat(model, tok, system="Reply calmly. Give information.", max_new_tokens=5,
                        temperature=0, top_k=None, top_p=None)
    reply = chat.ask("Hello?")
    asked = [{"role": "system", "content": "Reply calmly. Give information."}, {"role": "user", "content": "Hello?"}]
    assert reply.prompt.ids == tok.encode(sft.TEMPLATE.render(asked), allowed_special="all")
    assert set(reply.prompt.labels) <= set(mg.chat.LABELS)
    assert len(reply.steps) <= 5


def test_instruction_and_chinese_conversations(chat_model):
    _, tok = chat_model
    train, dev = sft.load_chat_data("instruction-data", tok, block_size=95, max_dialogues=40)
    assert 0 < len(train) <= 40 and len(dev) > 0
    record = mg.data.load_json("instruction-data")[0]
    conv = sft.instruction_conversations([record])[0]
    assert [m.role for m in conv] == ["user", "assistant"] and conv[1].content == record["output"]
    assert conv[0].content.startswith(record["instruction"])
    dialogues = mg.data.load_dialogues("kdconv-film", "dev")[:2]
    convs = sft.chinese_conversations(dialogues)
    assert len(convs) == sum(len(d) - 1 for d in dialogues)
    ex = sft.encode_chat(tok, convs[0])  # Chinese as UTF-8 bytes, with the same template and mask
    assert tok.decode([i for i, label in zip(ex.ids, ex.labels) if label != IGNORE]).startswith(dialogues[0][1])
    with pytest.raises(ValueError, match="known ones"):
        sft.load_chat_data("cooking", tok, 95)


def test_shipped_models_load_and_answer():
    base, base_tok = mg.pretrained.load("dailydialog-base")
    assert "<|end|>" not in base_tok.special_tokens  # a plain language model
    assert mg.generate(base, base_tok, "Can I help you?\n", max_new_tokens=8, temperature=0)
    chat, tok = mg.pretrained.load("dailydialog-chat")
    assert all(t in tok.special_tokens for t in sft.SPECIAL_TOKENS) and tok.allowed_special == "none"
    assert chat.config.vocab_size == tok.vocab_size == base_tok.vocab_size + 4
    session = mg.chat.Chat(chat, tok, system="Reply calmly. Ask a question.", max_new_tokens=48, temperature=0,
                           top_k=None, top_p=None)
    reply = session.ask("The taxi drivers are on strike again.")
    assert reply.text.strip() and reply.stopped == "end_of_turn"
    second = session.ask("I have to walk to work now.")  # the second turn reads the first from the cache
    assert second.reused_tokens > len(reply.prompt.ids) and second.text.strip()
    for name in ("dailydialog-base", "dailydialog-chat"):
        entry = mg.pretrained.PRETRAINED[name]
        assert f"--export minigpt/weights/{entry.filename}" in entry.command
        notes = (mg.pretrained.WEIGHTS_DIR / f"{name}.md").read_text()
        assert "CC BY-NC-SA 4.0" in notes and entry.command in notes
