"""The shipped question-answer chatbots (qa-en, qa-zh: Transformer encoder–decoder; gru-en, gru-zh:
GRU + Luong attention): they load by name without network and answer held-out questions."""

import pytest

import minigpt as mg
from minigpt.dialogue_pairs import make_pairs
from minigpt.rnn import GRUSeq2Seq
from minigpt.seq2seq import Seq2Seq, answer, beam_reply, encode_question, greedy_reply
from minigpt.seq2seq_measure import reply_loss, shuffled_questions, writable_pairs

# name: (class, a held-out dialogue split: never trained on)
SHIPPED = {"qa-en": (Seq2Seq, "dailydialog", "test"), "gru-en": (GRUSeq2Seq, "dailydialog", "test"),
           "qa-zh": (Seq2Seq, "kdconv", "test"), "gru-zh": (GRUSeq2Seq, "kdconv", "test")}


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("MINIGPT_OFFLINE", "1")
    monkeypatch.setattr(mg.data.urllib.request, "urlopen", lambda *a, **k: pytest.fail("tried the network"))


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_a_shipped_chatbot_loads_offline_and_answers_held_out_questions(name):
    kind, corpus, split = SHIPPED[name]
    model, tok = mg.pretrained.load(name)
    assert type(model) is kind and not model.training
    assert mg.pretrained.path(name).stat().st_size < 16_000_000  # small: 3.5M parameters at most
    assert mg.pretrained.training_history(name)["val_loss"]  # the real curve travels with it
    questions = [d[0] for d in mg.data.load_dialogues(corpus, split)[:10]]
    ended = 0
    for question in questions:
        ids = greedy_reply(model, encode_question(model, tok, question), max_new_tokens=model.config.block_size)
        text = answer(model, tok, question)
        assert text.strip() and text == tok.decode([i for i in ids if i != model.config.eos_id])
        beam = beam_reply(model, tok, encode_question(model, tok, question), beam_width=4,
                          max_new_tokens=model.config.block_size)
        assert beam.text.strip()
        ended += beam.best.finished and beam.best.ids[-1] == model.config.eos_id
    # small and briefly trained, they often talk until the length limit; but they have learned to stop
    assert ended >= 1


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_a_shipped_chatbot_listens_to_the_question(name):
    """Its held-out replies cost more after a shuffled question than after their own: the question is
    worth something to it. (A Transformer whose encoder collapsed, as under CPU bfloat16 autocast,
    scores them the same either way.)"""
    _, corpus, split = SHIPPED[name]
    model, tok = mg.pretrained.load(name)
    pairs = writable_pairs(make_pairs(mg.data.load_dialogues(corpus, split)[:60]), tok)[:256]
    worth = reply_loss(model, tok, shuffled_questions(pairs)) - reply_loss(model, tok, pairs)
    assert worth > 0.02, f"{name}: its own question lowers the loss of a reply by only {worth:.3f} nats per token"


def test_the_chat_command_answers_with_a_shipped_chatbot(monkeypatch, capsys):
    from minigpt.__main__ import main
    lines = iter(["How are you?", "¿ünknown ☃", ""])
    monkeypatch.setattr("builtins.input", lambda prompt="": next(lines))
    assert main(["chat", "--model", "qa-en", "--temperature", "0", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    model, tok = mg.pretrained.load("qa-en")
    for question in ("How are you?", "¿ünknown ☃"):  # byte-level BPE spells any text
        assert f"qa-en: {answer(model, tok, question)}" in out
    lines = iter(["¿ünknown ☃", "你好", ""])
    assert main(["chat", "--model", "qa-zh", "--temperature", "0", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    model, tok = mg.pretrained.load("qa-zh")
    assert "Try again" in out  # a character the model never saw: said, and the chat goes on
    assert f"qa-zh: {answer(model, tok, '你好')}" in out


def test_unknown_names_and_gpt_names_keep_their_own_paths():
    with pytest.raises(ValueError, match="available"):
        mg.pretrained.load("qa-fr")
    model, _ = mg.pretrained.load("shakespeare-char")
    assert isinstance(model, mg.GPT)


def test_reply_loss_is_per_token_whatever_the_batches_and_says_what_it_cannot_measure():
    model, tok = mg.pretrained.load("qa-zh")
    pairs = make_pairs(mg.data.load_dialogues("kdconv", "test")[:5])
    kept = writable_pairs(pairs + [(["☃"], "好")], tok)
    assert kept == writable_pairs(pairs, tok) and len(kept) > 10  # the snowman is no character it knows
    assert reply_loss(model, tok, kept, batch_size=3) == pytest.approx(reply_loss(model, tok, kept, batch_size=64), rel=1e-5)
    moved = shuffled_questions(kept)
    assert [r for _, r in moved] == [r for _, r in kept] and moved != kept
    with pytest.raises(ValueError, match="cannot write: keep writable_pairs"):
        reply_loss(model, tok, kept + [(["☃"], "好")])
    with pytest.raises(ValueError, match="no pairs"):
        reply_loss(model, tok, [])
