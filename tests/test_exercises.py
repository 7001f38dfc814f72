"""Every exercise check accepts the reference solution, rejects a typical mistake with the right
hint (a printed line, no traceback), and says 'not attempted' for an exercise left as given."""

import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import minigpt as mg
from minigpt.exercises import attention, embeddings, gpt, sampling, tokenization, training, welcome
from minigpt.exercises import solutions as S
from minigpt.exercises.solutions import attention as s03, embeddings as s02, gpt as s04
from minigpt.exercises.solutions import sampling as s06, tokenization as s01, training as s05, welcome as s00

from verdicts import right, skipped, wrong


@pytest.fixture(autouse=True)
def _no_grad():
    """Checks run without autograd, as in the notebooks; only inside each test, so the setting
    never leaks into other test files."""
    with torch.no_grad():
        yield


@pytest.fixture(scope="module")
def shipped():
    return mg.pretrained.load("shakespeare-char", device="cpu")


def test_verdict_is_quiet_in_a_notebook_and_true_when_right(capsys):
    v = mg.exercises.Verdict(True, "fine")
    assert bool(v) and v.line == "✓ fine" and v._ipython_display_() is None


def test_an_error_in_the_learners_code_is_one_line(capsys):
    def broken(ids):
        return {}[ids[0]]
    wrong(capsys, tokenization.get_pair_counts, broken, words=("KeyError", "hint"))


# ------------------------------------------------------------------ 00 welcome

def test_welcome(capsys, shipped):
    model, tok = shipped
    right(capsys, welcome.greedy, s00.greedy, model, tok)
    skipped(capsys, welcome.greedy, lambda m, t, p, n: None, model, tok)
    wrong(capsys, welcome.greedy, lambda m, t, p, n: mg.generate(m, t, p, max_new_tokens=n, seed=0), model, tok,
          words=("argmax",))
    no_crop = lambda m, t, p, n: s00.greedy(type("M", (), {"config": type("C", (), {"block_size": 10_000})(),  # noqa: E731
                                                             "device": m.device, "__call__": lambda s, x: m(x)})(), t, p, n)
    wrong(capsys, welcome.greedy, no_crop, model, tok, words=("crop",))
    right(capsys, welcome.continuation_logprob, s00.continuation_logprob, model, tok)

    def off_by_one(m, t, prompt, cont):
        ids, n = t.encode(prompt + cont), len(t.encode(cont))
        logp = torch.log_softmax(m(torch.tensor([ids])).logits[0], dim=-1)
        return sum(logp[i, ids[i]].item() for i in range(len(ids) - n, len(ids)))
    wrong(capsys, welcome.continuation_logprob, off_by_one, model, tok, words=("t - 1",))
    wrong(capsys, welcome.continuation_logprob,
          lambda m, t, p, c: math.exp(s00.continuation_logprob(m, t, p, c)), model, tok, words=("product",))
    right(capsys, welcome.next_word, s00.answer, model, tok)
    wrong(capsys, welcome.next_word, "th", model, tok, words=("keep pressing",))
    skipped(capsys, welcome.next_word, None, model, tok)


# ------------------------------------------------------------------ 01 tokenization

