"""The loss-mask scene: its mask is the package's, the losses on screen are the shipped models' own
(dailydialog-base with the chat tokens added, before fine-tuning; dailydialog-chat, after).
Its render is tested with every other scene in test_animations.py."""

import importlib
import importlib.util
import math
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import minigpt as mg
from minigpt import sft

REPO = Path(__file__).resolve().parent.parent
ANIMATIONS = REPO / "animations"

needs_manim = pytest.mark.skipif(importlib.util.find_spec("manim") is None,
                                 reason="manim is not installed (pip install manim) so no scene can render")


def _animation_module(name: str):
    """A module of animations/, imported as manim imports a scene's siblings (its folder on sys.path)."""
    sys.path.insert(0, str(ANIMATIONS))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(ANIMATIONS))


@pytest.fixture(scope="module")
def numbers():
    return _animation_module("numbers_sft").loss_mask_numbers()


@pytest.fixture(scope="module")
def direct():
    """The same conversation and losses, computed here straight from the shipped models."""
    base, base_tok = mg.pretrained.load("dailydialog-base")
    base, tok = sft.add_chat_tokens(base, base_tok)
    chat, _ = mg.pretrained.load("dailydialog-chat")
    conv = sft.dailydialog_conversations(mg.data.load_dialogues("dailydialog", "validation")[3:4], context_turns=3)[2]
    example = sft.encode_chat(tok, conv, train_on="last")
    x, y = sft.pad_batch([example], pad_id=tok.special_tokens[sft.PAD])
    losses = {}
    with torch.no_grad():
        for name, m in (("base", base.eval()), ("chat", chat.eval())):
            per_token = F.cross_entropy(m(x).logits[0], y[0], ignore_index=sft.IGNORE, reduction="none")
            losses[name] = per_token[y[0] != sft.IGNORE].tolist()
    return {"tok": tok, "example": example, "losses": losses}


def test_the_mask_is_the_packages(numbers, direct):
    ex, tok = direct["example"], direct["tok"]
    assert numbers["ids"] == ex.ids and numbers["labels"] == ex.labels
    assert numbers["trained"] == [label != -100 for label in ex.labels]
    assert numbers["n_trained"] == ex.n_trained < numbers["n_tokens"] == len(ex)
    # learned: the last reply and its <|end|>; not its opening <|assistant|>, not the earlier reply
    end, opening = tok.special_tokens["<|end|>"], tok.special_tokens["<|assistant|>"]
    first = numbers["reply"]["positions"][0]
    assert ex.ids[first - 1] == opening and not numbers["trained"][first - 1]
    assert numbers["reply"]["positions"] == list(range(first, len(ex)))
    assert ex.ids[-1] == end and numbers["reply"]["tokens"][-1] == "<|end|>"
    earlier = [k for k, r in enumerate(ex.roles) if r == "assistant" and k < first]
    assert earlier and not any(numbers["trained"][k] for k in earlier)


def test_losses_are_the_shipped_models(numbers, direct):
    for name in ("base", "chat"):
        assert numbers["reply"][name] == pytest.approx(direct["losses"][name], abs=1e-4)
        assert numbers["mean"][name] == pytest.approx(sum(direct["losses"][name]) / len(direct["losses"][name]),
                                                      abs=1e-4)
    e = numbers["end"]
    assert e["prob_chat"] == pytest.approx(math.exp(-direct["losses"]["chat"][-1]), rel=1e-3)
    assert e["top_chat"][0] == "<|end|>"  # after fine-tuning the end of the turn is the model's first choice
    assert e["base"] > 5 > 1 > e["chat"]  # and it was all but ruled out before


@needs_manim
def test_numbers_on_screen_are_the_models(direct, monkeypatch):
    """The <|end|> note and the bars' numbers as drawn, against the models run here."""
    monkeypatch.syspath_prepend(str(ANIMATIONS))
    scene = importlib.import_module("loss_mask")
    d = scene.numbers_sft.loss_mask_numbers()
    base, chat = direct["losses"]["base"], direct["losses"]["chat"]
    note = scene.end_note(d["end"])
    assert note[0].original_text == f"<|end|>: {base[-1]:.2f} → {chat[-1]:.2f} nats"
    bars = scene.loss_bars(d["reply"]["chat"], range(len(chat)), scene.AFTER_COLOR)
    assert [t.original_text for t in bars.numbers] == [scene.loss_text(v) for v in chat]
    assert len(bars.bars) == len(chat)
    heights = [b.height for b in bars.bars]
    assert heights.index(max(heights)) == chat.index(max(chat))  # bar heights follow the losses
