"""Shared test set-up: local corpora, FAST mode, and a small model to test against."""

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

# Tests read corpora from the copies beside the checkout and never touch the network.
_shared = REPO.parent / "shared" / "data"
if "MINIGPT_DATA_DIR" not in os.environ and _shared.is_dir():
    os.environ["MINIGPT_DATA_DIR"] = str(_shared)
os.environ.setdefault("MINIGPT_FAST", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

import torch  # noqa: E402

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture
def tiny_config():
    import minigpt as mg
    return mg.GPTConfig(vocab_size=50, block_size=32, n_layer=2, n_head=2, n_embd=32)


@pytest.fixture
def tiny_model(tiny_config):
    import minigpt as mg
    torch.manual_seed(0)
    return mg.GPT(tiny_config).eval()


@pytest.fixture(scope="session")
def shakespeare():
    import minigpt as mg
    return mg.data.load_text("tinyshakespeare")
