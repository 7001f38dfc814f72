"""Attention, from the shipped model: every map, one query by hand, the causal mask, the heads."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

import minigpt as mg
from shipped_model import check_layer, check_pos, check_same, encode, floats


def _check_head(model, head: int) -> None:
    H = model.config.n_head
    if not 0 <= head < H:
        raise ValueError(f"head must be in 0..{H - 1}, got {head}")


# ------------------------------------------------------------------ every map


def all_attention(text: str) -> dict:
    """Every attention map of ``text``: {"tokens", "ids", "n_layer", "n_head",
    "weights": [layer][head][query][key]} (a query's weights over keys sum to 1; future keys are 0)."""
    model, tok, ids, idx = encode(text)
    with torch.no_grad():
        att = model(idx, return_attention=True).attentions
    return {"tokens": [tok.token_str(i) for i in ids], "ids": ids, "n_layer": len(att), "n_head": att[0].size(1),
            "weights": [floats(a[0], 5) for a in att]}


def attention(text: str, layer: int, head: int) -> dict:
    """One head's attention map: {"tokens", "ids", "layer", "head", "weights": [query][key]}."""
    model = encode(text)[0]
    check_layer(model, layer)
    _check_head(model, head)
    a = all_attention(text)
    return {"tokens": a["tokens"], "ids": a["ids"], "layer": layer, "head": head, "weights": a["weights"][layer][head]}


# ------------------------------------------------------------------ one query by hand


def qkv_for(text: str, layer: int, head: int, query_pos: int = -1) -> dict:
    """One attention step by hand, for one query position of one head.

    x = ln_1(hidden state entering ``layer``); q, k, v = x @ W_q, W_k, W_v (this head's slice);
    scores_j = q · k_j for every key j <= query; scaled = scores / sqrt(d_head);
    weights = softmax(scaled); output = sum_j weights_j v_j.
    Checked against the model's own attention map (RuntimeError if they differ).

    Returns {"tokens", "ids", "layer", "head", "query_pos", "d_head", "x" [T'][C], "q" [D],
    "k" [T'][D], "v" [T'][D], "scores" [T'], "scaled" [T'], "weights" [T'], "output" [D]},
    with T' = query_pos + 1 (the keys the query may see).
    """
    model, tok, ids, idx = encode(text)
    check_layer(model, layer)
    _check_head(model, head)
    H, i = model.config.n_head, check_pos(len(ids), query_pos)
    with torch.no_grad():
        out = model(idx, return_attention=True, return_hidden_states=True)
        block = model.transformer.h[layer]
        x = block.ln_1(out.hidden_states[layer][0])  # [T, C]
        C = x.size(-1)
        D = C // H
        q, k, v = block.attn.c_attn(x).split(C, dim=-1)
        sl = slice(head * D, (head + 1) * D)
        q, k, v = q[i, sl], k[: i + 1, sl], v[: i + 1, sl]  # [D], [i+1, D], [i+1, D]
        scores = k @ q
        scaled = scores / math.sqrt(D)
        weights = F.softmax(scaled, dim=-1)
        output = weights @ v
        theirs = out.attentions[layer][0, head, i, : i + 1]
    check_same(weights, theirs, "attention weights", atol=1e-5)
    return {"tokens": [tok.token_str(t) for t in ids], "ids": ids, "layer": layer, "head": head, "query_pos": i,
            "d_head": D, "x": floats(x[: i + 1]), "q": floats(q), "k": floats(k), "v": floats(v),
            "scores": floats(scores), "scaled": floats(scaled), "weights": floats(weights),
            "output": floats(output)}


# ------------------------------------------------------------------ the mask and the heads


def masked_scores(text: str, layer: int, head: int) -> dict:
    """The whole score matrix of one head, before and after the causal mask and the softmax.

    scaled[i][j] = q_i · k_j / sqrt(d_head) for every query i and key j (future keys too);
    masked = scaled with the future (j > i) set to -inf (None here); weights = softmax(masked) per row.

    Returns {"tokens", "ids", "layer", "head", "d_head", "scaled": [T][T], "masked": [T][T]
    (None above the diagonal), "weights": [T][T] (0 above the diagonal)}.
    """
    model, tok, ids, idx = encode(text)
    check_layer(model, layer)
    _check_head(model, head)
    H = model.config.n_head
    with torch.no_grad():
        out = model(idx, return_attention=True, return_hidden_states=True)
        block = model.transformer.h[layer]
        x = block.ln_1(out.hidden_states[layer][0])  # [T, C]
        T, C = x.shape
        D = C // H
        q, k, _ = block.attn.c_attn(x).split(C, dim=-1)
        sl = slice(head * D, (head + 1) * D)
        scaled = (q[:, sl] @ k[:, sl].T) / math.sqrt(D)  # [T, T]
        masked = scaled.masked_fill(~mg.causal_mask(T), float("-inf"))
        weights = F.softmax(masked, dim=-1)
    check_same(weights, out.attentions[layer][0, head], "attention weights", atol=1e-5)
    return {"tokens": [tok.token_str(i) for i in ids], "ids": ids, "layer": layer, "head": head, "d_head": D,
            "scaled": floats(scaled, 4), "masked": floats(masked, 4), "weights": floats(weights, 5)}


def head_outputs(text: str, layer: int, pos: int = -1) -> dict:
    """Multi-head attention of one layer, for the token at ``pos``: each head's weights and output,
    the heads concatenated, and the output projection.

    Returns {"tokens", "ids", "layer", "pos", "n_head", "d_head", "n_embd",
    "weights": [H][T][T] (every head's map), "head_out": [H][D] (each head's output at pos),
    "concat": [C] (the heads side by side), "projected": [C] (concat @ W_O + b: what the
    attention adds to the residual stream), "head_norms": [H], "projected_norm"}.
    """
    model, tok, ids, idx = encode(text)
    check_layer(model, layer)
    i = check_pos(len(ids), pos)
    with torch.no_grad():
        out = model(idx, return_attention=True, return_hidden_states=True)
        block = model.transformer.h[layer]
        x = block.ln_1(out.hidden_states[layer][0])  # [T, C]
        T, C = x.shape
        H = model.config.n_head
        D = C // H
        _, _, v = block.attn.c_attn(x).split(C, dim=-1)
        att = out.attentions[layer][0]  # [H, T, T]
        v = v.view(T, H, D).transpose(0, 1)  # [H, T, D]
        heads = torch.einsum("ht,htd->hd", att[:, i], v)  # [H, D]: each head's weighted sum of values
        concat = heads.reshape(C)  # head 0's D numbers, then head 1's, ...
        projected = block.attn.c_proj(concat)
        theirs, _ = block.attn(x[None])
    check_same(projected, theirs[0, i], "attention output")
    return {"tokens": [tok.token_str(t) for t in ids], "ids": ids, "layer": layer, "pos": i, "n_head": H,
            "d_head": D, "n_embd": C, "weights": floats(att, 5), "head_out": floats(heads, 4),
            "concat": floats(concat, 4), "projected": floats(projected, 4),
            "head_norms": [float(n) for n in heads.norm(dim=-1)], "projected_norm": float(projected.norm())}
