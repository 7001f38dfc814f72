"""Where every number on screen comes from: the shipped model, run through ``minigpt``.

A scene never types a probability or an attention weight: it asks one of the numbers files,
one per topic, which run this model and return plain JSON-ready dicts and lists (str, int,
float; tuples become lists):

    numbers_tokens.py     characters, UTF-8 bytes, BPE merges, embeddings
    numbers_attention.py  attention maps, one query by hand, the causal mask, heads
    numbers_block.py      the decoder block and the whole stack
    numbers_training.py   losses, gradients, the recorded training history
    numbers_sampling.py   next-token probabilities, generation, greedy / sampling / beam search

Each of them checks what it computes by hand against the model's own output and raises
RuntimeError if they differ, so a picture can never drift from what the model does.

The model is loaded once per process. Numbers are not kept on disk: each takes milliseconds
to compute. Only the BPE tokenizer, which takes seconds to train, is cached (``numbers_tokens``).

Environment variables:
    MINIGPT_ANIMATION_WEIGHTS   render with another checkpoint file (default: the shipped one)
    MINIGPT_ANIMATION_CACHE     where the trained BPE tokenizer is kept (default:
                                $XDG_CACHE_HOME or ~/.cache, then minigpt/animations)

The scenes import these files as plain modules (``import numbers_tokens as nums``): ``manim``
puts the folder of the scene it renders on ``sys.path``. ``minigpt`` itself must be installed
(``pip install -e .`` from the repository root).
"""

from __future__ import annotations

import functools
import math
import os
from pathlib import Path

import torch

import minigpt as mg
from minigpt.files import sha256_file

MODEL_NAME = "shakespeare-char"


def weights_path() -> Path:
    """The checkpoint the animations read: $MINIGPT_ANIMATION_WEIGHTS, else the shipped one."""
    override = os.environ.get("MINIGPT_ANIMATION_WEIGHTS")
    if override:
        p = Path(override).expanduser()
        if not p.is_file():
            raise FileNotFoundError(f"MINIGPT_ANIMATION_WEIGHTS points to {p}, which is not a file; "
                                    f"unset it to use the shipped {MODEL_NAME!r} model")
        return p
    return mg.pretrained.path(MODEL_NAME)


@functools.lru_cache(maxsize=8)
def _sha_of(path: str, size: int, mtime_ns: int) -> str:  # size and mtime: a new file gets a new hash
    return sha256_file(Path(path))


def weights_sha256() -> str:
    """sha256 of the weights file the animations read."""
    p = weights_path()
    st = p.stat()
    return _sha_of(str(p), st.st_size, st.st_mtime_ns)


def provenance() -> str:
    """One line saying which model the numbers came from, for a corner of the frame."""
    return f"numbers from {weights_path().name} (sha256 {weights_sha256()[:8]})"


@functools.lru_cache(maxsize=2)
def _load(path: str, sha: str):  # keyed by the file's hash: a new checkpoint is loaded again
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    if os.environ.get("MINIGPT_ANIMATION_WEIGHTS"):
        return mg.checkpoint.load_model(path)
    return mg.pretrained.load(MODEL_NAME)


def model_and_tokenizer():
    """(GPT in eval mode on the CPU, its CharTokenizer): the model every scene shows."""
    p = weights_path()
    return _load(str(p), weights_sha256())


def model_info() -> dict:
    """{"n_layer", "n_head", "n_embd", "block_size", "vocab_size", "params"} of the model the scenes show."""
    model, _ = model_and_tokenizer()
    return {**{k: getattr(model.config, k) for k in ("n_layer", "n_head", "n_embd", "block_size", "vocab_size")},
            "params": model.num_params()}


def training_history() -> dict:
    """The history recorded while the model trained: {"iter", "loss", "lr", "grad_norm", "eval_iter",
    "val_loss", ...} (lists; keys the run did not record are missing)."""
    if os.environ.get("MINIGPT_ANIMATION_WEIGHTS"):
        return mg.load_checkpoint(weights_path()).get("extra", {}).get("history", {})
    return mg.pretrained.training_history(MODEL_NAME)


# ------------------------------------------------------------------ helpers for the numbers files


def encode(text: str):
    """(model, tokenizer, ids, idx [1, T]) for a text the model can read whole."""
    model, tok = model_and_tokenizer()
    ids = tok.encode(text)
    if not ids:
        raise ValueError("the text is empty; give at least one character")
    if len(ids) > model.config.block_size:
        raise ValueError(f"the text is {len(ids)} tokens long but the model sees at most "
                         f"{model.config.block_size}; use a shorter text")
    return model, tok, ids, torch.tensor([ids])


def floats(t, digits: int = 6):
    """A tensor (any shape) as nested lists of rounded floats (masked -inf stays None)."""
    values = t.detach().cpu().double().tolist()

    def r(v):
        if isinstance(v, list):
            return [r(x) for x in v]
        return round(v, digits) if math.isfinite(v) else None

    return r(values)


def check_same(a, b, what: str, atol: float = 1e-4) -> None:
    """RuntimeError unless the hand-computed ``a`` equals the model's own ``b``."""
    if not torch.allclose(a, b, atol=atol):
        raise RuntimeError(f"{what}: the hand-computed numbers differ from the model's own")


def check_layer(model, layer: int) -> None:
    L = model.config.n_layer
    if not 0 <= layer < L:
        raise ValueError(f"layer must be in 0..{L - 1}, got {layer}")


def check_pos(T: int, pos: int) -> int:
    """``pos`` (negative counts from the end) as an index into T tokens."""
    if not -T <= pos < T:
        raise ValueError(f"position {pos} is outside the text's {T} tokens")
    return pos % T


def cache_dir() -> Path:
    """Where the trained BPE tokenizer is kept."""
    if os.environ.get("MINIGPT_ANIMATION_CACHE"):
        return Path(os.environ["MINIGPT_ANIMATION_CACHE"]).expanduser()
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "minigpt" / "animations"
