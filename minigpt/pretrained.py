"""Small checkpoints trained by this package and shipped inside it, loaded by name, offline.

    model, tok = mg.pretrained.load("shakespeare-char")

Each entry records the exact command that reproduces it, so nothing here is a black box.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"


@dataclass(frozen=True)
class Pretrained:
    name: str
    filename: str
    description: str
    command: str  # reproduces the file from a clean checkout


PRETRAINED = {
    "shakespeare-char": Pretrained(
        name="shakespeare-char",
        filename="shakespeare-char.pt",
        description="character-level GPT (4 layers, 4 heads, 128 wide, block 128, ~0.8M parameters) "
                    "trained on Tiny Shakespeare",
        command="python -m minigpt train --data tinyshakespeare --tokenizer char --block-size 128 "
                "--n-layer 4 --n-head 4 --n-embd 128 --dropout 0.0 --batch-size 32 --max-iters 3000 "
                "--lr 2e-3 --min-lr 2e-4 --warmup-iters 200 --eval-interval 500 --eval-iters 100 --seed 1337 "
                "--out-dir runs/shakespeare-char --export minigpt/weights/shakespeare-char.pt",
    ),
}


def available() -> list[str]:
    """Names that ``load`` accepts."""
    return sorted(PRETRAINED)


def path(name: str = "shakespeare-char") -> Path:
    """Where the weights of ``name`` live inside the installed package."""
    if name not in PRETRAINED:
        raise ValueError(f"no pretrained model named {name!r}; available: {', '.join(available())}")
    p = WEIGHTS_DIR / PRETRAINED[name].filename
    if not p.exists():
        raise FileNotFoundError(f"the weights of {name!r} are missing at {p}; reinstall minigpt, "
                                f"or rebuild them with:\n  {PRETRAINED[name].command}")
    return p


def load(name: str = "shakespeare-char", device=None):
    """Load a shipped model and its tokenizer, no network needed.

    Returns (model: GPT in eval mode on ``device`` (default CPU), tokenizer).
    """
    from .checkpoint import load_model

    model, tokenizer = load_model(path(name), device=device)
    return model.eval(), tokenizer


def training_history(name: str = "shakespeare-char") -> dict:
    """The loss history recorded while ``name`` was trained (keys as ``Trainer.history``):
    the real curve that the training notebook and animation draw."""
    from .checkpoint import load_checkpoint

    return load_checkpoint(path(name)).get("extra", {}).get("history", {})
