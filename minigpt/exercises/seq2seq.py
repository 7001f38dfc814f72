"""Checks for notebook 07 (the encoder–decoder chatbot): write the encoder's padding mask, write
Luong's general score, and find (then fix) a decoder that can see the future."""

from __future__ import annotations

import inspect
import math

import torch
from torch.nn import functional as F

from . import Hint, NotAttempted, exercise, not_attempted
from ..model import attention


def _as_tensor(got, what: str) -> torch.Tensor:
    if not isinstance(got, torch.Tensor):
        raise Hint(f"{what} must be a torch tensor, got {type(got).__name__}")
    return got


# ------------------------------------------------------------------ exercise 1: the padding mask

def reference_padding_mask(src: torch.Tensor, pad_id: int) -> torch.Tensor:
    """src: [B, S] ids -> [B, 1, 1, S] bool, True at real tokens (keys a query may look at)."""
    return (src != pad_id)[:, None, None, :]


@exercise
def padding_mask(fn):
    """Check ``fn(src, pad_id) -> mask [B, 1, 1, S] bool`` (True where a query may attend)."""
    pad = 5  # not 0: a mask that hard-codes 0 shows up
    src = torch.tensor([[7, 8, 9, pad, pad], [6, 7, 8, 9, 10], [11, pad, pad, pad, pad]])
    got = fn(src.clone(), pad)
    if got is None:
        raise not_attempted("my_padding_mask", "seq2seq")
    got = _as_tensor(got, "the mask")
    want = reference_padding_mask(src, pad)
    B, S = src.shape
    if got.dtype != torch.bool:
        raise Hint(f"the mask must be a bool tensor (True: may attend), got {got.dtype}; compare ids with "
                   f"pad_id (src != pad_id) to get one")
    if tuple(got.shape) == (B, S):
        raise Hint(f"your mask is [B, S] = {[B, S]}; the scores are [B, H, T, S], so give it two more "
                   f"dimensions, [B, 1, 1, S] (src[:, None, None, :]): it then broadcasts over heads and queries")
    if tuple(got.shape) == (B, 1, S, 1):
        raise Hint("your mask is [B, 1, S, 1]: it hides padded *queries*; padding must be hidden as a *key* "
                   "(the last dimension, the one the softmax runs over): [B, 1, 1, S]")
    if tuple(got.shape) != (B, 1, 1, S):
        raise Hint(f"the mask must be [B, 1, 1, S] = {[B, 1, 1, S]} for src {list(src.shape)}, got {list(got.shape)}")
    if torch.equal(got, ~want):
        raise Hint("your mask is True at the padding: True must mean 'may attend', so it is True at real "
                   "tokens (src != pad_id)")
    if torch.equal(got, (src != 0)[:, None, None, :]):
        raise Hint("your mask looks for id 0; the padding id is the pad_id argument (here 5)")
    if bool(got.all()):
        raise Hint("your mask lets every query see the padding: it must be False where src == pad_id")
    if not torch.equal(got, want):
        row = int((got != want).any(-1).flatten().nonzero()[0])
        raise Hint(f"row {row} is wrong: expected {want[row, 0, 0].tolist()}, got {got[row, 0, 0].tolist()}")
    # what it buys: the real tokens' outputs do not depend on how much padding follows them
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, 2, 5, 4, generator=g) for _ in range(3))
    y = attention(q, k, v, mask=got[2:3])[0][:, :, :1]
    alone = attention(q[:, :, :1], k[:, :, :1], v[:, :, :1])[0]
    assert torch.allclose(y, alone, atol=1e-6)
    return ("[B, 1, 1, S], True at real tokens: the one-token question attends exactly as if its four "
            "padding tokens were not there")


# ------------------------------------------------------------------ exercise 2: Luong's general score

def reference_general_attention(h, enc, mask, W) -> torch.Tensor:
    """h: [B, Hd] decoder output; enc: [B, S, Hd] encoder outputs; mask: [B, S] bool; W: [Hd, Hd]
    (an nn.Linear's weight). Returns the weights [B, S]: softmax over real tokens of h · (W e_s)."""
    scores = ((enc @ W.T) @ h[:, :, None]).squeeze(-1)
    return F.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)


