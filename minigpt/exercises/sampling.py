"""Checks for notebook 06 (sampling): top-k and top-p for a batch, the whole pipeline, your own
KV cache, and a question answered with the NextTokenExplorer."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from . import Hint, NotAttempted, exercise, not_attempted
from ..model import causal_mask
from ..sampling import apply_temperature, next_token_distribution, top_k_filter, top_p_filter


@exercise
def top_k(fn):
    """Check ``fn(logits [..., V], k)`` on rows with and without ties."""
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(4, 30, generator=gen) * 2                  # [B, V]: each row has its own top k
    logits[2] = torch.randint(0, 3, (30,), generator=gen).float()   # a row of many ties: values 0, 1, 2
    logits[3] = logits[3] - 10                                      # a row of all negative logits
    k = 5
    before = logits.clone()
    out = fn(logits, k)
    if out is None:
        raise not_attempted("my_top_k", "sampling")
    if not torch.equal(logits, before):
        raise Hint("you changed the logits passed in (hint: work on a copy; masked_fill, scatter and full_like "
                   "return new tensors, masked_fill_ with an underscore does not)")
    if out.shape != logits.shape:
        raise Hint(f"return logits of the input's shape {list(logits.shape)}, got {list(out.shape)} (hint: keep "
                   f"the dropped tokens in place, as -inf)")
    if torch.isfinite(out).all() and torch.allclose(out.sum(-1), torch.ones(4)) and (out >= 0).all():
        raise Hint("you returned probabilities (hint: return logits, -inf for the dropped tokens; the softmax "
                   "comes later, after top-p)")
    if torch.isfinite(out).all():
        raise Hint("the dropped tokens must be -inf, not a finite number such as 0 (hint: softmax gives a logit "
                   "of 0 the weight e^0 = 1, so a 'dropped' token could still be drawn)")
    counts = torch.isfinite(out).sum(-1)
    if (counts == k - 1).all():
        raise Hint(f"you kept {k - 1} per row instead of {k} (hint: the k-th largest is topk(k).values[..., -1])")
    if (counts == k + 1).all():
        raise Hint(f"you kept {k + 1} per row instead of {k} (hint: keep the k-th largest itself, nothing below it)")
    if counts[2] > k and (counts[[0, 1, 3]] == k).all():
        raise Hint(f"the row with ties kept {int(counts[2])} tokens: comparing with the k-th largest value keeps "
                   f"every token equal to it (hint: keep exactly k with topk's indices, "
                   f"full_like(logits, -inf).scatter(-1, indices, values))")
    if (counts != k).any():
        raise Hint(f"expected {k} finite logits in every row, got {counts.tolist()} (hint: each row needs its own "
                   f"k-th largest value, topk along dim=-1)")
    kept = torch.isfinite(out)
    if not torch.equal(out[kept], logits[kept]):
        raise Hint("the kept logits changed (hint: leave them as they are, no softmax, no rescaling)")
    lowest_kept = logits.masked_fill(~kept, float("inf")).amin(-1)
    highest_dropped = logits.masked_fill(kept, float("-inf")).amax(-1)
    if (lowest_kept < highest_dropped).any():
        rows = (lowest_kept < highest_dropped).nonzero().flatten().tolist()
        raise Hint(f"in rows {rows} you kept a token and dropped a larger one (hint: keep the largest)")
    try:
        all_kept = torch.equal(fn(logits, 100), logits)
    except RuntimeError as e:                                     # topk(k) with k > V
        raise Hint(f"k = 100 > V = 30 failed ({e}) (hint: with k >= V every token stays, topk(min(k, V)))") from e
    if not all_kept:
        raise Hint("with k >= V every token must stay unchanged")
    return "exactly k per row, ties included, the k largest, and the input untouched"


@exercise
def top_p(fn):
    """Check ``fn(logits [..., V], p)`` against ``mg.top_p_filter`` on flat and peaked rows."""
    gen = torch.Generator().manual_seed(2)
    logits = torch.randn(4, 40, generator=gen)                   # [B, V]: flat rows
    logits[1] *= 4                                               # a sharper row
    logits[3, 7] = 8.0                                           # a peaked row: one token has most of the mass
    out = fn(logits, 0.9)
    if out is None:
        raise not_attempted("my_top_p", "sampling")
    if out.shape != logits.shape:
        raise Hint(f"return logits of the input's shape {list(logits.shape)}, got {list(out.shape)}")

    def keep_mask(x):                                            # which tokens a result keeps
        return torch.isfinite(x) & (x != 0) if torch.isfinite(x).all() else torch.isfinite(x)

    def nucleus_variant(p, scores="probs", shift=True, sort=True):
        # a top-p mask computed with one typical slip
        order = logits.argsort(-1, descending=True) if sort else torch.arange(40).expand(4, -1)
        s = logits.gather(-1, order)
        mass = F.softmax(s, -1) if scores == "probs" else s
        before = mass.cumsum(-1) - (mass if shift else 0)
        return torch.zeros_like(before, dtype=torch.bool).scatter(-1, order, before < p)

    for p in (0.9, 0.5):
        result = fn(logits, p)
        got = keep_mask(result)
        want = torch.isfinite(top_p_filter(logits, p))
        if torch.equal(got, want):
            continue
        if torch.isfinite(result).all() and (result >= 0).all() and torch.allclose(result.sum(-1), torch.ones(4)):
            raise Hint("you returned probabilities (hint: return the logits, -inf for the dropped tokens)")
        if torch.equal(got, nucleus_variant(p, shift=False)):
            raise Hint("off by one: you dropped the token whose probability makes the mass reach p, so a row whose "
                       "top token alone is above p keeps nothing (hint: keep a token while the mass of the tokens "
                       "above it is below p, cumsum - probs < p)")
        if (got.sum(-1) == 0).any():
            raise Hint("a row kept no token at all, so its softmax is NaN (hint: the most likely token always "
                       "stays, even when its own probability is above p)")
        if torch.equal(got, nucleus_variant(p, sort=False)):
            raise Hint("you added the probabilities up in vocabulary order (hint: sort first, most likely down)")
        if torch.equal(got, nucleus_variant(p, scores="logits")):
            raise Hint("you added up logits (hint: softmax the sorted logits before cumsum)")
        if torch.equal(got, want.gather(-1, logits.argsort(-1, descending=True))):
            raise Hint("your mask is in sorted order (hint: put it back in vocabulary order, scatter with the "
                       "sort's indices)")
        raise Hint(f"for p={p} you kept {got.sum(-1).tolist()} tokens per row; the nucleus has {want.sum(-1).tolist()}")
    if torch.isfinite(out).all():
        raise Hint("the dropped tokens must be -inf, not 0 (hint: softmax gives a logit of 0 the weight e^0 = 1)")
    kept = torch.isfinite(out)
    if not torch.equal(out[kept], logits[kept]):
        raise Hint("the kept logits changed (hint: leave them as they are, no softmax, no rescaling)")
    return "the smallest set of most likely tokens reaching p in every row, the top token always in"


def _pipeline(x, temperature, top_k=None, top_p=None, order="tkp"):
    """The right pipeline (order "tkp"), or one with the steps in another order."""
    for step in order:
        if step == "t":
            x = apply_temperature(x, temperature)
        if step == "k" and top_k is not None:
            x = top_k_filter(x, top_k)
        if step == "p" and top_p is not None:
            x = top_p_filter(x, top_p)
    return F.softmax(x, dim=-1)


@exercise
def next_token_probs(fn):
    """Check ``fn(logits [V], temperature, top_k=None, top_p=None) -> [V]`` against the package's order."""
    logits = torch.randn(30, generator=torch.Generator().manual_seed(3)) * 2      # [V]
    settings = [dict(temperature=1.0), dict(temperature=0.5, top_p=0.8), dict(temperature=2.0, top_p=0.5),
                dict(temperature=0.7, top_k=5), dict(temperature=1.5, top_k=8, top_p=0.7), dict(temperature=0)]
    if fn(logits, 1.0) is None:
        raise not_attempted("next_token_probs", "sampling")
    for s in settings:
        try:
            got = fn(logits, **s)
        except TypeError as e:
            raise Hint(f"{s} failed with {e} (hint: None means the filter is off, so skip it)") from e
        want = _pipeline(logits, **s)
        if got.shape != want.shape:
            raise Hint(f"return the [V] probabilities, shape {list(want.shape)}; got {list(got.shape)}")
        if torch.allclose(got, want, atol=1e-6):
            continue
        if s["temperature"] == 0:
            raise Hint("temperature 0 is greedy: all the probability on the argmax (hint: dividing by 0 gives inf "
                       "and NaN; mg.apply_temperature(logits, 0) handles it)")
        if not torch.allclose(got.sum(), torch.tensor(1.0), atol=1e-4) or (got < 0).any():
            raise Hint(f"{s}: the result is not a probability distribution, sum {got.sum():.3f} (hint: end with a "
                       f"softmax)")
        T = s["temperature"]
        if torch.allclose(got, _pipeline(logits * T, 1.0, s.get("top_k"), s.get("top_p")), atol=1e-6):
            raise Hint("you multiplied by the temperature (hint: divide the logits by it, so that T < 1 sharpens)")
        if torch.allclose(got, _pipeline(logits, 1.0, s.get("top_k"), s.get("top_p")), atol=1e-6):
            raise Hint(f"{s}: the temperature had no effect (hint: divide the logits by it; dividing probabilities "
                       f"by T and renormalising gives the same probabilities back)")
        for order in ("kpt", "ptk", "pkt", "ktp"):
            if torch.allclose(got, _pipeline(logits, **s, order=order), atol=1e-6):
                raise Hint(f"{s}: the knobs are in the wrong order (hint: temperature first, then top-k, then top-p: "
                           f"the nucleus is measured on the distribution you will draw from)")
        raise Hint(f"{s}: your probabilities differ from the pipeline's by up to {(got - want).abs().max():.3g}")
    return "temperature, top-k, top-p, softmax, and greedy at temperature 0"


