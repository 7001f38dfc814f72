"""The chat-model scenes (RoPE, the chat template): their numbers are SmolLM2's own.
Their renders are tested with every other scene in test_animations.py."""

import importlib
import importlib.util
import sys
from pathlib import Path

import pytest
import torch

import minigpt as mg
from minigpt.model import apply_rope, rope_cos_sin

from smollm import gguf_path, ours

REPO = Path(__file__).resolve().parent.parent
ANIMATIONS = REPO / "animations"


@pytest.fixture(scope="module")
def numbers():
    gguf_path()  # skips where the model file is absent
    sys.path.insert(0, str(ANIMATIONS))  # what manim does for the scene it renders
    try:
        module = importlib.import_module("numbers_chat")
    finally:
        sys.path.remove(str(ANIMATIONS))
    # the model loaded once for the whole session (tests/smollm.py), not a second time
    module.model_and_tokenizer = lambda: ours()
    return module


def test_rope_scores_on_screen_are_the_models_at_its_real_positions(numbers):
    d = numbers.rope_numbers()
    scores = [s["score"] for s in d["scores"]]
    assert len(scores) >= 3 and max(scores) - min(scores) < 1e-3  # moved together: the same score
    assert len({s["m"] for s in d["scores"]}) == len(scores) and all(s["m"] - s["n"] == d["offset"] for s in d["scores"])
    # the same query and key where they really stand in the sentence
    model, tok = ours()
    cfg = model.config
    D, H, K = cfg.n_embd // cfg.n_head, cfg.n_head, cfg.kv_heads
    ids = tok.encode("The cat sat on the mat because it was warm.")
    with torch.no_grad():
        block = model.transformer.h[0]
        q, k, _ = block.attn.c_attn(block.ln_1(model.transformer.wte(torch.tensor([ids])))).split((H * D, K * D, K * D), -1)
        q = q.view(1, len(ids), H, D).transpose(1, 2)
        k = k.view(1, len(ids), K, D).transpose(1, 2)
        cos, sin = rope_cos_sin(torch.arange(len(ids)), D, cfg.rope_base)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
    real = float(q[0, 0, 6] @ k[0, 0, 2])  # head 0 reads key-value head 0
    assert real == pytest.approx(scores[0], abs=1e-3)
    assert d["query_token"] == tok.token_str(ids[6]) and d["key_token"] == tok.token_str(ids[2])


def test_chat_template_numbers_are_the_models_greedy_reply(numbers):
    d = numbers.chat_numbers(max_new_tokens=12)
    model, tok = ours()
    rendered = mg.chat.render_tokens(tok, [{"role": "system", "content": d["system"]},
                                           {"role": "user", "content": d["question"]}])
    assert d["tokens"] == rendered.tokens(tok) and d["labels"] == rendered.labels
    reply = mg.generate(model, tok, rendered.ids, max_new_tokens=12, temperature=0,
                        stop=tok.special_tokens["<|im_end|>"])
    assert d["text"] == reply
    with torch.no_grad():
        probs = torch.softmax(model(torch.tensor([rendered.ids])).logits[0, -1], dim=-1)
    first = d["reply"][0]
    assert first["prob"] == pytest.approx(float(probs[first["id"]]), rel=1e-4)
    assert first["top"][0][1] == pytest.approx(float(probs.max()), rel=1e-4)
