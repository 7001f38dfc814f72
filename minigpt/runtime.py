"""Where the course runs: the device, the FAST switch, and seeds. Read in this one place."""

from __future__ import annotations

import os
import random

import torch


def is_fast() -> bool:
    """True when ``MINIGPT_FAST`` is set to 1/true/yes: shrink training and data so the whole
    course executes in minutes on a 2-core CPU (the tests run the notebooks this way)."""
    return os.environ.get("MINIGPT_FAST", "").strip().lower() in {"1", "true", "yes", "on"}


def pick_device(verbose: bool = False) -> torch.device:
    """The device the course uses: ``MINIGPT_DEVICE`` when set (cpu, cuda, cuda:1, mps),
    else CUDA when present, else CPU. Apple MPS only on request, since losses on MPS can
    differ from run to run."""
    asked = os.environ.get("MINIGPT_DEVICE", "").strip().lower()
    if asked:
        if asked.startswith("cuda") and not torch.cuda.is_available():
            raise ValueError(f"MINIGPT_DEVICE={asked} but no CUDA device is available; unset it to use the CPU")
        if asked == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
            raise ValueError("MINIGPT_DEVICE=mps but MPS is not available on this machine; unset it to use the CPU")
        try:
            device = torch.device(asked)
        except RuntimeError as e:
            raise ValueError(f"MINIGPT_DEVICE={asked!r} is not a device torch knows (try cpu, cuda or mps)") from e
        why = "as MINIGPT_DEVICE asks"
    elif torch.cuda.is_available():
        device, why = torch.device("cuda"), f"found {torch.cuda.get_device_name(0)}"
    else:
        device, why = torch.device("cpu"), "no CUDA GPU found"
    if verbose:
        print(f"minigpt uses device {device} ({why})" + (" in FAST mode" if is_fast() else ""))
    return device


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, torch (CPU and CUDA) and, when installed, NumPy; return a torch.Generator
    seeded the same way for code that wants its own stream of random numbers."""
    random.seed(seed)
    torch.manual_seed(seed)
    try:
        import numpy as np
        np.random.seed(seed % 2**32)
    except ImportError:
        pass
    return torch.Generator().manual_seed(seed)
