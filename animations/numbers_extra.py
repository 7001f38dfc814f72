"""More real numbers for the animations of scenes 5-8 (masked scores, heads, the residual stream,
per-position loss, gradients), computed through ``minigpt`` from the shipped model.

Same rules as ``model_numbers``: a scene never types a number, it asks here; results are plain
JSON-ready dicts, cached on disk beside those of ``model_numbers`` (same folder, same
environment variables, same ``cached`` decorator, whose key also hashes this file, so a fix here
refreshes its numbers).
Every function checks its hand-computed numbers against the model's own output and raises
RuntimeError if they differ, so a picture can never drift from what the model does.
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import model_numbers as mn  # noqa: E402
from model_numbers import _encode, _floats, cached, mg, model_and_tokenizer  # noqa: E402


def _check_layer(model, layer: int) -> None:
    L = model.config.n_layer
    if not 0 <= layer < L:
        raise ValueError(f"layer must be in 0..{L - 1}, got {layer}")


def _check_pos(T: int, pos: int) -> int:
    if not -T <= pos < T:
        raise ValueError(f"position {pos} is outside the text's {T} tokens")
    return pos % T


def _same(a, b, what: str, atol: float = 1e-4) -> None:
    import torch

    if not torch.allclose(a, b, atol=atol):
        raise RuntimeError(f"{what}: the hand-computed numbers differ from the model's own")


# ------------------------------------------------------------------ attention: scores, mask, heads


@cached(modules=("model",))
def masked_scores(text: str, layer: int, head: int) -> dict:
    """The whole score matrix of one head, before and after the causal mask and the softmax.

    scaled[i][j] = q_i · k_j / sqrt(d_head) for every query i and key j (future keys too);
    masked = scaled with the future (j > i) set to -inf (None here); weights = softmax(masked) per row.

    Returns {"tokens", "ids", "layer", "head", "d_head", "scaled": [T][T], "masked": [T][T]
    (None above the diagonal), "weights": [T][T] (0 above the diagonal)}.
    """
    import torch
    import torch.nn.functional as F

    model, tok, ids, idx = _encode(text)
    _check_layer(model, layer)
    H = model.config.n_head
    if not 0 <= head < H:
        raise ValueError(f"head must be in 0..{H - 1}, got {head}")
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
    _same(weights, out.attentions[layer][0, head], "attention weights", atol=1e-5)
    return {"tokens": [tok.token_str(i) for i in ids], "ids": ids, "layer": layer, "head": head, "d_head": D,
            "scaled": _floats(scaled, 4), "masked": _floats(masked, 4), "weights": _floats(weights, 5)}


@cached(modules=("model",))
def head_outputs(text: str, layer: int, pos: int = -1) -> dict:
    """Multi-head attention of one layer, for the token at ``pos``: each head's weights and output,
    the heads concatenated, and the output projection.

    Returns {"tokens", "ids", "layer", "pos", "n_head", "d_head", "n_embd",
    "weights": [H][T][T] (every head's map), "head_out": [H][D] (each head's output at pos),
    "concat": [C] (the heads side by side), "projected": [C] (concat @ W_O + b: what the
    attention adds to the residual stream), "head_norms": [H], "projected_norm"}.
    """
    import torch

    model, tok, ids, idx = _encode(text)
    _check_layer(model, layer)
    i = _check_pos(len(ids), pos)
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
        theirs, _, _ = block.attn(x[None])
    _same(projected, theirs[0, i], "attention output")
    return {"tokens": [tok.token_str(t) for t in ids], "ids": ids, "layer": layer, "pos": i, "n_head": H,
            "d_head": D, "n_embd": C, "weights": _floats(att, 5), "head_out": _floats(heads, 4),
            "concat": _floats(concat, 4), "projected": _floats(projected, 4),
            "head_norms": [float(n) for n in heads.norm(dim=-1)], "projected_norm": float(projected.norm())}


# ------------------------------------------------------------------ the decoder block and the stack


@cached(modules=("model",))
def block_stages(text: str, layer: int, pos: int = -1) -> dict:
    """The residual-stream vector of the token at ``pos`` at each stage of one decoder block.

    Stages, in order: "x" (entering the block), "ln_1(x)", "attn" (what attention adds),
    "x + attn", "ln_2", "mlp" (what the MLP adds), "x + attn + mlp" (leaving the block =
    the model's hidden state after this layer).

    Returns {"tokens", "ids", "layer", "pos", "n_embd", "stages": [{"name", "vector": [C], "norm"}]}.
    """
    import torch

    model, tok, ids, idx = _encode(text)
    _check_layer(model, layer)
    i = _check_pos(len(ids), pos)
    with torch.no_grad():
        hs = model(idx, return_hidden_states=True).hidden_states
        block = model.transformer.h[layer]
        x = hs[layer]
        h1 = block.ln_1(x)
        a, _, _ = block.attn(h1)
        x1 = x + a
        h2 = block.ln_2(x1)
        m = block.mlp(h2)
        x2 = x1 + m
    _same(x2, hs[layer + 1], "block output")
    stages = [("x", x), ("ln_1(x)", h1), ("attn", a), ("x + attn", x1), ("ln_2", h2), ("mlp", m),
              ("x + attn + mlp", x2)]
    return {"tokens": [tok.token_str(t) for t in ids], "ids": ids, "layer": layer, "pos": i,
            "n_embd": model.config.n_embd,
            "stages": [{"name": n, "vector": _floats(v[0, i], 4), "norm": float(v[0, i].norm())} for n, v in stages]}


@cached(modules=("model", "sampling"))
def stack_and_head(text: str, pos: int = -1, k: int = 5) -> dict:
    """The token at ``pos`` through the whole model: the residual stream's norm after the
    embeddings and after each block, the final LayerNorm, the LM head's logits and the softmax.

    Returns {"tokens", "ids", "pos", "n_layer", "n_embd", "vocab_size",
    "hidden_norms": [n_layer + 1] (embeddings, then after each block), "ln_f_norm",
    "top_tokens": [str], "top_ids", "top_logits", "top_probs" (the k most likely next tokens),
    "rest": probability of all other tokens together}.
    """
    import torch
    import torch.nn.functional as F

    model, tok, ids, idx = _encode(text)
    i = _check_pos(len(ids), pos)
    with torch.no_grad():
        out = model(idx, return_hidden_states=True)
        hs = [h[0, i] for h in out.hidden_states]
        z = model.transformer.ln_f(hs[-1])
        logits = model.lm_head(z)
        probs = F.softmax(logits, dim=-1)
    _same(logits, out.logits[0, i], "logits")
    top_p, top_i = probs.topk(k)
    return {"tokens": [tok.token_str(t) for t in ids], "ids": ids, "pos": i, "n_layer": model.config.n_layer,
            "n_embd": model.config.n_embd, "vocab_size": model.config.vocab_size,
            "hidden_norms": [float(h.norm()) for h in hs], "ln_f_norm": float(z.norm()),
            "top_tokens": [tok.token_str(t) for t in top_i.tolist()], "top_ids": top_i.tolist(),
            "top_logits": [float(logits[t]) for t in top_i.tolist()], "top_probs": [float(p) for p in top_p],
            "rest": max(0.0, 1.0 - float(top_p.sum()))}


# ------------------------------------------------------------------ training


@cached(modules=("model",))
def position_losses(text: str) -> dict:
    """Teacher forcing on one line: inputs = text[:-1], targets = text[1:], and the model's
    cross-entropy at each position (-log p(target)), whose mean is the model's loss.

    Returns {"inputs": [str], "targets": [str], "input_ids", "target_ids", "losses": [T-1],
    "target_probs": [T-1] (p of the right next token), "predicted": [str] (the model's top
    guess at each position), "mean_loss"}.
    """
    import torch
    import torch.nn.functional as F

    model, tok, ids, idx = _encode(text)
    if len(ids) < 2:
        raise ValueError("teacher forcing needs a text of at least two tokens")
    x, y = idx[:, :-1], idx[:, 1:]
    with torch.no_grad():
        out = model(x, targets=y)
        logp = F.log_softmax(out.logits[0], dim=-1)  # [T, V]
        losses = -logp.gather(-1, y[0, :, None])[:, 0]
    _same(losses.mean(), out.loss, "mean loss", atol=1e-5)
    return {"inputs": [tok.token_str(t) for t in ids[:-1]], "targets": [tok.token_str(t) for t in ids[1:]],
            "input_ids": ids[:-1], "target_ids": ids[1:], "losses": _floats(losses, 4),
            "target_probs": _floats(losses.neg().exp(), 4),
            "predicted": [tok.token_str(t) for t in out.logits[0].argmax(-1).tolist()],
            "mean_loss": float(out.loss)}


@cached(modules=("model",))
def gradient_norms(text: str, which: str = "initial", seed: int = 1337) -> dict:
    """One backward pass of the loss on ``text`` (teacher forcing), through the shipped model
    (``which="shipped"``) or a freshly initialised model of its shape (``"initial"``, seeded with
    ``seed``), as at the start of training.

    Returns {"which", "loss", "total_norm" (the global gradient norm that clipping looks at),
    "parts": [{"name", "norm"}] for the embeddings, each block and the final LayerNorm (their
    squares sum to total_norm**2), "attn_norm" (every attention weight of every block),
    "other_norm" (every other weight)}, with total_norm**2 == attn_norm**2 + other_norm**2.
    """
    import torch

    if which not in ("initial", "shipped"):
        raise ValueError(f"which must be 'initial' (a freshly initialised model) or 'shipped', got {which!r}")
    shipped, tok, ids, idx = _encode(text)
    if len(ids) < 2:
        raise ValueError("a loss needs a text of at least two tokens")
    if which == "shipped":
        model = shipped
    else:
        state = torch.random.get_rng_state()
        torch.manual_seed(seed)
        model = mg.GPT(shipped.config)
        torch.random.set_rng_state(state)  # leave the global random stream as it was
    was_training = model.training
    model.eval()  # no dropout: the same numbers every time
    try:
        model.zero_grad(set_to_none=True)
        loss = model(idx[:, :-1], targets=idx[:, 1:]).loss
        loss.backward()
        sq = {}
        for name, p in model.named_parameters():
            if p.grad is None:
                continue
            if name.startswith(("transformer.wte", "transformer.wpe", "lm_head")):
                part = "embeddings"  # wte is tied to lm_head: one matrix
            elif name.startswith("transformer.h."):
                part = f"block {int(name.split('.')[2]) + 1}"
            else:
                part = "final LayerNorm"
            g2 = float(p.grad.pow(2).sum())
            sq[part] = sq.get(part, 0.0) + g2
            kind = "attn" if ".attn." in name else "other"
            sq[kind] = sq.get(kind, 0.0) + g2
        total = float(torch.stack([p.grad.norm() for p in model.parameters() if p.grad is not None]).norm())
    finally:
        model.zero_grad(set_to_none=True)
        model.train(was_training)
    order = ["embeddings"] + [f"block {b + 1}" for b in range(model.config.n_layer)] + ["final LayerNorm"]
    result = {"which": which, "loss": float(loss.detach()), "total_norm": total,
              "parts": [{"name": n, "norm": math.sqrt(sq[n])} for n in order if n in sq],
              "attn_norm": math.sqrt(sq.get("attn", 0.0)), "other_norm": math.sqrt(sq.get("other", 0.0))}
    if not math.isclose(math.hypot(result["attn_norm"], result["other_norm"]), total, rel_tol=1e-3):
        raise RuntimeError("the gradient's parts do not add up to its total norm")
    return result


def _history() -> dict:
    if os.environ.get("MINIGPT_ANIMATION_WEIGHTS"):
        return mg.load_checkpoint(mn.weights_path()).get("extra", {}).get("history", {})
    return mg.pretrained.training_history(mn.MODEL_NAME)


@cached()
def grad_norm_history(clip: float = 1.0) -> dict:
    """The gradient norms recorded while the shipped model trained (before clipping).

    Returns {"clip", "steps", "clipped" (how many steps had a norm above ``clip``),
    "max_norm", "max_iter" (the step with the largest norm), "first_norm", "last_norm"}
    (norms None when the history has no grad_norm).
    """
    hist = _history()
    norms = [float(v) for v in hist.get("grad_norm", [])]
    iters = [int(v) for v in hist.get("iter", [])][: len(norms)]
    if not norms:
        return {"clip": clip, "steps": 0, "clipped": 0, "max_norm": None, "max_iter": None,
                "first_norm": None, "last_norm": None}
    j = max(range(len(norms)), key=norms.__getitem__)
    return {"clip": clip, "steps": len(norms), "clipped": sum(n > clip for n in norms), "max_norm": norms[j],
            "max_iter": iters[j] if j < len(iters) else j, "first_norm": norms[0], "last_norm": norms[-1]}


def train_config_defaults() -> dict:
    """The defaults of ``mg.TrainConfig`` the scenes quote (gradient clipping)."""
    from dataclasses import fields

    return {f.name: f.default for f in fields(mg.TrainConfig) if f.name in ("grad_clip",)}


# ------------------------------------------------------------------ decoding


@cached(modules=("sampling", "beam"))
def decoding_paths(prompt: str, steps: int = 4, k: int = 3, beam_width: int = 2, temperature: float = 1.0,
                   seed: int = 0) -> dict:
    """Greedy, sampling and beam search from one prompt, with the model's own probabilities
    (before any temperature, so greedy shows the real odds it chose from, not a one-hot).

    greedy / sampling: {"text", "logprob" (sum of log p of the chosen tokens), "steps": [{"tokens",
    "ids", "probs" (the k most likely, best first), "chosen", "chosen_id", "chosen_prob",
    "chosen_rank" (None outside the top k)}]}; sampling also has "temperature" and "seed"
    (the draw is ``mg.generate``'s with that seed and temperature).
    beam: {"beam_width", "results": [{"text", "logprob", "score"}] best first, "steps":
    [{"candidates": [{"parent", "token", "token_id", "logprob", "total_logprob", "status"}],
    "beams"}]} from ``mg.beam_search(..., record_tree=True)``.
    """
    model, tok = model_and_tokenizer()

    def path(temp):
        trace = mg.sampling.trace_generation(model, tok, prompt, max_new_tokens=steps, temperature=temp, seed=seed)
        out, total = [], 0.0
        for st in trace:
            top = st.distribution.top(k, stage="raw")
            ids = [i for _, i, _ in top]
            p = float(st.distribution.raw[st.token_id])
            total += math.log(max(p, 1e-30))
            out.append({"tokens": [s for s, _, _ in top], "ids": ids, "probs": [q for _, _, q in top],
                        "chosen": st.token, "chosen_id": st.token_id, "chosen_prob": p,
                        "chosen_rank": ids.index(st.token_id) if st.token_id in ids else None})
        return {"text": tok.decode([st.token_id for st in trace]), "logprob": total, "steps": out}

    found = mg.beam_search(model, tok, prompt, beam_width=beam_width, max_new_tokens=steps, record_tree=True)
    beams, tree = found.beams, found.tree
    return {"prompt": prompt,
            "greedy": path(0.0),
            "sampling": {**path(temperature), "temperature": temperature, "seed": seed},
            "beam": {"beam_width": beam_width,
                     "results": [{"text": b.text, "logprob": b.logprob, "score": b.score} for b in beams],
                     "steps": [{"candidates": [{"parent": c.parent, "token": c.token, "token_id": c.token_id,
                                                "logprob": c.logprob, "total_logprob": c.total_logprob,
                                                "status": c.status} for c in st.candidates],
                                "beams": list(st.beams)} for st in tree]}}


__all__ = ["masked_scores", "head_outputs", "block_stages", "stack_and_head", "position_losses", "gradient_norms",
           "grad_norm_history", "train_config_defaults", "decoding_paths", "model_and_tokenizer"]