def _general_inputs(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    B, S, Hd = 3, 6, 8
    h, enc = torch.randn(B, Hd, generator=g), torch.randn(B, S, Hd, generator=g)
    W = torch.randn(Hd, Hd, generator=g) / math.sqrt(Hd)
    mask = torch.tensor([[True] * 6, [True] * 4 + [False] * 2, [True] * 2 + [False] * 4])
    return h, enc, mask, W


@exercise
def general_score(fn):
    """Check ``fn(h, enc, mask, W) -> weights [B, S]`` against Luong's general attention."""
    h, enc, mask, W = _general_inputs()
    got = fn(h.clone(), enc.clone(), mask.clone(), W.clone())
    if got is None:
        raise not_attempted("my_general_attention", "seq2seq")
    got = _as_tensor(got, "the weights").detach().float()
    want = reference_general_attention(h, enc, mask, W)
    if got.shape != want.shape:
        raise Hint(f"the weights must be [B, S] = {list(want.shape)} (one weight per question token), got "
                   f"{list(got.shape)}; squeeze the last dimension of a batched matmul")
    close = lambda a, b: torch.allclose(a, b, atol=1e-5)
    masked = lambda s: F.softmax(s.masked_fill(~mask, float("-inf")), dim=-1)
    dot = masked((enc @ h[:, :, None]).squeeze(-1))
    transposed = masked(((enc @ W) @ h[:, :, None]).squeeze(-1))
    if close(got, dot):
        raise Hint("that is Luong's dot score, h · e_s; the general score puts a learned matrix between "
                   "them: h · (W e_s)")
    if close(got, transposed):
        raise Hint("W is used the other way round: W e_s for every encoder output is enc @ W.T (as nn.Linear "
                   "applies its weight), then the dot product with h")
    unmasked = F.softmax(((enc @ W.T) @ h[:, :, None]).squeeze(-1), dim=-1)
    if close(got, unmasked):
        raise Hint("the padding gets weight: set the scores at padding to -inf (masked_fill(~mask, ...)) "
                   "before the softmax")
    if not close(got.sum(-1), torch.ones(len(got))):
        if close(F.softmax(got.masked_fill(~mask, float("-inf")), dim=-1), want):
            raise Hint("those are the scores; the weights are their softmax over the question (dim=-1), "
                       "after masking the padding")
        raise Hint("each row of weights must sum to 1: a softmax over the question positions (dim=-1)")
    if (got[~mask].abs() > 1e-6).any():
        raise Hint("the padding gets weight: mask it with -inf before the softmax")
    if not close(got, want):
        raise Hint("the weights differ from h · (W e_s) softmaxed over the real tokens; check the order of "
                   "the matmuls (scores [B, S] = (enc @ W.T) @ h[:, :, None])")
    again = _general_inputs(1)
    if not close(_as_tensor(fn(*(t.clone() for t in again)), "the weights").detach().float(),
                 reference_general_attention(*again)):
        raise Hint("right on the first inputs but not on others: is something hard-wired?")
    return "h · (W e_s), padding masked, softmax over the question: Luong's general attention"


# ------------------------------------------------------------------ exercise 3: a decoder that sees the future

def leaky_self_attention(q, k, v):
    """q, k, v: [B, H, T, D] -> [B, H, T, D]: the decoder's causal self-attention, with a bug."""
    T = q.size(-2)
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))   # [B, H, T, T]
    allowed = torch.ones(T, T, dtype=torch.bool).tril()        # True: query i may look at key j
    scores = scores.masked_fill(allowed.T == 0, float("-inf"))
    return F.softmax(scores, dim=-1) @ v


def causal_self_attention(q, k, v):
    """The package's causal attention (``minigpt.model.attention(..., is_causal=True)``)."""
    return attention(q, k, v, is_causal=True)[0]


