"""Numbers for the chat-model scenes, from the real SmolLM2-135M-Instruct run through ``minigpt``:
rotary position embeddings (RoPE) on the model's own queries and keys, and one conversation
rendered with the chat template and answered token by token.

Like the other numbers files, each function checks what it computes by hand against the model
and raises RuntimeError if they differ, and returns plain JSON-ready dicts and lists. The model
file is found as ``mg.pretrained.load("smollm2-135m-instruct")`` finds it (``$MINIGPT_DATA_DIR``,
then the user cache).
"""

from __future__ import annotations

import functools
import math

import torch

import minigpt as mg
from minigpt.chat import Chat, render_tokens
from minigpt.model import apply_rope, rope_cos_sin

MODEL_NAME = "smollm2-135m-instruct"


@functools.lru_cache(maxsize=1)
def model_and_tokenizer():
    """SmolLM2-135M-Instruct as a minigpt GPT (CPU, eval) and its BPETokenizer, loaded once."""
    model, tok = mg.pretrained.load(MODEL_NAME, device="cpu")
    model.requires_grad_(False)  # numbers only: no autograd graph, without touching global state
    return model, tok


def provenance() -> str:
    """A footnote: where the numbers come from."""
    return "numbers: SmolLM2-135M-Instruct (Q4_1 GGUF) run by minigpt"


def _close(a, b, what: str, atol: float = 1e-4):
    if not torch.allclose(torch.as_tensor(a), torch.as_tensor(b), atol=atol, rtol=1e-4):
        raise RuntimeError(f"{what}: the hand computation and minigpt disagree")


# ------------------------------------------------------------------ RoPE


@torch.no_grad()
def rope_numbers(sentence: str = "The cat sat on the mat because it was warm.", layer: int = 0, head: int = 0,
                 pairs: tuple = (0, 12), query_token: int = 6, key_token: int = 2, positions: int = 8,
                 shifts: tuple = (0, 3, 7)) -> dict:
    """How RoPE turns one pair of a real query and key of the model.

    Returns {"head_size", "base", "pairs": [{"pair", "theta", "q": [x, y], "k": [x, y],
    "angles": [angle at position 0..positions-1]}], "query_token", "key_token" (their text),
    "offset": query position - key position, "scores": [{"m", "n", "score"}] for the pair moved
    together by each shift (all equal: the score depends on the offset only), "score_rows":
    scores of the query at m=offset+shift and the key at every n in 0..positions-1}.
    """
    model, tok = model_and_tokenizer()
    cfg = model.config
    D, H, K = cfg.n_embd // cfg.n_head, cfg.n_head, cfg.kv_heads
    ids = tok.encode(sentence)
    block = model.transformer.h[layer]
    h = block.ln_1(model.transformer.wte(torch.tensor([ids])))
    q_all, k_all, _ = block.attn.c_attn(h).split((H * D, K * D, K * D), dim=-1)
    q = q_all[0, query_token].view(H, D)[head]                  # before any rotation
    k = k_all[0, key_token].view(K, D)[head // (H // K)]         # the key-value head of its group
    theta = [cfg.rope_base ** (-2 * i / D) for i in range(D // 2)]

    def place(v, m):  # v [D] at position m, the package's rotation
        cos, sin = rope_cos_sin(torch.tensor([m]), D, cfg.rope_base)
        return apply_rope(v.view(1, 1, 1, D), cos, sin).view(D)

    # by hand for one pair: a 2-D rotation by m * theta_i
    for i in pairs:
        m = 5
        x, y = float(q[i]), float(q[i + D // 2])
        a = m * theta[i]
        want = place(q, m)
        _close([x * math.cos(a) - y * math.sin(a), x * math.sin(a) + y * math.cos(a)],
               [float(want[i]), float(want[i + D // 2])], "RoPE pair rotation")
    offset = query_token - key_token
    scores = []
    for s in shifts:
        m, n = offset + s, s
        scores.append({"m": m, "n": n, "score": float(place(q, m) @ place(k, n))})
    for s in scores[1:]:
        _close(s["score"], scores[0]["score"], "RoPE relative position", atol=1e-3)
    return {
        "head_size": D, "base": cfg.rope_base, "layer": layer, "head": head,
        "pairs": [{"pair": i, "theta": theta[i], "q": [float(q[i]), float(q[i + D // 2])],
                   "k": [float(k[i]), float(k[i + D // 2])],
                   "angles": [m * theta[i] for m in range(positions)]} for i in pairs],
        "query_token": tok.token_str(ids[query_token]), "key_token": tok.token_str(ids[key_token]),
        "offset": offset, "scores": scores,
    }


# ------------------------------------------------------------------ the chat template


@torch.no_grad()
def chat_numbers(system: str = "You are a helpful assistant.", question: str = "What is the capital of France?",
                 max_new_tokens: int = 12, top: int = 3) -> dict:
    """One conversation through the template and the model, greedy.

    Returns {"system", "question", "tokens": [printable token], "labels": [label per token]
    (template / system / question), "reply": [{"token", "id", "prob" (the model's own
    probability of that token), "top": [[token, prob] x top]}], "text", "stopped"}.
    """
    model, tok = model_and_tokenizer()
    messages = [{"role": "system", "content": system}, {"role": "user", "content": question}]
    rendered = render_tokens(tok, messages)
    reply = Chat(model, tok, system=system, temperature=0, max_new_tokens=max_new_tokens).ask(question)
    if reply.prompt.ids != rendered.ids:
        raise RuntimeError("the chat's prompt differs from the rendered template")
    # the first token's probability, by hand: one forward pass over the rendered prompt
    logits = model(torch.tensor([rendered.ids])).logits[0, -1]
    first = torch.softmax(logits, dim=-1)
    steps = []
    for s in reply.steps:
        raw = {i: p for _, i, p in s.raw_top}
        steps.append({"token": s.token, "id": s.token_id, "prob": raw.get(s.token_id, float("nan")),
                      "top": [[t, p] for t, _, p in s.raw_top[:top]]})
    _close(steps[0]["prob"], float(first[reply.steps[0].token_id]), "first reply token probability")
    return {"system": system, "question": question, "tokens": rendered.tokens(tok), "labels": rendered.labels,
            "reply": steps, "text": reply.text, "stopped": reply.stopped}