def test_tokenization(capsys):
    right(capsys, tokenization.get_pair_counts, s01.get_pair_counts)
    skipped(capsys, tokenization.get_pair_counts, lambda ids: None)
    from collections import Counter
    wrong(capsys, tokenization.get_pair_counts, lambda ids: dict(Counter(zip(ids[::2], ids[1::2]))),
          words=("two at a time",))
    right(capsys, tokenization.merge, s01.merge)

    def no_skip(ids, pair, new_id):
        return [new_id if i + 1 < len(ids) and (ids[i], ids[i + 1]) == pair else ids[i] for i in range(len(ids))]
    wrong(capsys, tokenization.merge, no_skip, words=("skip both",))

    sample = mg.data.load_text("tinyshakespeare")[:10_000]
    merges = {}
    ids = list(sample.encode())
    for step in range(60):
        counts = s01.get_pair_counts(ids)
        pair = min(counts, key=lambda p: (-counts[p], p))
        ids = s01.merge(ids, pair, 256 + step)
        merges[pair] = 256 + step
    right(capsys, tokenization.bpe_encode, s01.bpe_encode, merges, sample)
    wrong(capsys, tokenization.bpe_encode, lambda s, m: list(s.encode()), merges, sample, words=("raw bytes",))
    wrong(capsys, tokenization.bpe_encode, lambda s, m: tokenization._greedy_by_frequency(s, m), merges, sample,
          words=("learned first",))

    toks = {"bytes": mg.BPETokenizer(), "BPE": mg.BPETokenizer.train(sample, vocab_size=280)}
    text = "你好, the theatre"
    right(capsys, tokenization.token_counts, s01.token_counts(toks, text), toks, text)
    wrong(capsys, tokenization.token_counts, {"bytes": len(text), "BPE": 3}, toks, text, words=("characters",))
    wrong(capsys, tokenization.token_counts, {"bytes": 20}, toks, text, words=("missing",))


# ------------------------------------------------------------------ 02 embeddings

def test_embeddings(capsys, shipped):
    model, tok = shipped
    right(capsys, embeddings.sinusoidal, s02.sinusoidal)

    def swapped(T, C):
        pe = s02.sinusoidal(T, C)
        return torch.stack([pe[:, 1::2], pe[:, 0::2]], dim=-1).reshape(T, C)
    wrong(capsys, embeddings.sinusoidal, swapped, words=("swapped",))
    right(capsys, embeddings.nearest, s02.nearest, model, tok)

    def by_dot(W, i, k=8):
        s = W @ W[i]
        s[i] = -float("inf")
        return s.topk(k).indices.tolist()
    wrong(capsys, embeddings.nearest, by_dot, model, tok, words=("dot product", "normalise"))
    right(capsys, embeddings.embed, s02.embed, model, tok)
    wrong(capsys, embeddings.embed, lambda idx, wte, wpe: wte[idx] + wpe[idx], model, tok, words=("arange",))
    skipped(capsys, embeddings.embed, lambda idx, wte, wpe: None, model, tok)
    first = mg.viz.plots.nearest_neighbours(model, tok, tok.encode("!")[0], k=3)
    right(capsys, embeddings.neighbour_of, first[0][0], model, tok, "!")
    wrong(capsys, embeddings.neighbour_of, first[2][0], model, tok, "!", words=("number 3",))


# ------------------------------------------------------------------ 03 attention

def test_attention(capsys, shipped):
    model, tok = shipped
    right(capsys, attention.causal_mask, s03.my_causal_mask)
    wrong(capsys, attention.causal_mask, lambda T: torch.ones(T, T, dtype=torch.bool).triu(), words=("upper",))
    wrong(capsys, attention.causal_mask, lambda T: torch.ones(T, T, dtype=torch.bool).tril(-1), words=("itself",))
    right(capsys, attention.attention_weights, s03.my_attention_weights)
    unscaled = lambda q, k: torch.softmax((q @ k.T).masked_fill(~s03.my_causal_mask(len(q)), float("-inf")), -1)  # noqa: E731
    wrong(capsys, attention.attention_weights, unscaled, words=("sqrt(d_head)",))
    right(capsys, attention.split_heads, s03.split_heads)
    wrong(capsys, attention.split_heads, lambda x, H: x.view(x.size(0), H, x.size(1), -1), words=("mixes",))
    right(capsys, attention.local_mask, s03.local_mask)
    wrong(capsys, attention.local_mask, lambda T, w: torch.ones(T, T, dtype=torch.bool).tril() &
          ~torch.ones(T, T, dtype=torch.bool).tril(-w - 1), words=("one too many",))
    wrong(capsys, attention.local_mask, lambda T, w: torch.ones(T, T, dtype=torch.bool).tril(w - 1) &
          ~torch.ones(T, T, dtype=torch.bool).tril(-1), words=("future",))
    skipped(capsys, attention.local_mask, lambda T, w: None)
    right(capsys, attention.head_with_a_job, s03.answer, model, tok)
    wrong(capsys, attention.head_with_a_job, (2, 2), model, tok, words=("only", "layer 1"))
    wrong(capsys, attention.head_with_a_job, (9, 0), model, tok, words=("layers 0..3",))
    scores = attention.job_scores(model, tok, "ab\ncd ef\ngh", "newline")
    assert scores.shape == (4, 4) and 0 <= scores.min() and scores.max() <= 1


