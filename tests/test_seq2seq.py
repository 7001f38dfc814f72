"""The Transformer encoder–decoder (minigpt.seq2seq) and the question-answer pairs (minigpt.dialogue_pairs)."""

import math

import pytest
import torch
import torch.nn.functional as F

import minigpt as mg
from minigpt.dialogue_pairs import PairData, Seq2SeqBatch, encode_pair, make_pairs, pad_pairs
from minigpt.seq2seq import Seq2Seq, Seq2SeqConfig, beam_reply, greedy_reply, sample_reply

from seq2seq_toys import EOS, PAD, SOS, V, IdTokenizer


def tiny(**kw) -> Seq2Seq:
    torch.manual_seed(0)
    cfg = dict(vocab_size=V, block_size=12, src_block_size=10, n_layer=2, n_head=2, n_embd=16)
    return Seq2Seq(Seq2SeqConfig(**{**cfg, **kw})).eval()


def question(n, seed=1):
    return torch.randint(3, V, (n,), generator=torch.Generator().manual_seed(seed))


def reply_input(n, seed=2):
    t = torch.randint(3, V, (1, n), generator=torch.Generator().manual_seed(seed))
    t[0, 0] = SOS
    return t


# ------------------------------------------------------------------ the model

def test_attention_maps_have_the_documented_shapes():
    model = tiny()
    src = torch.stack([question(7), question(7, seed=3)])
    out = model(src, reply_input(5).expand(2, 5), return_attention=True)
    assert out.logits.shape == (2, 5, V)
    assert [a.shape for a in out.encoder_attentions] == [(2, 2, 7, 7)] * 2
    assert [a.shape for a in out.decoder_attentions] == [(2, 2, 5, 5)] * 2
    assert [a.shape for a in out.cross_attentions] == [(2, 2, 5, 7)] * 2


@pytest.mark.parametrize("readable", [False, True])
def test_padding_in_the_question_never_changes_the_answers_logits(readable):
    model = tiny()
    q, tgt = question(4), reply_input(6)
    alone = model(q[None], tgt, return_attention=readable).logits
    # the same question padded to 9 tokens; the padding holds ordinary ids, only the mask says "padding"
    padded = torch.cat((q, question(5, seed=9)))[None]
    mask = torch.arange(9)[None] < 4
    batched = model(padded, tgt, src_mask=mask, return_attention=readable).logits
    torch.testing.assert_close(batched, alone, atol=1e-5, rtol=1e-5)
    # and in a batch beside a longer question, padded with pad ids
    src = torch.stack((torch.cat((q, torch.full((5,), PAD))), question(9, seed=5)))
    torch.testing.assert_close(model(src, tgt.expand(2, 6)).logits[:1], alone, atol=1e-5, rtol=1e-5)


def test_the_decoder_never_sees_the_future():
    model = tiny()
    q, tgt = question(5)[None], reply_input(8)
    base = model(q, tgt).logits
    for k in range(1, 8):
        changed = tgt.clone()
        changed[0, k:] = torch.randint(3, V, (8 - k,), generator=torch.Generator().manual_seed(k))
        out = model(q, changed).logits
        torch.testing.assert_close(out[:, :k], base[:, :k])
        assert not torch.allclose(out[:, k:], base[:, k:])  # and it does see the present


def test_cross_attention_rows_sum_to_one_and_skip_padding():
    model = tiny()
    src = torch.stack((torch.cat((question(3), torch.full((4,), PAD))), question(7)))
    out = model(src, reply_input(5).expand(2, 5), return_attention=True)
    for att in out.cross_attentions + out.encoder_attentions:
        torch.testing.assert_close(att.sum(-1), torch.ones(att.shape[:-1]))
        assert att[0, ..., 3:].abs().max() == 0  # no weight on the first question's padding


def test_readable_and_fast_paths_agree():
    model = tiny()
    src = torch.stack((torch.cat((question(3), torch.full((4,), PAD))), question(7)))
    tgt = reply_input(6).expand(2, 6)
    torch.testing.assert_close(model(src, tgt, return_attention=True).logits, model(src, tgt).logits)


