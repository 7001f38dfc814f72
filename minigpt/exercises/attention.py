"""Checks for notebook 03 (attention): the causal mask, causal attention weights, the head split,
and a question answered with the AttentionExplorer: find a head with a job."""

from __future__ import annotations

import math

import torch

from . import Hint, exercise, not_attempted


@exercise
def causal_mask(fn):
    """Check ``fn(T) -> [T, T] bool``, True where query i may look at key j."""
    if fn(4) is None:
        raise not_attempted("my_causal_mask", "attention")
    for T in (1, 4, 7):
        m = fn(T)
        if not isinstance(m, torch.Tensor) or tuple(m.shape) != (T, T):
            raise Hint(f"my_causal_mask({T}) should be a [{T}, {T}] tensor, got {getattr(m, 'shape', type(m).__name__)}")
        if m.dtype != torch.bool:
            if m.is_floating_point() and bool((m == float("-inf")).any()):
                raise Hint("that is an additive mask (0 / -inf) (hint: return True/False here, and use "
                           "masked_fill(~mask, -inf) on the scores)")
            raise Hint(f"return a bool tensor (True = may look), got dtype {m.dtype} "
                       f"(hint: torch.ones(T, T, dtype=torch.bool).tril())")
        true = torch.tril(torch.ones(T, T, dtype=torch.bool))
        m = m.cpu()
        if T > 1 and torch.equal(m, true.T):
            raise Hint("you built the upper triangle (hint: rows are queries, columns keys, and query i may look "
                       "at keys j <= i: the lower triangle, torch.tril)")
        leaks = (m & ~true).nonzero().tolist()
        if leaks:
            i, j = leaks[0]
            raise Hint(f"your mask lets position {i} see position {j}, which comes after it (hint: torch.tril)")
        hidden = (~m & true).nonzero().tolist()
        if hidden:
            i, j = hidden[0]
            if i == j:
                raise Hint(f"your mask hides position {i} from itself (hint: the diagonal must be True: "
                           f"torch.tril, not torch.tril(..., diagonal=-1))")
            raise Hint(f"your mask hides position {j} from position {i}, but {j} is in the past")
    return "each position sees itself and everything before it, nothing after"


@exercise
def attention_weights(fn):
    """Check ``fn(q, k) -> [T, T]`` causal attention weights of one head."""
    gen = torch.Generator().manual_seed(1)
    T, D = 6, 16
    q, k = torch.randn(T, D, generator=gen), torch.randn(T, D, generator=gen)
    w = fn(q, k)
    if w is None:
        raise not_attempted("my_attention_weights", "attention")
    if not isinstance(w, torch.Tensor) or tuple(w.shape) != (T, T):
        raise Hint(f"expected a [{T}, {T}] tensor of weights, got {getattr(w, 'shape', type(w).__name__)}")
    w = w.detach().float().cpu()
    future = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)

    def weights(scores):
        return torch.softmax(scores.masked_fill(future, float("-inf")), dim=-1)

    if torch.isnan(w).any():
        raise Hint("your weights contain NaN (hint: a row where every score is -inf? mask only the future, j > i)")
    if (w < 0).any() or torch.isinf(w).any():
        raise Hint("your weights are negative or infinite (hint: mask the scores with -inf before the softmax, "
                   "not the weights after it)")
    leaks = ((w > 1e-6) & future).nonzero().tolist()
    if leaks:
        i, j = leaks[0]
        raise Hint(f"your attention lets position {i} see position {j} (hint: mask the future with "
                   f"masked_fill(~mask, float('-inf')) before the softmax)")
    if not torch.allclose(w.sum(-1), torch.ones(T), atol=1e-4):
        cols = " (your columns do: that is a softmax over dim=0)" if torch.allclose(w.sum(0), torch.ones(T), atol=1e-4) else ""
        raise Hint(f"the rows of your weights do not sum to 1{cols} (hint: softmax over the keys, dim=-1)")
    s = q @ k.T
    if torch.allclose(w, weights(s / D ** 0.5), atol=1e-5):
        return "scaled, masked, softmaxed over the keys"
    if torch.allclose(w, weights(s), atol=1e-5):
        raise Hint("close, but the scores are not scaled (hint: did you scale by sqrt(d_head)? divide q @ k.T "
                   "by sqrt(D))")
    if torch.allclose(w, weights(s / D), atol=1e-5):
        raise Hint("you divided by d_head (hint: divide by its square root, sqrt(d_head))")
    if torch.allclose(w, weights(s * D ** 0.5), atol=1e-5):
        raise Hint("you multiplied by sqrt(d_head) (hint: divide by it)")
    if torch.allclose(w, weights(q @ q.T / D ** 0.5), atol=1e-5) or torch.allclose(w, weights(k @ k.T / D ** 0.5), atol=1e-5):
        raise Hint("the scores must compare queries with keys (hint: q @ k.T, not q @ q.T or k @ k.T)")
    if torch.allclose(w, weights(k @ q.T / D ** 0.5), atol=1e-5):
        raise Hint("rows must be queries and columns keys (hint: q @ k.T, not k @ q.T)")
    err = (w - weights(s / D ** 0.5)).abs().max().item()
    raise Hint(f"your weights differ from the reference by up to {err:.3g} (hint: go step by step: scores, "
               f"scale, mask, softmax)")