# ------------------------------------------------------------------------------- KV cache

def cached_forward(model, idx, cache, position: int) -> torch.Tensor:
    """One forward pass of a GPT with learned positions that keeps its keys and values in ``cache``.

    idx:      [B, T] the new tokens; ``position`` is where the first of them stands (the number
              of tokens already fed, whose keys and values the cache holds).
    cache:    any object with ``update(layer, k, v) -> (all_k, all_v)``: k, v are this call's
              [B, H, T, D] keys and values of one layer; it returns the past ones with these
              appended, each [B, H, P + T, D].
    Returns logits [B, T, V].
    """
    tr = model.transformer
    B, T = idx.shape
    x = tr.wte(idx) + tr.wpe(torch.arange(position, position + T, device=idx.device))
    for layer, block in enumerate(tr.h):
        a = block.attn
        C, H = x.size(-1), a.n_head
        q, k, v = a.c_attn(block.ln_1(x)).split(C, dim=2)
        q, k, v = (t.view(B, T, H, C // H).transpose(1, 2) for t in (q, k, v))   # [B, H, T, D]
        try:
            kv = cache.update(layer, k, v)                                        # [B, H, P + T, D] each
        except RuntimeError as e:
            if "Sizes of tensors must match" in str(e):
                raise Hint(f"update failed to join the stored keys [B, H, {position}, D] and the new ones "
                           f"[B, H, {T}, D] ({str(e)[:50]}...) (hint: concatenate along the positions, "
                           f"dim=2)") from e
            raise
        _check_update(kv, k, v, position, layer)
        k, v = kv
        P = k.size(2) - T
        att = (q @ k.transpose(-2, -1)) / math.sqrt(k.size(-1))                  # [B, H, T, P + T]
        att = att.masked_fill(~causal_mask(T, P, x.device), float("-inf")).softmax(dim=-1)
        x = x + a.c_proj((att @ v).transpose(1, 2).reshape(B, T, C))
        x = x + block.mlp(block.ln_2(x))
    return model.lm_head(tr.ln_f(x))


def _check_update(kv, k_new, v_new, P, layer):
    """Explain what is wrong with what a cache's update returned (kv) for this step's k_new,
    v_new [B, H, T, D] after P tokens, before it is used."""
    B, H, T, D = k_new.shape
    if kv is None or (isinstance(kv, tuple) and any(t is None for t in kv)):
        raise NotAttempted("not attempted yet: update returns None. Fill in the TODO and run the cell again "
                           "(stuck? a reference solution is in minigpt/exercises/solutions/sampling.py)")
    if not (isinstance(kv, (tuple, list)) and len(kv) == 2 and all(isinstance(t, torch.Tensor) for t in kv)):
        raise Hint(f"update must return two tensors, (all keys, all values); got {type(kv).__name__}")
    k, v = kv
    want = [B, H, P + T, D]
    if list(k.shape) == want and list(v.shape) == want:
        if torch.equal(k[:, :, -T:], v_new) and not torch.equal(k_new, v_new):
            raise Hint(f"layer {layer}: update returned the values where the keys go (hint: return (k, v), "
                       f"in that order)")
        if not (torch.equal(k[:, :, -T:], k_new) and torch.equal(v[:, :, -T:], v_new)):
            raise Hint(f"layer {layer}: the last {T} keys and values returned are not this step's (hint: append "
                       f"the new ones after the stored ones, in order: torch.cat((old, new), dim=2))")
        return
    got = list(k.shape)
    if got == [B, H, T, D] and P > 0:
        raise Hint(f"layer {layer}, {P} tokens already fed: update returned only this step's {T} key(s), so the "
                   f"new token cannot see the past (hint: append the new k and v to the stored ones and return "
                   f"all of them, torch.cat((old, new), dim=2))")
    if got == [B, H, P, D] and P > 0:
        raise Hint(f"layer {layer}: update returned the {P} stored keys without this step's {T} (hint: store "
                   f"first, then return the past and the new ones together)")
    if len(got) == 4 and got[2] > P + T:
        raise Hint(f"layer {layer} got {got[2]} keys where {P + T} tokens were fed (hint: keep one list of keys "
                   f"and values per layer, so that the layers do not add to each other's)")
    if len(got) == 4 and got[2] == T and got[1] != H:
        raise Hint(f"the keys are {got}, the heads grew instead of the positions (hint: keys are "
                   f"[B, H, T, D]: concatenate along dim=2, the positions)")
    raise Hint(f"layer {layer}: keys should be [B, H, P + T, D] = {want}, got {got} (hint: concatenate along "
               f"the positions, dim=2)")


@exercise
def kv_cache(MyCache, model, tok, prompt: str = "ROMEO:\nBut soft, what light", n: int = 40):
    """Check a cache class: ``MyCache()`` with ``update(layer, k, v)``. Greedy generation through
    ``cached_forward`` (the prompt at once, then one token per step) must give the tokens and
    logits that recomputing the whole context gives."""
    ids = tok.encode(prompt)
    n = min(n, model.config.block_size - len(ids))
    cache = MyCache()
    with torch.no_grad():
        logits = cached_forward(model, torch.tensor([ids], device=model.device), cache, 0)     # the prompt at once
        full = model(torch.tensor([ids], device=model.device)).logits
        if not torch.allclose(logits, full, atol=1e-4, rtol=1e-4):
            raise Hint("the logits of the prompt itself differ from the model's (hint: the first call has an "
                       "empty cache; update should return just the keys and values it was given)")
        out = list(ids)
        for step in range(n):
            out.append(int(logits[0, -1].argmax()))
            logits = cached_forward(model, torch.tensor([[out[-1]]], device=model.device), cache, len(out) - 1)
            full = model(torch.tensor([out], device=model.device)).logits[:, -1:]
            gap = (logits - full).abs().max().item()
            if gap > 1e-3:
                raise Hint(f"step {step + 1}: the new token's logits differ from the full recomputation by {gap:.2g} "
                           f"(hint: are keys and values returned in the order (k, v), for this layer?)")
    text = tok.decode(out[len(ids):])
    return f"your cache gives the full recomputation's logits for {n} greedy steps: {text[:30]!r}..."


@exercise
def top_probability(answer, model, tok, prompt: str, temperature: float = 2.0):
    """Widget question: the probability (in %) of the most likely next token after ``prompt`` at
    ``temperature``, every other knob off, read off the explorer."""
    if answer is None:
        raise not_attempted("answer", "sampling")
    d = next_token_distribution(model, tok, prompt, temperature=temperature)
    hot = float(d.final.max()) * 100
    cold = float(d.raw.max()) * 100
    got = float(answer)
    if 0 < got <= 1 and abs(got * 100 - hot) < 0.6:
        raise Hint(f"{got} looks like a fraction; answer in percent, {got * 100:.1f}")
    if abs(got - hot) <= 0.6:
        return (f"at temperature {temperature:g} the top token keeps {hot:.1f}% (at 1: {cold:.1f}%): dividing the "
                f"logits by T > 1 flattens the distribution")
    if abs(got - cold) <= 0.6:
        raise Hint(f"{cold:.1f}% is the probability at temperature 1 (hint: set the temperature slider to "
                   f"{temperature:g}, and top-k, top-p and the penalty off)")
    raise Hint(f"not {got:.1f}% (hint: type the prompt {prompt!r}, set temperature {temperature:g} with the other "
               f"knobs off, and read the tallest bar of the last panel)")