def test_cached_decoding_equals_recomputation():
    model = tiny()
    q, tgt = question(6)[None], reply_input(10)
    full = model(q, tgt).logits
    state = model.start(q)
    with torch.no_grad():
        first, state = model.step(tgt[:, :3], state)  # a prefix at once, then one token at a time
        steps = [first] + [model.step(tgt[:, t:t + 1], state)[0] for t in range(3, 10)]
    torch.testing.assert_close(torch.stack(steps, dim=1), full[:, 2:], atol=1e-5, rtol=1e-5)
    assert state.cache.length == 10


def test_greedy_reply_is_the_argmax_of_recomputing_every_step():
    model = tiny()
    q = question(5)
    reply = greedy_reply(model, q, max_new_tokens=11)
    seq = [SOS]
    for _ in range(len(reply)):
        logits = model(q[None], torch.tensor([seq])).logits[0, -1]
        logits[[PAD, SOS]] = float("-inf")  # no reply holds <pad> or <sos>
        seq.append(int(logits.argmax()))
    assert reply == seq[1:]


def test_no_reply_holds_pad_or_sos_even_when_the_model_scores_them_highest():
    model = tiny()
    decode = model.decode

    def loud_decode(*args, **kwargs):  # every step's top logits: <pad>, then <sos>
        logits, *rest = decode(*args, **kwargs)
        return (logits + 100 * F.one_hot(torch.tensor(PAD), V) + 90 * F.one_hot(torch.tensor(SOS), V), *rest)

    model.decode = loud_decode
    q = question(5)
    assert int(model(q[None], torch.tensor([[SOS]])).logits[0, -1].argmax()) == PAD
    for reply in (greedy_reply(model, q, max_new_tokens=8), sample_reply(model, q, 8, seed=0),
                  beam_reply(model, IdTokenizer(), q, beam_width=3, max_new_tokens=8).best.ids):
        assert reply and not {PAD, SOS} & set(reply)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_beam_width_one_is_greedy(seed):
    model = tiny(eos_id=5 + seed)  # an eos some random models reach, others not
    q = question(6, seed=seed)
    beam = beam_reply(model, IdTokenizer(), q, beam_width=1, max_new_tokens=12, length_penalty=0)
    assert beam.best.ids == greedy_reply(model, q, max_new_tokens=12)


def test_beam_search_finds_beams_at_least_as_likely_as_greedy():
    model = tiny()
    q = question(6)
    result = beam_reply(model, IdTokenizer(), q, beam_width=4, max_new_tokens=8, length_penalty=0)
    greedy = greedy_reply(model, q, max_new_tokens=8)
    seq = torch.tensor([[SOS] + greedy])
    logprobs = model(q[None], seq[:, :-1]).logits.log_softmax(-1)[0]
    greedy_total = float(logprobs.detach().gather(1, seq[0, 1:, None]).sum())
    assert result.best.logprob >= greedy_total - 1e-4
    assert len(result.beams) == 4


def test_scheduled_sampling_mixes_the_models_own_predictions():
    model = tiny(teacher_forcing_ratio=0.0).train()
    q, tgt = question(5)[None], reply_input(8)
    memory, mask, _ = model.encode(q)
    from minigpt.seq2seq import DecoderState
    state = DecoderState([b.cross.keys_values(memory) for b in model.decoder], mask)
    mixed = model._scheduled_sampling(tgt, state)
    predicted = model.decode(tgt, state)[0].argmax(-1)
    assert mixed[0, 0] == SOS and torch.equal(mixed[0, 1:], predicted[0, :-1])


def copy_task(n=64, seed=0):
    """Pairs whose reply is the question: a task a tiny model learns in a few dozen steps."""
    g = torch.Generator().manual_seed(seed)
    examples = []
    for _ in range(n):
        q = torch.randint(3, V, (int(torch.randint(2, 6, (1,), generator=g)),), generator=g).tolist()
        examples.append((q, [SOS] + q + [EOS]))
    return PairData(examples, pad_id=PAD)