@exercise
def split_heads(fn):
    """Check ``fn(x, n_head)``: [B, T, C] -> [B, H, T, D], head h owning channels h*D ... (h+1)*D - 1."""
    B, T, C, H = 2, 3, 8, 2
    D = C // H
    # each entry says where it came from: 100 * batch + 10 * position + channel
    x = (100 * torch.arange(B)[:, None, None] + 10 * torch.arange(T)[None, :, None]
         + torch.arange(C)[None, None, :]).float()
    y = fn(x, H)
    if y is None:
        raise not_attempted("split_heads", "attention")
    want = x.view(B, T, H, D).transpose(1, 2)
    if not isinstance(y, torch.Tensor):
        raise Hint(f"return a tensor, got {type(y).__name__}")
    if tuple(y.shape) == (B, T, H, D) and torch.equal(y, x.view(B, T, H, D)):
        raise Hint(f"the shape is [B, T, H, D] = {list(y.shape)} (hint: move the head dimension in front of T "
                   f"with .transpose(1, 2))")
    if tuple(y.shape) != (B, H, T, D):
        raise Hint(f"expected [B, H, T, D] = {[B, H, T, D]}, got {list(y.shape)}")
    if torch.equal(y, x.view(B, H, T, D)):
        raise Hint("you reshaped [B, T, C] straight into [B, H, T, D], which mixes positions between heads "
                   "(hint: view as [B, T, H, D] first, then .transpose(1, 2))")
    if torch.equal(y, x.view(B, T, D, H).permute(0, 3, 1, 2)):
        raise Hint("each head got every H-th channel (hint: head h owns one contiguous slice h*D ... (h+1)*D - 1: "
                   "view as [B, T, H, D], not [B, T, D, H])")
    if not torch.equal(y, want):
        bad = (y != want).nonzero()[0].tolist()
        raise Hint(f"wrong value at [b, h, t, d] = {bad}: expected {want[tuple(bad)].item():.0f} "
                   f"(= 100*b + 10*t + h*D + d), got {y[tuple(bad)].item():.0f}")
    return "head h holds channels h*D ... (h+1)*D - 1 of every position"


def _local(T: int, w: int) -> torch.Tensor:
    """[T, T] bool: query i sees keys i - w + 1 ... i (itself and the w - 1 before it)."""
    i = torch.arange(T)[:, None]
    j = torch.arange(T)[None, :]
    return (j <= i) & (j > i - w)


