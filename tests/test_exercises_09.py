"""Notebook 09's checks accept the reference solutions, name the usual mistakes in one printed
line, and say 'not attempted' for an exercise left as given."""

import torch
import torch.nn.functional as F

import minigpt as mg
from minigpt.exercises import real_chat as check
from minigpt.exercises.solutions import real_chat as S
from minigpt.model import apply_rope, rope_cos_sin
from minigpt.viz.chat import ChatWidget

from verdicts import right, skipped, wrong


def test_rms_norm(capsys):
    right(capsys, check.rms_norm, S.my_rms_norm)
    skipped(capsys, check.rms_norm, lambda x, w, eps: None)
    wrong(capsys, check.rms_norm, lambda x, w, eps: F.layer_norm(x, x.shape[-1:], w, None, eps), words=("LayerNorm",))
    wrong(capsys, check.rms_norm, lambda x, w, eps: F.rms_norm(x, x.shape[-1:], None, eps), words=("gain",))
    wrong(capsys, check.rms_norm, lambda x, w, eps: x / x.pow(2).mean(-1, keepdim=True).sqrt() * w, words=("eps",))
    wrong(capsys, check.rms_norm, lambda x, w, eps: x / (x.pow(2).sum(-1, keepdim=True) + eps).sqrt() * w,
          words=("mean",))
    wrong(capsys, check.rms_norm, lambda x, w, eps: {}["oops"], words=("KeyError",))


def test_rope(capsys):
    right(capsys, check.rope, S.my_rope)
    skipped(capsys, check.rope, lambda x, p, b: None)
    wrong(capsys, check.rope, lambda x, p, b: x, words=("nothing turned",))
    wrong(capsys, check.rope, lambda x, p, b: S.my_rope(x, -p, b), words=("wrong way",))
    wrong(capsys, check.rope, lambda x, p, b: S.my_rope(x, p + 1, b), words=("off by one",))

    def adjacent_pairs(x, p, b):  # the other convention: (0, 1), (2, 3) ...
        D = x.size(-1)
        perm = torch.cat((torch.arange(0, D, 2), torch.arange(1, D, 2)))
        return S.my_rope(x[..., perm], p, b)[..., torch.argsort(perm)]
    wrong(capsys, check.rope, adjacent_pairs, words=("adjacent",))
    cos, sin = rope_cos_sin(torch.arange(3), 8, 10.0)
    x = torch.randn(1, 1, 3, 8)
    torch.testing.assert_close(S.my_rope(x, torch.arange(3), 10.0), apply_rope(x, cos, sin))


def test_chatml(capsys):
    right(capsys, check.chatml, S.my_chatml)
    skipped(capsys, check.chatml, lambda m, g: None)
    wrong(capsys, check.chatml, lambda m, g: S.my_chatml(m, False), words=("assistant",))
    wrong(capsys, check.chatml, lambda m, g: S.my_chatml(m, g).replace("<|im_end|>\n", "<|im_end|>"),
          words=("line break",))
    wrong(capsys, check.chatml, lambda m, g: 42, words=("str",))


def test_kv_cache_bytes(capsys):
    right(capsys, check.kv_cache_bytes, S.kv_cache_bytes)
    skipped(capsys, check.kv_cache_bytes, lambda c, T, b=4: None)
    wrong(capsys, check.kv_cache_bytes, lambda c, T, b=4: S.kv_cache_bytes(c, T, b) // 2, words=("AND values",))
    wrong(capsys, check.kv_cache_bytes, lambda c, T, b=4: 2 * c.n_layer * c.n_embd * T * b, words=("kv_heads",))
    wrong(capsys, check.kv_cache_bytes, lambda c, T, b=4: S.kv_cache_bytes(c, T, 1), words=("bytes_per_number",))
    # the solution agrees with a real cache
    model = mg.GPT(mg.GPTConfig(vocab_size=50, block_size=32, n_layer=2, n_head=4, n_kv_head=2, n_embd=32,
                                positions="rope"))
    cache = model(torch.zeros(1, 7, dtype=torch.long), use_cache=True).past_key_values
    assert sum(k.numel() * 4 + v.numel() * 4 for k, v in cache) == S.kv_cache_bytes(model.config, 7)


def test_end_of_turn_question(capsys):
    text = "Hello there! How are you today? I am fine.\n" * 10
    tok = mg.BPETokenizer.train(text, vocab_size=280, special_tokens=("<|endoftext|>", "<|im_start|>", "<|im_end|>"))
    torch.manual_seed(0)
    model = mg.GPT(mg.GPTConfig(vocab_size=tok.vocab_size, block_size=128, n_layer=1, n_head=2, n_embd=16,
                                positions="rope", norm="rmsnorm", mlp="swiglu", bias=False)).eval()
    w = ChatWidget(model, tok, question="Hi", max_new_tokens=6)
    skipped(capsys, check.end_of_turn_probability, None, w)
    if w.reply.stopped != "end_of_turn":
        wrong(capsys, check.end_of_turn_probability, 0.5, w, words=("end-of-turn",))
        w.reply_view.select(len(w.reply.steps) - 1)
        w.reply_view.branch(tok.special_tokens["<|im_end|>"])  # end the reply there
    assert w.reply.stopped == "end_of_turn"
    p = w.reply.steps[-1].prob
    right(capsys, check.end_of_turn_probability, p, w)
    right(capsys, check.end_of_turn_probability, 100 * p, w)
    wrong(capsys, check.end_of_turn_probability, "lots", w, words=("number",))
    wrong(capsys, check.end_of_turn_probability, min(1.0, p + 0.3), w, words=("<|im_end|>",))