def test_auto_precision_keeps_the_encoder_decoder_in_float32_on_a_cpu(monkeypatch):
    from minigpt import train as train_module
    from minigpt.rnn import GRUConfig, GRUSeq2Seq
    monkeypatch.setattr(train_module, "cpu_has_native_bfloat16", lambda: True)  # as on a CPU with bfloat16 units
    cfg = mg.TrainConfig(max_iters=1, batch_size=2, device="cpu", progress=False)
    gru = GRUSeq2Seq(GRUConfig(vocab_size=V, hidden_size=8, block_size=8))
    assert mg.Trainer(tiny(block_size=8), copy_task(), None, cfg, get_batch=PairData.get_batch).dtype == torch.float32
    assert mg.Trainer(gru, copy_task(), None, cfg, get_batch=PairData.get_batch).dtype == torch.bfloat16
    forced = mg.TrainConfig(max_iters=1, batch_size=2, device="cpu", progress=False, dtype="bfloat16")
    assert mg.Trainer(tiny(block_size=8), copy_task(), None, forced, get_batch=PairData.get_batch).dtype == torch.bfloat16


@pytest.mark.parametrize("ratio", [1.0, 0.0])
def test_teacher_forcing_ratio_zero_and_one_both_train_through_the_trainer(ratio, tmp_path):
    model = tiny(teacher_forcing_ratio=ratio, block_size=8)
    before = [p.detach().clone() for p in model.parameters()]
    cfg = mg.TrainConfig(max_iters=40, batch_size=16, learning_rate=3e-3, min_lr=3e-4, warmup_iters=0,
                         eval_interval=40, eval_iters=4, device="cpu", progress=False, out_dir=tmp_path)
    trainer = mg.Trainer(model, copy_task(), copy_task(seed=1), cfg, get_batch=PairData.get_batch)
    history = trainer.fit()
    assert history["val_loss"][-1] < history["val_loss"][0] - 0.2
    assert all(not torch.equal(b, p) for b, p in zip(before, model.parameters()))
    # the checkpoint is the package's: the same model resumes from it
    resumed = mg.Trainer(tiny(teacher_forcing_ratio=ratio, block_size=8), copy_task(), None, cfg,
                         get_batch=PairData.get_batch).resume()
    assert resumed.step == 40
    for a, b in zip(resumed.raw_model.parameters(), model.parameters()):
        torch.testing.assert_close(a, b)


# ------------------------------------------------------------------ bad input

def test_bad_input_gets_a_clear_error():
    model = tiny()
    tgt = reply_input(3)
    with pytest.raises(ValueError, match="torch.long"):
        model(torch.rand(1, 4), tgt)
    with pytest.raises(ValueError, match="encode text"):
        model("hello", tgt)
    with pytest.raises(ValueError, match="outside the vocabulary"):
        model(torch.tensor([[3, V]]), tgt)
    with pytest.raises(ValueError, match="src_block_size"):
        model(question(11)[None], tgt)
    with pytest.raises(ValueError, match="all padding"):
        model(torch.tensor([[3, 4], [PAD, PAD]]), tgt.expand(2, 3))
    with pytest.raises(ValueError, match="block_size"):
        model(question(4)[None], reply_input(13))
    with pytest.raises(ValueError, match="decoder input tgt"):
        model(question(4)[None])
    with pytest.raises(ValueError, match="rows"):
        model(question(4)[None], tgt.expand(2, 3))
    with pytest.raises(ValueError, match="max_new_tokens"):
        greedy_reply(model, question(4), max_new_tokens=13)
    with pytest.raises(ValueError, match="one question"):
        greedy_reply(model, torch.stack((question(4), question(4))), max_new_tokens=5)
    with pytest.raises(ValueError, match="n_head"):
        Seq2SeqConfig(n_embd=30, n_head=4)
    with pytest.raises(ValueError, match="eos_id"):
        Seq2SeqConfig(vocab_size=10, eos_id=10)
    with pytest.raises(ValueError, match="teacher_forcing_ratio"):
        Seq2SeqConfig(teacher_forcing_ratio=1.5)
    with pytest.raises(TypeError, match="Seq2SeqConfig"):
        Seq2Seq(mg.GPTConfig())


# ------------------------------------------------------------------ pairs

def test_pairs_take_the_previous_k_turns_as_context():
    d = ["hi", "hello", "how are you?", "fine"]
    assert make_pairs([d]) == [(["hi"], "hello"), (["hello"], "how are you?"), (["how are you?"], "fine")]
    assert make_pairs([d], context_turns=2)[2] == (["hello", "how are you?"], "fine")
    assert make_pairs([d], context_turns=9)[2] == (d[:3], "fine")


