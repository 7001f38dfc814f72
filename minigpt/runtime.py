"""Where the course runs: the device, the FAST switch, seeds, and eval mode. Read in this one place."""

from __future__ import annotations

import os
import random
from contextlib import contextmanager

import torch


def is_fast() -> bool:
    """True when ``MINIGPT_FAST`` is set to 1/true/yes: shrink training and data so the whole
    course executes in minutes on a 2-core CPU (the tests run the notebooks this way)."""
    return os.environ.get("MINIGPT_FAST", "").strip().lower() in {"1", "true", "yes", "on"}


def resolve_device(name, source: str = "device", must_exist: bool = True) -> torch.device:
    """The torch.device called ``name`` ("cpu", "cuda", "cuda:1", "mps"), checked to exist here
    (``must_exist=False`` checks only that torch knows the name).

    source: who asked, for the message (e.g. "MINIGPT_DEVICE", "TrainConfig.device").
    Raises ValueError naming the problem and what to use instead.
    """
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise ValueError(f"{source}={name!r} is not a device torch knows; use 'cpu', 'cuda', "
                         f"'cuda:0' or 'mps'") from None
    if not must_exist:
        return device
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"{source}={name!r} but CUDA is not available here; use 'cpu' (or 'auto')")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ValueError(f"{source}={name!r} but this machine has {torch.cuda.device_count()} CUDA "
                         f"device(s); use 'cuda:0' to 'cuda:{torch.cuda.device_count() - 1}'")
    if device.type == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise ValueError(f"{source}={name!r} but MPS is not available on this machine; use 'cpu' (or 'auto')")
    return device


def pick_device(verbose: bool = False) -> torch.device:
    """The device the course uses: ``MINIGPT_DEVICE`` when set (cpu, cuda, cuda:1, mps),
    else CUDA when present, else CPU. Apple MPS only on request, since losses on MPS can
    differ from run to run."""
    asked = os.environ.get("MINIGPT_DEVICE", "").strip().lower()
    if asked:
        device, why = resolve_device(asked, "MINIGPT_DEVICE"), "as MINIGPT_DEVICE asks"
    elif torch.cuda.is_available():
        device, why = torch.device("cuda"), f"found {torch.cuda.get_device_name(0)}"
    else:
        device, why = torch.device("cpu"), "no CUDA GPU found"
    if verbose:
        print(f"minigpt uses device {device} ({why})" + (" in FAST mode" if is_fast() else ""))
    return device


def cpu_has_native_bfloat16() -> bool:
    """True when this CPU multiplies bfloat16 in hardware (AVX512-BF16 or AMX): there bfloat16
    matmuls run several times faster than float32; elsewhere they are emulated and slower.
    ``MINIGPT_CPU_BF16=0`` turns the answer (and with it the Trainer's CPU mixed precision) off."""
    if os.environ.get("MINIGPT_CPU_BF16", "").strip().lower() in {"0", "false", "no", "off"}:
        return False
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")  # torch >= 2.3
    return any(getattr(torch.cpu, name, lambda: False)() for name in probes)


@contextmanager
def eval_mode(model):
    """Run the block with ``model`` in eval mode (dropout off); a model that was training is put
    back in training mode afterwards, even when the block raises. Yields the model."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


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