# ------------------------------------------------------------------ 04 gpt

def test_gpt(capsys, shipped):
    model, tok = shipped
    right(capsys, gpt.count_params, s04.count_params)
    wrong(capsys, gpt.count_params, lambda V, T, C, L: s04.count_params(V, T, C, L) + V * C, words=("tying",))
    right(capsys, gpt.block_forward, s04.my_block_forward, model)

    def post_ln(x, block):
        x = block.ln_1(x + block.attn(x)[0])
        return block.ln_2(x + block.mlp(x))
    wrong(capsys, gpt.block_forward, post_ln, model, words=("post-LN",))
    right(capsys, gpt.layer_norm, s04.my_layer_norm)
    wrong(capsys, gpt.layer_norm, lambda x, w, b, eps=1e-5: (x - x.mean(-1, keepdim=True))
          / torch.sqrt(x.var(-1, keepdim=True) + eps) * w + b, words=("unbiased",))

    right(capsys, gpt.gpt_class, s04.MyGPT, model, tok)

    class NoLnF(s04.MyGPT):
        def forward(self, idx):
            x = self.transformer.wte(idx) + self.transformer.wpe(torch.arange(idx.size(1)))
            for block in self.transformer.h:
                x = block(x)
            return self.lm_head(x)
    wrong(capsys, gpt.gpt_class, NoLnF, model, tok, words=("ln_f",))

    class NoMask(s04.MyGPT):
        def forward(self, idx):
            with torch.no_grad():
                for block in self.transformer.h:
                    block.attn.forward = lambda x, a=block.attn: a.c_proj(F.scaled_dot_product_attention(
                        *(t.view(x.size(0), x.size(1), a.n_head, -1).transpose(1, 2)
                          for t in a.c_attn(x).split(x.size(-1), 2))).transpose(1, 2).reshape(x.shape))
            return super().forward(idx)
    wrong(capsys, gpt.gpt_class, NoMask, model, tok, words=("mask",))

    class Renamed(s04.MyGPT):
        def __init__(self, config):
            super().__init__(config)
            self.blocks = self.transformer.h
            del self.transformer.h
    wrong(capsys, gpt.gpt_class, Renamed, model, tok, words=("transformer.h",))

    class Stub(nn.Module):
        def __init__(self, config):
            super().__init__()

        def forward(self, idx):
            return None
    skipped(capsys, gpt.gpt_class, Stub, model, tok)
    right(capsys, gpt.past_changes_future, s04.answer, model, tok)
    wrong(capsys, gpt.past_changes_future, False, model, tok, words=("mask",))


# ------------------------------------------------------------------ 05 training

def test_training(capsys, shipped):
    model, tok = shipped
    right(capsys, training.make_batch, s05.make_batch)
    wrong(capsys, training.make_batch, lambda d, s, T: (torch.stack([d[i:i + T] for i in s]),) * 2, words=("next",))
    right(capsys, training.lr, s05.my_lr)
    wrong(capsys, training.lr, lambda it, c: s05.my_lr(max(it, c.warmup_iters), c), words=("warm-up",))
    right(capsys, training.cross_entropy, s05.my_cross_entropy)
    wrong(capsys, training.cross_entropy,
          lambda lo, t: -lo.log_softmax(-1).gather(-1, t.unsqueeze(-1)).sum(), words=("mean",))

    bpe = mg.BPETokenizer.train(mg.data.load_text("tinyshakespeare")[:20_000], vocab_size=300)
    mg.seed_everything(0)
    bpe_model = mg.GPT(mg.GPTConfig(vocab_size=bpe.vocab_size, block_size=64, n_layer=1, n_head=2, n_embd=32))
    models = {"characters": (model, tok), "BPE": (bpe_model, bpe)}
    right(capsys, training.loss_per_byte, s05.loss_per_byte, models)

    def per_token(m, t, text):
        ids = torch.tensor([t.encode(text)])
        return F.cross_entropy(m(ids[:, :-1]).logits[0], ids[0, 1:]).item()
    wrong(capsys, training.loss_per_byte, per_token, models, words=("per token", "BPE"))
    wrong(capsys, training.loss_per_byte, lambda m, t, x: s05.loss_per_byte(m, t, x) / math.log(2), models,
          words=("bits",))
    skipped(capsys, training.loss_per_byte, lambda m, t, x: None, models)

    history = {"iter": list(range(100)), "lr": [mg.lr_at(i, mg.TrainConfig(max_iters=100, warmup_iters=10,
                                                                             learning_rate=1e-3, min_lr=1e-4))
                                                for i in range(100)]}
    right(capsys, training.peak_learning_rate, s05.peak_learning_rate(history), history)
    wrong(capsys, training.peak_learning_rate, (99, 1e-4), history, words=("lowest",))
    wrong(capsys, training.peak_learning_rate, (9, 1e-2), history, words=("y-axis",))