def test_pairing_edge_cases():
    assert make_pairs([["only one turn"]]) == []          # nothing replies to it
    assert make_pairs([[]]) == []
    # an empty turn is skipped as if it were not there: never a reply, never a context
    assert make_pairs([["a", "", "  ", "b"]]) == [(["a"], "b")]
    with pytest.raises(ValueError, match="list of turns"):
        make_pairs(["a dialogue given as one str"])
    with pytest.raises(ValueError, match="not a str"):
        make_pairs([["a", 3]])
    with pytest.raises(ValueError, match="context_turns"):
        make_pairs([["a", "b"]], context_turns=0)


def encode(text):
    return [3 + ord(c) % 20 for c in text]


def test_an_over_long_question_keeps_its_end_and_a_long_reply_loses_its_eos():
    src, tgt = encode_pair(["abcdef", "ghij"], "xy", encode, sos_id=SOS, eos_id=EOS, max_src_len=5,
                           max_tgt_len=8, sep_ids=[PAD + 23])
    assert src == ([23] + encode("ghij"))  # the last 5 ids: the separator and the latest turn
    assert tgt == [SOS] + encode("xy") + [EOS]
    _, tgt = encode_pair("q", "abcdefgh", encode, sos_id=SOS, eos_id=EOS, max_src_len=5, max_tgt_len=4)
    assert tgt == [SOS] + encode("abcd")  # 4 tokens predicted, none of them <eos>
    with pytest.raises(ValueError, match="empty"):
        encode_pair(["", " "], "x", encode, sos_id=SOS, eos_id=EOS, max_src_len=5, max_tgt_len=4)
    with pytest.raises(ValueError, match="empty"):
        encode_pair("q", "", encode, sos_id=SOS, eos_id=EOS, max_src_len=5, max_tgt_len=4)
    with pytest.raises(ValueError, match="max_src_len"):
        encode_pair("q", "a", encode, sos_id=SOS, eos_id=EOS, max_src_len=0, max_tgt_len=4)


def test_batches_are_padded_masked_and_bucketed_by_length():
    batch, targets = pad_pairs([([5, 6, 7], [SOS, 8, EOS]), ([9], [SOS, 10, 11, 12, EOS])], PAD)
    assert isinstance(batch, Seq2SeqBatch)
    assert batch.src.tolist() == [[5, 6, 7], [9, PAD, PAD]]
    assert batch.src_mask.tolist() == [[True] * 3, [True, False, False]]
    assert batch.tgt.tolist() == [[SOS, 8, PAD, PAD], [SOS, 10, 11, 12]]
    assert targets.tolist() == [[8, EOS, -100, -100], [10, 11, 12, EOS]]
    # 200 pairs of lengths 1..200: a batch of 4 from buckets of 8 spans fewer than 8 lengths
    data = PairData([([3] * n, [SOS, 4, EOS]) for n in range(1, 201)], pad_id=PAD, bucket_size=8)
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        x, _ = PairData.get_batch(data, 4, 8, generator=g)
        lengths = x.src_mask.sum(1)
        assert int(lengths.max() - lengths.min()) < 8
    with pytest.raises(ValueError, match="max_tgt_len"):
        PairData.get_batch(PairData([([3], [SOS] + [4] * 9)], PAD), 1, 8)
    with pytest.raises(ValueError, match="at least one pair"):
        PairData([], PAD)


def test_pairs_from_dailydialog():
    dialogues = mg.data.load_dialogues("dailydialog", "validation")[:50]
    pairs = make_pairs(dialogues, context_turns=2)
    assert len(pairs) == sum(len([t for t in d if t.strip()]) - 1 for d in dialogues)
    tok = mg.CharTokenizer.from_text("".join(t for d in dialogues for t in d), special_tokens=("<pad>", "<sos>", "<eos>", "<sep>"))
    ids = tok.special_tokens
    data = PairData.from_pairs(pairs, tok, pad_id=ids["<pad>"], sos_id=ids["<sos>"], eos_id=ids["<eos>"],
                               max_src_len=64, max_tgt_len=32, sep_ids=[ids["<sep>"]])
    assert len(data) == len(pairs) and max(len(s) for s, _ in data.examples) <= 64
    x, y = PairData.get_batch(data, 8, 32, generator=torch.Generator().manual_seed(0))
    assert x.src.shape[0] == 8 and y.shape == x.tgt.shape and y.shape[1] <= 32


