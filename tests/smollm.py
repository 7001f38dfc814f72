"""The real SmolLM2-135M-Instruct GGUF, loaded once per test session for every test file that
needs it (reading and dequantising it takes seconds); skipped where the file is absent."""

import os
from functools import lru_cache
from pathlib import Path

import pytest

FILENAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


def gguf_path() -> Path:
    path = Path(os.environ.get("MINIGPT_DATA_DIR", "")) / "smollm2" / FILENAME
    if not path.is_file():
        pytest.skip(f"needs the SmolLM2 GGUF at {path}")
    return path


@lru_cache(maxsize=None)
def gguf_file():
    import minigpt as mg
    return mg.gguf.read(gguf_path())


@lru_cache(maxsize=None)
def ours():
    """(model, tokenizer) through minigpt, found by name in MINIGPT_DATA_DIR (never fetched)."""
    import minigpt as mg
    gguf_path()
    return mg.pretrained.load("smollm2-135m-instruct", download=False)


@lru_cache(maxsize=None)
def reference():
    """(model, tokenizer) through transformers, from the same file."""
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("accelerate")
    import torch
    path = gguf_path()
    model = transformers.AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name,
                                                              dtype=torch.float32).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    return model, tokenizer