# ------------------------------------------------------------------ 06 sampling

def test_sampling(capsys, shipped):
    model, tok = shipped
    right(capsys, sampling.top_k, s06.my_top_k)

    def threshold(logits, k):
        kth = logits.topk(k, dim=-1).values[..., -1:]
        return logits.masked_fill(logits < kth, float("-inf"))
    wrong(capsys, sampling.top_k, threshold, words=("ties",))
    right(capsys, sampling.top_p, s06.my_top_p)

    def unsorted(logits, p):
        probs = F.softmax(logits, dim=-1)
        return logits.masked_fill(probs.cumsum(dim=-1) - probs >= p, float("-inf"))
    wrong(capsys, sampling.top_p, unsorted, words=("sort",))
    right(capsys, sampling.next_token_probs, s06.next_token_probs)
    def divides_by_zero(logits, temperature, top_k=None, top_p=None):
        logits = logits / temperature
        if top_k is not None:
            logits = mg.top_k_filter(logits, top_k)
        if top_p is not None:
            logits = mg.top_p_filter(logits, top_p)
        return F.softmax(logits, dim=-1)
    wrong(capsys, sampling.next_token_probs, divides_by_zero, words=("greedy",))

    right(capsys, sampling.kv_cache, s06.MyKVCache, model, tok)

    class Forgets(s06.MyKVCache):
        def update(self, layer, k, v):
            return k, v
    wrong(capsys, sampling.kv_cache, Forgets, model, tok, words=("cannot see the past", "torch.cat"))

    class WrongDim(s06.MyKVCache):
        def update(self, layer, k, v):
            if layer in self.keys:
                k, v = torch.cat((self.keys[layer], k), 1), torch.cat((self.values[layer], v), 1)
            self.keys[layer], self.values[layer] = k, v
            return k, v
    wrong(capsys, sampling.kv_cache, WrongDim, model, tok, words=("dim=2",))

    class Stub:
        def update(self, layer, k, v):
            return None
    skipped(capsys, sampling.kv_cache, Stub, model, tok)

    prompt = "ROMEO:\nBut soft, what light through yonder "
    d = mg.next_token_distribution(model, tok, prompt, temperature=2.0)
    right(capsys, sampling.top_probability, round(float(d.final.max()) * 100, 1), model, tok, prompt)
    wrong(capsys, sampling.top_probability, round(float(d.raw.max()) * 100, 1), model, tok, prompt,
          words=("temperature 1",))


def test_solutions_are_out_of_the_notebooks():
    import json
    import pathlib
    notebooks = sorted(pathlib.Path(__file__).parent.parent.glob("notebooks/0[0-6]_*.ipynb"))
    assert notebooks
    for path in notebooks:
        for cell in json.loads(path.read_text())["cells"]:
            source = "".join(cell["source"])
            assert "source_hidden" not in json.dumps(cell.get("metadata", {})), path.name
            assert "def check_" not in source, (path.name, "checks belong in minigpt.exercises")
    assert S.__doc__