@pytest.mark.parametrize("kind", ["transformer", "gru"])
def test_the_training_command_trains_and_answers(kind, capsys, tmp_path):
    from minigpt.seq2seq_train import main
    main(["--model", kind, "--limit", "20", "--max-iters", "2", "--eval-iters", "1", "--n-embd", "16",
          "--n-head", "2", "--n-layer", "1", "--batch-size", "4", "--max-tgt-len", "8", "--reply-pairs", "6", "--out-dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert "dev loss" in out and "BLEU-2" in out and out.count("   greedy:") == 5 and (tmp_path / "ckpt.pt").is_file()


def test_bpe_pairs_learn_their_pieces_from_the_training_split_and_read_special_text_as_plain(tmp_path, capsys):
    from minigpt.seq2seq import answer, encode_question, load_seq2seq
    from minigpt.seq2seq_train import main, qa_data
    tok, train, dev, _ = qa_data("dailydialog", limit=20, max_src_len=24, max_tgt_len=12, tokenizer="bpe", vocab_size=300)
    assert isinstance(tok, mg.BPETokenizer) and tok.vocab_size == 300 and set(tok.special_tokens) == {"<pad>", "<sos>", "<eos>", "<sep>"}
    assert "<eos>" not in tok.decode(tok.encode("Fine, and you?"))  # no special id comes from typed text...
    assert tok.special_tokens["<eos>"] not in tok.encode("ok <eos>")  # ...even when it spells one
    specials = set(tok.special_tokens.values()) - {tok.special_tokens["<sep>"]}
    assert all(max(src) < tok.vocab_size and not specials & set(src) for src, _ in dev.examples)
    line = mg.data.load_dialogues("dailydialog", "train")[0][0]
    assert tok.decode(tok.encode(line)) == line and len(tok.encode(line)) < 0.8 * len(line)  # pieces, not bytes
    with pytest.raises(ValueError, match="'char' or 'bpe'"):
        qa_data("dailydialog", limit=2, tokenizer="words")
    with pytest.raises(SystemExit):  # the command says it in one line, with its usage
        main(["--tokenizer", "bpe", "--vocab-size", "100", "--limit", "2"])
    assert "vocab_size must be at least 260" in capsys.readouterr().err
    main(["--tokenizer", "bpe", "--vocab-size", "300", "--limit", "20", "--max-iters", "2", "--eval-iters", "1",
          "--n-embd", "16", "--n-head", "2", "--n-layer", "1", "--batch-size", "4", "--max-tgt-len", "8",
          "--reply-pairs", "2", "--export", str(tmp_path / "qa.pt")])
    model, loaded = load_seq2seq(tmp_path / "qa.pt")
    assert loaded.to_dict() == tok.to_dict() and loaded.allowed_special == "none"
    assert loaded.special_tokens["<sep>"] not in encode_question(model, loaded, "a <sep> b")
    assert isinstance(answer(model, loaded, "How are you?"), str)


def test_bleu_and_distinct_by_hand():
    from minigpt.reply_metrics import bleu, distinct
    assert bleu(["the cat sat"], ["the cat sat"]) == pytest.approx(1.0)
    # "the" twice counts once (clipped): unigrams 3 of 4 match, bigrams 2 of 3
    assert bleu(["the cat sat"], ["the the cat sat"]) == pytest.approx(math.sqrt(3 / 4 * 2 / 3))
    # a short reply pays the brevity penalty exp(1 - 4/2)
    assert bleu(["the cat sat down"], ["the cat"]) == pytest.approx(math.exp(1 - 2))
    assert bleu(["a b"], ["c d"]) == 0.0
    assert bleu(["我很好"], ["我很好"], units=list) == pytest.approx(1.0)
    assert distinct(["i do not know", "i do not know"], 1) == pytest.approx(4 / 8)
    assert distinct(["a b c", "c b a"], 2) == pytest.approx(4 / 4)
    assert distinct([""], 1) == 0.0
    with pytest.raises(ValueError, match="one reference per reply"):
        bleu(["a"], ["a", "b"])
    with pytest.raises(ValueError, match="list of str"):
        distinct("a reply given as one str")


# ------------------------------------------------------------------ decoder learning rate, decoding knobs, saving

@pytest.mark.parametrize("kind", ["transformer", "gru"])
def test_the_decoder_group_learns_at_its_own_scaled_rate(kind):
    from minigpt.rnn import GRUConfig, GRUSeq2Seq
    torch.manual_seed(0)
    model = tiny(decoder_lr_scale=3.0) if kind == "transformer" else GRUSeq2Seq(
        GRUConfig(vocab_size=V, hidden_size=16, block_size=8, decoder_lr_scale=3.0))
    groups = model.optim_groups(0.1)
    decoder = {id(p) for g in groups if g["name"].startswith("decoder") for p in g["params"]}
    everything = [p for g in groups for p in g["params"]]
    assert len(everything) == len({id(p) for p in everything}) == len(list(model.parameters()))  # each once
    shared = model.wte.weight if kind == "transformer" else model.embedding.weight
    assert id(shared) not in decoder  # the embedding both sides read learns at the base rate
    head = model.decoder[0].cross.q_proj.weight if kind == "transformer" else model.decoder.out.weight
    assert id(head) in decoder
    cfg = mg.TrainConfig(max_iters=1, batch_size=4, learning_rate=1e-3, min_lr=1e-4, warmup_iters=0,
                         eval_interval=10, eval_iters=1, device="cpu", progress=False)
    trainer = mg.Trainer(model, copy_task(), None, cfg, get_batch=PairData.get_batch)
    trainer.fit()
    lrs = {g["name"]: g["lr"] for g in trainer.optimizer.param_groups}
    assert lrs["decoder weights"] == pytest.approx(3.0 * lrs["encoder weights"])
    assert lrs["encoder weights"] == pytest.approx(mg.train.lr_at(0, cfg))
    assert GRUConfig().decoder_lr_scale == 5.0 and Seq2SeqConfig().decoder_lr_scale == 1.0  # the tutorial's 5
    with pytest.raises(ValueError, match="decoder_lr_scale"):
        Seq2SeqConfig(decoder_lr_scale=0)


def test_greedy_with_a_repetition_penalty_is_the_argmax_of_the_penalised_logits():
    from minigpt.sampling import apply_repetition_penalty
    model = tiny()
    q = question(5)
    plain = greedy_reply(model, q, max_new_tokens=11)
    reply = greedy_reply(model, q, max_new_tokens=11, repetition_penalty=3.0)
    seq = [SOS]
    for _ in range(len(reply)):
        logits = model(q[None], torch.tensor([seq])).logits[0, -1]
        logits[[PAD, SOS]] = float("-inf")
        seq.append(int(apply_repetition_penalty(logits, seq, 3.0).argmax()))  # the reply so far, <sos> too
    assert reply == seq[1:]
    assert len(set(plain)) < len(plain) and reply != plain  # this random model repeats itself without it
    with pytest.raises(ValueError, match="repetition_penalty"):
        greedy_reply(model, q, repetition_penalty=0)


@pytest.mark.parametrize("penalty", [1.0, 1.5, 4.0])
def test_beam_width_one_is_greedy_with_a_repetition_penalty_too(penalty):
    model = tiny(eos_id=6)
    q = question(6)
    beam = beam_reply(model, IdTokenizer(), q, beam_width=1, max_new_tokens=12, length_penalty=0,
                      repetition_penalty=penalty)
    assert beam.best.ids == greedy_reply(model, q, max_new_tokens=12, repetition_penalty=penalty)


def test_sampled_replies_follow_the_seed_and_temperature_zero_is_greedy():
    from minigpt.seq2seq import sample_reply
    model = tiny()
    q = question(5)
    assert sample_reply(model, q, 10, temperature=1.0, seed=3) == sample_reply(model, q, 10, temperature=1.0, seed=3)
    assert sample_reply(model, q, 10, temperature=0) == greedy_reply(model, q, 10)
    assert sample_reply(model, q, 10, temperature=5.0, top_k=1, seed=0) == greedy_reply(model, q, 10)


class CharTok(IdTokenizer):
    """Letters a..u as ids 3..23, <pad> <sos> <eos> as 0 1 2, no <sep>."""

    special_tokens = {"<pad>": PAD, "<sos>": SOS, "<eos>": EOS}

    def encode(self, text, allowed_special="all"):
        if any(not "a" <= c <= "u" for c in text):
            raise ValueError(f"characters not in the vocabulary: {text!r}")
        return [3 + ord(c) - ord("a") for c in text]


def test_answer_encodes_crops_and_decodes():
    from minigpt.seq2seq import answer, encode_question
    model = tiny()
    assert encode_question(model, CharTok(), "abc") == [3, 4, 5]
    assert encode_question(model, CharTok(), "abcdefghijklm") == CharTok().encode("defghijklm")  # the last 10
    assert encode_question(model, CharTok(), ["ab", " ", "c"]) == [3, 4, 5]  # no <sep>: turns run together
    ids = greedy_reply(model, [3, 4, 5], max_new_tokens=12)
    text = answer(model, CharTok(), "abc")
    assert text == CharTok().decode([i for i in ids if i != EOS])
    assert answer(model, CharTok(), "abc", beam_width=3, max_new_tokens=5) == beam_reply(
        model, CharTok(), [3, 4, 5], beam_width=3, max_new_tokens=5).text
    with pytest.raises(ValueError, match="empty"):
        answer(model, CharTok(), "  ")
    with pytest.raises(ValueError, match="not in the vocabulary"):
        answer(model, CharTok(), "xyz!")


@pytest.mark.parametrize("kind", ["transformer", "gru"])
def test_a_saved_model_loads_back_with_the_same_logits(kind, tmp_path):
    from minigpt.rnn import GRUConfig, GRUSeq2Seq
    from minigpt.seq2seq import export_seq2seq, load_seq2seq
    torch.manual_seed(0)
    model = tiny() if kind == "transformer" else GRUSeq2Seq(GRUConfig(vocab_size=V, hidden_size=16)).eval()
    tok = mg.CharTokenizer.from_text("abc", special_tokens=("<pad>", "<sos>", "<eos>"))
    path = export_seq2seq(tmp_path / "m.pt", model, tok, extra={"note": "x"})
    loaded, tok2 = load_seq2seq(path)
    assert type(loaded) is type(model) and loaded.config == model.config and not loaded.training
    assert tok2.encode("cab") == tok.encode("cab")
    q, tgt = question(5)[None], reply_input(6)
    torch.testing.assert_close(loaded(q, tgt).logits, model(q, tgt).logits)
    # a Trainer checkpoint (no model_class recorded) is recognised from its config's fields
    mg.checkpoint.save_checkpoint(tmp_path / "ckpt.pt", model)
    assert type(load_seq2seq(tmp_path)[0]) is type(model)


def test_loading_the_wrong_kind_of_file_says_what_to_do(tmp_path):
    from minigpt.seq2seq import export_seq2seq, load_seq2seq
    gpt = mg.GPT(mg.GPTConfig(vocab_size=V, block_size=8, n_layer=1, n_head=2, n_embd=16))
    mg.checkpoint.export_weights(tmp_path / "gpt.pt", gpt)
    with pytest.raises(mg.checkpoint.CheckpointError, match="load_model"):
        load_seq2seq(tmp_path / "gpt.pt")
    with pytest.raises(TypeError, match="export_weights"):
        export_seq2seq(tmp_path / "x.pt", gpt)
    with pytest.raises(mg.checkpoint.CheckpointError, match="no checkpoint found"):
        load_seq2seq(tmp_path / "missing.pt")
    path = export_seq2seq(tmp_path / "m.pt", tiny())
    ckpt = torch.load(path, weights_only=True)
    ckpt["model_config"]["n_embd"] = 32  # weights of a 16-wide model under a 32-wide config
    torch.save(ckpt, path)
    with pytest.raises(mg.checkpoint.CheckpointError, match="do not fit"):
        load_seq2seq(path)