def show_leaky():
    """Print the buggy attention's source with line numbers."""
    for n, line in enumerate(inspect.getsource(leaky_self_attention).splitlines(), 1):
        print(f"{n:2} {line}")


def make_decoder(self_attention, vocab_size: int = 16, n_embd: int = 16, n_head: int = 2, seed: int = 0):
    """A one-layer decoder (embeddings, self-attention ``self_attention(q, k, v)``, LM head) with fixed
    random weights: returns decode(tgt [B, T] ids) -> logits [B, T, vocab_size]."""
    g = torch.Generator().manual_seed(seed)
    D = n_embd // n_head
    wte = torch.randn(vocab_size, n_embd, generator=g)
    wpe = torch.randn(32, n_embd, generator=g)
    w_qkv = torch.randn(n_embd, 3 * n_embd, generator=g) / math.sqrt(n_embd)
    w_out = torch.randn(n_embd, vocab_size, generator=g) / math.sqrt(n_embd)

    def decode(tgt: torch.Tensor) -> torch.Tensor:
        B, T = tgt.shape
        x = wte[tgt] + wpe[:T]
        q, k, v = (t.view(B, T, n_head, D).transpose(1, 2) for t in (x @ w_qkv).split(n_embd, dim=-1))
        y = self_attention(q, k, v).transpose(1, 2).reshape(B, T, n_embd)
        return (x + y) @ w_out

    return decode


def reference_future_leaks(decode, tgt: torch.Tensor) -> list[int]:
    """Positions t < T-1 whose logits change when only the last token of tgt ([1, T]) changes."""
    other = tgt.clone()
    other[0, -1] = (other[0, -1] + 1) % 16
    a, b = decode(tgt), decode(other)
    return [t for t in range(tgt.size(1) - 1) if not torch.allclose(a[0, t], b[0, t], atol=1e-5)]


_PROBE_TGT = torch.tensor([[1, 4, 9, 3, 7, 2]])


@exercise
def future_probe(fn):
    """Check ``fn(decode, tgt) -> list of positions`` (before the last) whose logits change when
    only the last token changes, on a right decoder and on the leaky one."""
    good, leaky = make_decoder(causal_self_attention), make_decoder(leaky_self_attention)
    on_good = fn(good, _PROBE_TGT.clone())
    if on_good is None:
        raise not_attempted("future_leaks", "seq2seq")
    on_leaky = fn(leaky, _PROBE_TGT.clone())
    try:
        on_good, on_leaky = sorted(int(t) for t in on_good), sorted(int(t) for t in on_leaky)
    except TypeError:
        raise Hint("return a list of positions (ints), e.g. [] when nothing before the last token moved") from None
    want = reference_future_leaks(leaky, _PROBE_TGT)
    T = _PROBE_TGT.size(1)
    if T - 1 in on_good:
        raise Hint(f"your probe lists position {T - 1}, the last one, whose own input you changed: of course it "
                   f"moves; look only at positions 0..T-2")
    if on_good:
        raise Hint(f"on a correct causal decoder your probe says positions {on_good} moved; compare logits "
                   f"with a tolerance (torch.allclose(..., atol=1e-5)), not with ==")
    if not on_leaky:
        raise Hint("your probe finds nothing on the leaky decoder; change only the last token of tgt, run the "
                   "decoder on both and compare the logits at every earlier position")
    if on_leaky != want:
        raise Hint(f"on the leaky decoder your probe says {on_leaky}, but the logits at positions {want} move")
    return (f"the right decoder: no earlier position moves; the leaky one: positions {want} all see the "
            f"last token")


