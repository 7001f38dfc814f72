"""Checks for notebook 02 (embeddings): the sinusoidal encoding, nearest neighbours by cosine
similarity, the first hidden state, and a question answered with the EmbeddingExplorer."""

from __future__ import annotations

import torch

from . import Hint, exercise, not_attempted
from ..viz.plots import nearest_neighbours, sinusoidal_positions


def _variant(exponent, layout="alternate"):
    """A 16 x 8 sinusoidal encoding with one typical slip built in."""
    angle = torch.arange(16.0)[:, None] * 10000.0 ** (-exponent)
    if layout == "halves":
        return torch.cat([angle.sin(), angle.cos()], dim=1)
    pe = torch.zeros(16, 8)
    pe[:, 0::2], pe[:, 1::2] = (angle.cos(), angle.sin()) if layout == "swapped" else (angle.sin(), angle.cos())
    return pe


@exercise
def sinusoidal(fn):
    """Check ``fn(T, C) -> [T, C]`` against ``minigpt.viz.plots.sinusoidal_positions``."""
    got = fn(16, 8)
    if got is None:
        raise not_attempted("sinusoidal", "embeddings")
    got = torch.as_tensor(got).float().cpu()
    want = sinusoidal_positions(16, 8)
    if tuple(got.shape) != (16, 8):
        raise Hint(f"the result must be [T, C] = [16, 8], got {tuple(got.shape)} (hint: rows are positions, "
                   f"columns channels)")
    if torch.allclose(got, want, atol=1e-5):
        if not torch.allclose(torch.as_tensor(fn(50, 128)).float().cpu(), sinusoidal_positions(50, 128), atol=1e-5):
            raise Hint("right for [16, 8] but not for [50, 128] (hint: avoid hard-coded sizes)")
        return "your encoding equals minigpt.viz.plots.sinusoidal_positions"
    right = torch.arange(0, 8, 2) / 8
    slips = [
        (_variant(right, "swapped"), "sine and cosine are swapped (hint: even channels 0, 2, ... hold the sine, "
                                     "odd ones the cosine)"),
        (_variant(right, "halves"), "all the sines come first and all the cosines after (hint: they alternate, "
                                    "pe[:, 0::2] = sin, pe[:, 1::2] = cos)"),
        (_variant(torch.arange(4) / 8), "the frequencies are off (hint: the exponent is 2i / C with 2i = 0, 2, 4, "
                                        "...; torch.arange(0, C, 2) / C gives it)"),
        (_variant(-right), "the angle grows with the channel instead of shrinking (hint: pos / 10000 ** (2i / C), "
                           "i.e. pos * 10000 ** (-2i / C))"),
    ]
    for wrong, hint in slips:
        if torch.allclose(got, wrong, atol=1e-5):
            raise Hint(hint)
    if torch.allclose(got[0], torch.zeros(8)):
        raise Hint("row 0 is all zeros (hint: cos(0) = 1, so the odd channels of position 0 are 1)")
    raise Hint(f"position 1 should be {want[1].numpy().round(3)}, got {got[1].numpy().round(3)}")


@exercise
def nearest(fn, model, tok):
    """Check ``fn(W, i, k) -> ids`` against ``minigpt.viz.plots.nearest_neighbours``."""
    W = model.transformer.wte.weight.detach().float().cpu()   # on the CPU, as the package's, so near-ties agree
    probe = [tok.encode(c)[0] for c in "eA.\n"]
    if fn(W.clone(), probe[0], 5) is None:
        raise not_attempted("nearest", "embeddings")
    for i in probe:
        want = [j for _, j, _ in nearest_neighbours(model, tok, i, k=5)]
        got = [int(j) for j in fn(W.clone(), i, 5)]
        if got == want:
            continue
        name = repr(tok.token_str(i))
        dots = W @ W[i]
        dots[i] = -float("inf")
        if i in got:
            raise Hint(f"for {name} your list contains {name} itself (hint: a row is always most similar to "
                       f"itself; set its similarity to -inf before taking the top k)")
        if got == dots.topk(5).indices.tolist():
            raise Hint(f"for {name} you ranked by the dot product (hint: rows have different lengths, so normalise "
                       f"them first: cosine = a·b / (|a| |b|), e.g. F.normalize(W, dim=1))")
        if set(got) == set(want):
            raise Hint(f"for {name} you found the right neighbours in the wrong order (hint: most similar first)")
        raise Hint(f"for {name} the 5 nearest are {want}, you returned {got}")
    return "your neighbours are the package's"


@exercise
def embed(fn, model, tok):
    """Check ``fn(idx, wte, wpe) -> [B, T, C]`` against the model's first hidden state."""
    device = model.device
    wte, wpe = model.transformer.wte.weight.detach(), model.transformer.wpe.weight.detach()
    idx = torch.tensor([tok.encode("First Citizen:"), tok.encode("Second Citizen")], device=device)  # [2, 14]
    got = fn(idx, wte, wpe)
    if got is None:
        raise not_attempted("embed", "embeddings")
    with torch.no_grad():
        want = model(idx, return_hidden_states=True).hidden_states[0]
    B, T = idx.shape
    if tuple(got.shape) != tuple(want.shape):
        if tuple(got.shape) == (B, T, 2 * wte.shape[1]):
            raise Hint("your result is [B, T, 2C]: you concatenated (hint: token and position vectors are added)")
        raise Hint(f"the result must be [B, T, C] = {tuple(want.shape)}, got {tuple(got.shape)}")
    if torch.allclose(got, want, atol=1e-5):
        return "embed(idx) == hidden_states[0]"
    pos = torch.arange(T, device=device)
    if torch.allclose(got, wte[idx], atol=1e-5):
        raise Hint("you returned the token embeddings only (hint: add the position embeddings wpe[0..T-1])")
    if torch.allclose(got, wte[idx] + wpe[idx], atol=1e-5):
        raise Hint("you looked wpe up with the token ids (hint: positions are 0, 1, ..., T-1: torch.arange(T))")
    if torch.allclose(got, wte[idx] + wpe[pos + 1], atol=1e-5):
        raise Hint("your positions start at 1 (hint: the first token is at position 0)")
    if torch.allclose(got[0], want[0], atol=1e-5):
        raise Hint("the first sequence is right but not the second (hint: every sequence uses positions 0..T-1)")
    raise Hint("not equal to hidden_states[0] (hint: it is wte[idx] + wpe[0..T-1], nothing else; dropout is off)")


@exercise
def neighbour_of(answer, model, tok, token: str):
    """Widget question: ``answer`` is the character the EmbeddingExplorer shows nearest to ``token``."""
    if answer is None:
        raise not_attempted("answer", "embeddings")
    ranked = [tok.token_str(j) for _, j, _ in nearest_neighbours(model, tok, tok.encode(token)[0], k=8)]
    got = str(answer)
    if got == ranked[0]:
        return f"the nearest character to {token!r} is {ranked[0]!r}; then come {ranked[1:5]}"
    if got == token:
        raise Hint(f"{token!r} itself is not counted (hint: pick {token!r} in the explorer and read the first "
                   f"entry of its neighbour list)")
    if got in ranked:
        raise Hint(f"{got!r} is close to {token!r}, number {ranked.index(got) + 1} in its list, but not the "
                   f"nearest (hint: the list is sorted, most similar first)")
    raise Hint(f"{got!r} is not among the 8 nearest of {token!r} (hint: choose {token!r} in the explorer's "
               f"menu and read its list)")
