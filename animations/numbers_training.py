"""Training, from the shipped model and its recorded history: losses, gradients, the loss curve."""

from __future__ import annotations

import math
from dataclasses import fields

import torch
import torch.nn.functional as F

import minigpt as mg
from minigpt.runtime import eval_mode
from shipped_model import check_same, encode, floats, training_history


# ------------------------------------------------------------------ one line of text


def position_losses(text: str) -> dict:
    """Teacher forcing on one line: inputs = text[:-1], targets = text[1:], and the model's
    cross-entropy at each position (-log p(target)), whose mean is the model's loss.

    Returns {"inputs": [str], "targets": [str], "input_ids", "target_ids", "losses": [T-1],
    "target_probs": [T-1] (p of the right next token), "predicted": [str] (the model's top
    guess at each position), "mean_loss"}.
    """
    model, tok, ids, idx = encode(text)
    if len(ids) < 2:
        raise ValueError("teacher forcing needs a text of at least two tokens")
    x, y = idx[:, :-1], idx[:, 1:]
    with torch.no_grad():
        out = model(x, targets=y)
        logp = F.log_softmax(out.logits[0], dim=-1)  # [T, V]
        losses = -logp.gather(-1, y[0, :, None])[:, 0]
    check_same(losses.mean(), out.loss, "mean loss", atol=1e-5)
    return {"inputs": [tok.token_str(t) for t in ids[:-1]], "targets": [tok.token_str(t) for t in ids[1:]],
            "input_ids": ids[:-1], "target_ids": ids[1:], "losses": floats(losses, 4),
            "target_probs": floats(losses.neg().exp(), 4),
            "predicted": [tok.token_str(t) for t in out.logits[0].argmax(-1).tolist()],
            "mean_loss": float(out.loss)}


def gradient_norms(text: str, which: str = "initial", seed: int = 1337) -> dict:
    """One backward pass of the loss on ``text`` (teacher forcing), through the shipped model
    (``which="shipped"``) or a freshly initialised model of its shape (``"initial"``, seeded with
    ``seed``), as at the start of training.

    Returns {"which", "loss", "total_norm" (the global gradient norm that clipping looks at),
    "parts": [{"name", "norm"}] for the embeddings, each block and the final LayerNorm (their
    squares sum to total_norm**2), "attn_norm" (every attention weight of every block),
    "other_norm" (every other weight)}, with total_norm**2 == attn_norm**2 + other_norm**2.
    """
    if which not in ("initial", "shipped"):
        raise ValueError(f"which must be 'initial' (a freshly initialised model) or 'shipped', got {which!r}")
    shipped, tok, ids, idx = encode(text)
    if len(ids) < 2:
        raise ValueError("a loss needs a text of at least two tokens")
    if which == "shipped":
        model = shipped
    else:
        state = torch.random.get_rng_state()
        torch.manual_seed(seed)
        model = mg.GPT(shipped.config)
        torch.random.set_rng_state(state)  # leave the global random stream as it was
    with eval_mode(model):  # no dropout: the same numbers every time
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
            model.zero_grad(set_to_none=True)  # leave no gradients on the shared model
    order = ["embeddings"] + [f"block {b + 1}" for b in range(model.config.n_layer)] + ["final LayerNorm"]
    result = {"which": which, "loss": float(loss.detach()), "total_norm": total,
              "parts": [{"name": n, "norm": math.sqrt(sq[n])} for n in order if n in sq],
              "attn_norm": math.sqrt(sq.get("attn", 0.0)), "other_norm": math.sqrt(sq.get("other", 0.0))}
    if not math.isclose(math.hypot(result["attn_norm"], result["other_norm"]), total, rel_tol=1e-3):
        raise RuntimeError("the gradient's parts do not add up to its total norm")
    return result


# ------------------------------------------------------------------ the recorded history


def loss_curve(max_points: int = 400) -> dict:
    """The shipped model's recorded training history (``mg.pretrained.training_history``),
    the per-step curves thinned to at most ``max_points`` points.

    Returns {"iter", "loss", "lr", "eval_iter", "val_loss", "train_eval_loss"} (lists; missing keys empty).
    """
    hist = training_history()
    n = len(hist.get("iter", []))
    every = max(1, math.ceil(n / max_points))
    keep = list(range(0, n, every)) + ([n - 1] if n and (n - 1) % every else [])

    def thin(name):
        values = list(hist.get(name, []))
        return [float(values[i]) for i in keep] if len(values) == n else [float(v) for v in values]

    return {"iter": [int(hist["iter"][i]) for i in keep] if n else [], "loss": thin("loss"), "lr": thin("lr"),
            "eval_iter": [int(v) for v in hist.get("eval_iter", [])],
            "val_loss": [float(v) for v in hist.get("val_loss", [])],
            "train_eval_loss": [float(v) for v in hist.get("train_eval_loss", [])]}


def grad_norm_history(clip: float = 1.0) -> dict:
    """The gradient norms recorded while the shipped model trained (before clipping).

    Returns {"clip", "steps", "clipped" (how many steps had a norm above ``clip``),
    "max_norm", "max_iter" (the step with the largest norm), "first_norm", "last_norm"}
    (norms None when the history has no grad_norm).
    """
    hist = training_history()
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
    return {f.name: f.default for f in fields(mg.TrainConfig) if f.name in ("grad_clip",)}