@exercise
def fix_the_leak(fn):
    """Check ``fn(q, k, v) -> y``: the leaky attention, fixed; it must equal the package's causal attention."""
    g = torch.Generator().manual_seed(3)
    q, k, v = (torch.randn(2, 2, 6, 4, generator=g) for _ in range(3))
    got = fn(q.clone(), k.clone(), v.clone())
    if got is None:
        raise not_attempted("fixed_self_attention", "seq2seq")
    got = _as_tensor(got, "the output")
    want = causal_self_attention(q, k, v)
    if got.shape != want.shape:
        raise Hint(f"the output must be [B, H, T, D] = {list(want.shape)}, got {list(got.shape)}")
    if torch.allclose(got, leaky_self_attention(q, k, v), atol=1e-5):
        raise Hint("this is still the leaky one: each query sees itself and the keys *after* it "
                   "(the allowed matrix is transposed)")
    if torch.allclose(got, attention(q, k, v)[0], atol=1e-5):
        raise Hint("now nothing is masked: every query sees every key; keep the causal mask, the right way round")
    leaks = reference_future_leaks(make_decoder(fn), _PROBE_TGT)
    if leaks == [0]:
        raise Hint("only position 0 sees the future: its query has no key left to look at (did you mask the "
                   "diagonal, tril(-1)?), so the softmax spreads over every key; a query must see itself")
    if leaks:
        raise Hint(f"positions {leaks} still change when the last token changes: the decoder still sees the future")
    if not torch.allclose(got, want, atol=1e-5):
        raise Hint("no leak any more, but the output differs from causal attention: query i must see keys "
                   "0..i, itself included (tril, not tril(-1)), with scores scaled by sqrt(D)")
    return "query i sees keys 0..i: equal to minigpt.model.attention(..., is_causal=True)"


# ------------------------------------------------------------------ the explorer's question

EXPLORER_QUESTION = "Where are you going this weekend?"


def _first_looks(transformer=None, gru=None):
    """(question tokens, where the Transformer's first answer token looked most (last layer, mean of
    heads), where the GRU's looked most): positions in the question, both bots reading qa-en's answer."""
    from .. import pretrained
    from ..viz.seq2seq import cross_attention_maps
    transformer = transformer or pretrained.load("qa-en")
    gru = gru or pretrained.load("gru-en")
    tf = cross_attention_maps(*transformer, EXPLORER_QUESTION)
    g = cross_attention_maps(*gru, EXPLORER_QUESTION, answer=tf.answer_ids)
    return tf.question_tokens, int(tf.weights(-1, "all")[0].argmax()), int(g.weights()[0].argmax())


@exercise
def first_look(answer, transformer=None, gru=None):
    """``answer``: where (a position in the question, 0-based, or the token there) the
    Transformer looks most when it writes the first token of its answer to EXPLORER_QUESTION, in
    its last layer, mean of the heads. transformer, gru: (model, tokenizer), default qa-en, gru-en."""
    if answer is None:
        raise not_attempted("answer", "seq2seq")
    tokens, tf_at, gru_at = _first_looks(transformer, gru)
    where = f"position {tf_at} ({tokens[tf_at]!r})"
    if isinstance(answer, bool) or not isinstance(answer, (int, str)):
        raise Hint("answer with a position in the question (an int, 0 = its first token) or the token there")
    if isinstance(answer, str):
        if answer.strip() != tokens[tf_at].strip():  # " going" or "going": the leading space is easy to miss
            raise Hint(f"not {answer!r}: in the explorer keep the question as given, layer = the last, head = mean of "
                       f"all heads, select the first answer token, and read the tallest bar")
    elif not 0 <= answer < len(tokens):
        raise Hint(f"the question has positions 0..{len(tokens) - 1} (one per token), not {answer}")
    elif answer != tf_at:
        near = ("close: positions count from 0" if abs(answer - tf_at) == 1 else
                "select the first answer token (layer = the last, head = mean of all heads) and read the tallest bar")
        raise Hint(f"not position {answer} ({tokens[answer]!r}); {near}")
    same = "the same place" if gru_at == tf_at else f"position {gru_at} ({tokens[gru_at]!r})"
    return f"{where}; the GRU, writing the same token, looked most at {same}"


__all__ = ["padding_mask", "general_score", "future_probe", "fix_the_leak", "first_look", "leaky_self_attention",
           "show_leaky", "make_decoder", "NotAttempted"]
