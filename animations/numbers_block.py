"""The decoder block and the whole stack, from the shipped model: the residual stream stage by
stage, then the final norm, the LM head and the softmax."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from shipped_model import check_layer, check_pos, check_same, encode, floats


def block_stages(text: str, layer: int, pos: int = -1) -> dict:
    """The residual-stream vector of the token at ``pos`` at each stage of one decoder block.

    Stages, in order: "x" (entering the block), "ln_1(x)", "attn" (what attention adds),
    "x + attn", "ln_2", "mlp" (what the MLP adds), "x + attn + mlp" (leaving the block =
    the model's hidden state after this layer).

    Returns {"tokens", "ids", "layer", "pos", "n_embd", "stages": [{"name", "vector": [C], "norm"}]}.
    """
    model, tok, ids, idx = encode(text)
    check_layer(model, layer)
    i = check_pos(len(ids), pos)
    with torch.no_grad():
        hs = model(idx, return_hidden_states=True).hidden_states
        block = model.transformer.h[layer]
        x = hs[layer]
        h1 = block.ln_1(x)
        a, _ = block.attn(h1)
        x1 = x + a
        h2 = block.ln_2(x1)
        m = block.mlp(h2)
        x2 = x1 + m
    check_same(x2, hs[layer + 1], "block output")
    stages = [("x", x), ("ln_1(x)", h1), ("attn", a), ("x + attn", x1), ("ln_2", h2), ("mlp", m),
              ("x + attn + mlp", x2)]
    return {"tokens": [tok.token_str(t) for t in ids], "ids": ids, "layer": layer, "pos": i,
            "n_embd": model.config.n_embd,
            "stages": [{"name": n, "vector": floats(v[0, i], 4), "norm": float(v[0, i].norm())} for n, v in stages]}


def stack_and_head(text: str, pos: int = -1, k: int = 5) -> dict:
    """The token at ``pos`` through the whole model: the residual stream's norm after the
    embeddings and after each block, the final LayerNorm, the LM head's logits and the softmax.

    Returns {"tokens", "ids", "pos", "n_layer", "n_embd", "vocab_size",
    "hidden_norms": [n_layer + 1] (embeddings, then after each block), "ln_f_norm",
    "top_tokens": [str], "top_ids", "top_logits", "top_probs" (the k most likely next tokens),
    "rest": probability of all other tokens together}.
    """
    model, tok, ids, idx = encode(text)
    i = check_pos(len(ids), pos)
    with torch.no_grad():
        out = model(idx, return_hidden_states=True)
        hs = [h[0, i] for h in out.hidden_states]
        z = model.transformer.ln_f(hs[-1])
        logits = model.lm_head(z)
        probs = F.softmax(logits, dim=-1)
    check_same(logits, out.logits[0, i], "logits")
    top_p, top_i = probs.topk(k)
    return {"tokens": [tok.token_str(t) for t in ids], "ids": ids, "pos": i, "n_layer": model.config.n_layer,
            "n_embd": model.config.n_embd, "vocab_size": model.config.vocab_size,
            "hidden_norms": [float(h.norm()) for h in hs], "ln_f_norm": float(z.norm()),
            "top_tokens": [tok.token_str(t) for t in top_i.tolist()], "top_ids": top_i.tolist(),
            "top_logits": [float(logits[t]) for t in top_i.tolist()], "top_probs": [float(p) for p in top_p],
            "rest": max(0.0, 1.0 - float(top_p.sum()))}
