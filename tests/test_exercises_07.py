"""Notebook 07's checks accept the reference solutions, name the usual mistakes in one printed
line, and say 'not attempted' for an exercise left as given."""

import torch
from torch.nn import functional as F

from minigpt.exercises import seq2seq as check
from minigpt.exercises.solutions import seq2seq as S
from minigpt.rnn import LuongAttention

from verdicts import right, skipped, wrong


def test_padding_mask(capsys):
    right(capsys, check.padding_mask, S.my_padding_mask)
    skipped(capsys, check.padding_mask, lambda src, pad: None)
    wrong(capsys, check.padding_mask, lambda src, pad: src != pad, words=("[B, 1, 1, S]",))
    wrong(capsys, check.padding_mask, lambda src, pad: (src == pad)[:, None, None], words=("True at the padding",))
    wrong(capsys, check.padding_mask, lambda src, pad: (src != pad)[:, None, :, None], words=("queries",))
    wrong(capsys, check.padding_mask, lambda src, pad: (src != 0)[:, None, None], words=("pad_id",))
    wrong(capsys, check.padding_mask, lambda src, pad: (src != pad).long()[:, None, None], words=("bool",))
    wrong(capsys, check.padding_mask, lambda src, pad: src.foo, words=("AttributeError",))


def test_reference_general_score_is_the_package_luong_attention():
    h, enc, mask, W = check._general_inputs()
    luong = LuongAttention("general", W.size(0))
    with torch.no_grad():
        luong.W.weight.copy_(W)
        torch.testing.assert_close(luong(h, enc, mask), check.reference_general_attention(h, enc, mask, W))


def test_general_score(capsys):
    right(capsys, check.general_score, S.my_general_attention)
    skipped(capsys, check.general_score, lambda h, e, m, W: None)
    masked = lambda s, m: F.softmax(s.masked_fill(~m, float("-inf")), dim=-1)
    wrong(capsys, check.general_score, lambda h, e, m, W: masked((e @ h[:, :, None]).squeeze(-1), m), words=("dot",))
    wrong(capsys, check.general_score, lambda h, e, m, W: masked(((e @ W) @ h[:, :, None]).squeeze(-1), m),
          words=("W.T",))
    wrong(capsys, check.general_score, lambda h, e, m, W: F.softmax(((e @ W.T) @ h[:, :, None]).squeeze(-1), -1),
          words=("-inf",))
    wrong(capsys, check.general_score, lambda h, e, m, W: ((e @ W.T) @ h[:, :, None]).squeeze(-1)
          .masked_fill(~m, float("-inf")), words=("softmax",))
    wrong(capsys, check.general_score, lambda h, e, m, W: S.my_general_attention(h, e, m, W)[..., None],
          words=("[B, S]",))


def test_future_probe(capsys):
    right(capsys, check.future_probe, S.future_leaks)
    skipped(capsys, check.future_probe, lambda d, t: None)
    wrong(capsys, check.future_probe, lambda d, t: [], words=("nothing",))

    def exact(decode, tgt):  # == instead of a tolerance: the right decoder's float noise counts
        other = tgt.clone(); other[0, -1] += 1
        a, b = decode(tgt), decode(other)
        return [t for t in range(tgt.size(1)) if not torch.equal(a[0, t], b[0, t])]
    wrong(capsys, check.future_probe, exact, words=("last one",))


def test_the_leaky_decoder_leaks_and_the_right_one_does_not():
    tgt = check._PROBE_TGT
    assert S.future_leaks(check.make_decoder(check.causal_self_attention), tgt) == []
    assert S.future_leaks(check.make_decoder(check.leaky_self_attention), tgt) == list(range(tgt.size(1) - 1))


def test_fix_the_leak(capsys):
    right(capsys, check.fix_the_leak, S.fixed_self_attention)
    skipped(capsys, check.fix_the_leak, lambda q, k, v: None)
    wrong(capsys, check.fix_the_leak, check.leaky_self_attention, words=("leaky",))
    wrong(capsys, check.fix_the_leak, lambda q, k, v: F.softmax(q @ k.transpose(-2, -1) / 2, -1) @ v,
          words=("nothing is masked",))

    def strict(q, k, v):  # tril(-1): a query cannot see itself (and the first sees nothing)
        T = q.size(-2)
        s = (q @ k.transpose(-2, -1) / 2).masked_fill(~torch.ones(T, T, dtype=torch.bool).tril(-1), -1e9)
        return F.softmax(s, -1) @ v
    wrong(capsys, check.fix_the_leak, strict, words=("itself",))


def _tiny_bots():
    from minigpt.rnn import GRUConfig, GRUSeq2Seq
    from minigpt.seq2seq import Seq2Seq, Seq2SeqConfig
    from minigpt.tokenizer import CharTokenizer
    tok = CharTokenizer.from_text(check.EXPLORER_QUESTION + "abcdefghijklmnopqrstuvwxyz .?!",
                                  special_tokens=("<pad>", "<sos>", "<eos>", "<sep>"))
    ids = dict(vocab_size=tok.vocab_size, pad_id=tok.special_tokens["<pad>"], sos_id=tok.special_tokens["<sos>"],
               eos_id=tok.special_tokens["<eos>"], block_size=8)
    torch.manual_seed(0)
    return ((Seq2Seq(Seq2SeqConfig(src_block_size=64, n_layer=2, n_head=2, n_embd=16, **ids)).eval(), tok),
            (GRUSeq2Seq(GRUConfig(hidden_size=16, **ids)).eval(), tok))


def test_first_look(capsys):
    tf, gru = _tiny_bots()
    tokens, at, gru_at = check._first_looks(tf, gru)
    line = right(capsys, check.first_look, at, tf, gru)
    assert f"position {at}" in line and ("same place" in line or f"position {gru_at}" in line)
    right(capsys, check.first_look, tokens[at], tf, gru)
    skipped(capsys, check.first_look, None, tf, gru)
    wrong(capsys, check.first_look, len(tokens) + 3, tf, gru, words=("positions 0..",))
    wrong(capsys, check.first_look, (at + 2) % len(tokens), tf, gru, words=("tallest bar",))
    wrong(capsys, check.first_look, 2.5, tf, gru, words=("position",))
