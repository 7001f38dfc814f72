"""Next-token probabilities and decoding, from the shipped model: one step, temperature,
sampling step by step, and greedy / sampling / beam search side by side."""

from __future__ import annotations

import math

import minigpt as mg
from shipped_model import model_and_tokenizer


# ------------------------------------------------------------------ one step


def next_token_probs(prompt: str, temperature: float = 1.0, k: int = 5) -> dict:
    """The k most likely next tokens after ``prompt`` at ``temperature``.

    Returns {"prompt", "temperature", "tokens": [str], "ids": [int], "probs": [float], "rest": float},
    tokens best first, ``rest`` the probability of every other token together.
    """
    model, tok = model_and_tokenizer()
    dist = mg.next_token_distribution(model, tok, prompt, temperature=temperature)
    top = dist.top(k, stage="after_temperature")
    probs = [p for _, _, p in top]
    return {"prompt": prompt, "temperature": temperature, "tokens": [s for s, _, _ in top],
            "ids": [i for _, i, _ in top], "probs": probs, "rest": max(0.0, 1.0 - sum(probs))}


def temperature_sweep(prompt: str, temperatures: list = (0.5, 1.0, 1.5), k: int = 5) -> dict:
    """The same k tokens (the most likely at temperature 1) at each temperature.

    Returns {"prompt", "tokens", "ids", "temperatures": [T], "probs": [[p per token] per T],
    "rest": [mass of all other tokens per T]}.
    """
    model, tok = model_and_tokenizer()
    base = mg.next_token_distribution(model, tok, prompt, temperature=1.0).top(k, stage="after_temperature")
    ids = [i for _, i, _ in base]
    probs, rest = [], []
    for t in temperatures:
        p = mg.next_token_distribution(model, tok, prompt, temperature=t).after_temperature
        row = [float(p[i]) for i in ids]
        probs.append(row)
        rest.append(max(0.0, 1.0 - sum(row)))
    return {"prompt": prompt, "tokens": [s for s, _, _ in base], "ids": ids, "temperatures": list(temperatures),
            "probs": probs, "rest": rest}


# ------------------------------------------------------------------ many steps


def _step_dict(step, k: int) -> dict:
    # the model's own probabilities ("raw"): at temperature 0 the final stage is one-hot, which
    # would hide what greedy decoding chose between
    top = step.distribution.top(k, stage="raw")
    ids = [i for _, i, _ in top]
    return {"tokens": [s for s, _, _ in top], "ids": ids, "probs": [p for _, _, p in top],
            "chosen": step.token, "chosen_id": step.token_id,
            "chosen_prob": float(step.distribution.raw[step.token_id]),
            "chosen_rank": ids.index(step.token_id) if step.token_id in ids else None}


def generation_steps(prompt: str, steps: int = 4, temperature: float = 1.0, k: int = 5, seed: int = 0) -> dict:
    """Sample ``steps`` tokens after ``prompt`` (as ``mg.generate`` with this seed would) and keep,
    for each step, the context, the k most likely tokens and the one that was drawn.

    Returns {"prompt", "temperature", "seed", "text" (the new text), "steps": [{"context",
    "tokens", "ids", "probs", "chosen", "chosen_id", "chosen_prob", "chosen_rank" (None when
    outside the top k)}]}.
    """
    model, tok = model_and_tokenizer()
    trace = mg.sampling.trace_generation(model, tok, prompt, max_new_tokens=steps, temperature=temperature,
                                         seed=seed)
    out, context = [], prompt
    for step in trace:
        d = _step_dict(step, k)
        d["context"] = context
        context += tok.decode([step.token_id])
        out.append(d)
    return {"prompt": prompt, "temperature": temperature, "seed": seed, "text": context[len(prompt):],
            "steps": out}


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
        out = [_step_dict(st, k) for st in trace]
        total = sum(math.log(max(st["chosen_prob"], 1e-30)) for st in out)
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