@exercise
def local_mask(fn):
    """Check ``fn(T, w) -> [T, T] bool``: causal attention limited to a window of the last w
    positions (the query's own included), as in sliding-window attention."""
    if fn(6, 3) is None:
        raise not_attempted("local_mask", "attention")
    for T, w in ((6, 3), (5, 1), (4, 4), (7, 10)):
        m = fn(T, w)
        if not isinstance(m, torch.Tensor) or tuple(m.shape) != (T, T):
            raise Hint(f"local_mask({T}, {w}) should be a [{T}, {T}] tensor, got {getattr(m, 'shape', type(m).__name__)}")
        if m.dtype != torch.bool:
            raise Hint(f"return a bool tensor (True = may look), got dtype {m.dtype}")
        m, want = m.cpu(), _local(T, w)
        if torch.equal(m, want):
            continue
        future = (m & ~torch.ones(T, T, dtype=torch.bool).tril()).nonzero().tolist()
        if future:
            i, j = future[0]
            raise Hint(f"local_mask({T}, {w}) lets position {i} see position {j}, in its future (hint: a local "
                       f"mask is still causal: start from torch.tril)")
        seen = m.sum(-1)[-1].item()
        if seen == w + 1:
            raise Hint(f"with w = {w} the last query sees {seen} positions, one too many (hint: itself and the "
                       f"w - 1 before it: keys j with i - w < j <= i)")
        if seen == w - 1 and w > 1:
            raise Hint(f"with w = {w} the last query sees {seen} positions, one too few (hint: itself and the "
                       f"w - 1 before it: keys j with i - w < j <= i)")
        if not m.diagonal().all():
            raise Hint("a position must see itself (hint: the diagonal is True)")
        if torch.equal(m, torch.ones(T, T, dtype=torch.bool).tril()) and w < T:
            raise Hint(f"that is the plain causal mask; with w = {w} a query sees only the last {w} positions")
        i, j = (m ^ want).nonzero()[0].tolist()
        raise Hint(f"local_mask({T}, {w}) at query {i}, key {j} should be {bool(want[i, j])} (hint: keys j with "
                   f"i - w < j <= i)")
    return "each query sees itself and the w - 1 positions before it, never the future"


JOBS = {
    "newline": "the most recent line break: every character of a line looks back to where the line began",
    "word start": "the most recent space or line break: every character looks back to where its word began",
    "previous": "the character just before the query",
}


def job_scores(model, tok, text: str, job: str) -> torch.Tensor:
    """[n_layer, n_head]: the mean weight each head puts on the key that ``job`` names, over the
    queries of ``text`` that have such a key."""
    if job not in JOBS:
        raise ValueError(f"unknown job {job!r}; known jobs are {sorted(JOBS)}")
    ids = tok.encode(text)
    with torch.no_grad():
        att = model(torch.tensor([ids], device=model.device), return_attention=True).attentions
    maps = torch.stack([a[0] for a in att]).float().cpu()       # [L, H, T, T]
    targets = []                                                 # (query, key) pairs
    for i in range(len(ids)):
        if job == "previous":
            key = i - 1 if i > 0 else None
        else:
            marks = "\n" if job == "newline" else " \n"
            # the break before the query's own character (a break looks back to the previous one)
            key = next((j for j in range(i - 1, -1, -1) if text[j] in marks), None)
        if key is not None:
            targets.append((i, key))
    q, k = torch.tensor(targets).T
    return maps[:, :, q, k].mean(-1)


@exercise
def head_with_a_job(answer, model, tok, job: str = "newline",
                    text: str = "JULIET:\nO Romeo, Romeo! wherefore art thou Romeo?\nDeny thy father and refuse thy name;"):
    """Widget question: ``answer = (layer, head)`` of a head whose job is ``job`` (see JOBS)."""
    if answer is None:
        raise not_attempted("answer", "attention")
    if not (isinstance(answer, (tuple, list)) and len(answer) == 2):
        raise Hint("answer with a pair (layer, head), e.g. (0, 3)")
    layer, head = (int(a) for a in answer)
    L, H = model.config.n_layer, model.config.n_head
    if not (0 <= layer < L and 0 <= head < H):
        raise Hint(f"the model has layers 0..{L - 1} and heads 0..{H - 1}; got layer {layer}, head {head}")
    scores = job_scores(model, tok, text, job)
    best = divmod(int(scores.argmax()), H)
    mine = scores[layer, head].item()
    if mine >= 0.8 * scores.max().item():
        return (f"layer {layer}, head {head} puts {mine:.0%} of its weight on {JOBS[job].split(':')[0]} "
                f"(the average head: {scores.mean():.0%})")
    raise Hint(f"layer {layer}, head {head} puts only {mine:.0%} of its weight on {JOBS[job].split(':')[0]}; "
               f"another head puts {scores.max():.0%} there (hint: in the explorer, look for a map where the "
               f"rows of a whole line light up the same column{', the one of the line break' if job == 'newline' else ''}; "
               f"layer {best[0]} is worth a look)")
