"""Save, load and resume: one file holds everything needed to pick training up exactly where it stopped.

    save_checkpoint("runs/x/ckpt.pt", model, optimizer, step=500, tokenizer=tok)
    model, tok = load_model("runs/x/ckpt.pt")

A checkpoint is a plain dict of tensors, numbers, strings, lists and dicts, so it loads with
``torch.load(weights_only=True)``: opening one never runs code from the file. Its keys:

    format, version   "minigpt-checkpoint", 1: how we recognise our own files
    model_config      GPTConfig as a dict
    model             the state dict (no "module." / "_orig_mod." prefixes from DDP or torch.compile)
    optimizer         optimizer.state_dict() or None
    scheduler         scheduler.state_dict() or None (the Trainer sets the learning rate itself: None)
    step              optimizer steps taken so far
    rng               random-number-generator states (see ``capture_rng_state``), or None
    tokenizer         tokenizer.to_dict() or None
    extra             anything else, e.g. {"history": ..., "train_config": ...}

Writes are atomic: a crash or Ctrl-C mid-save leaves the previous checkpoint intact.
"""

from __future__ import annotations

import pickle
import random
from pathlib import Path

import torch

from .files import atomic_file

FORMAT = "minigpt-checkpoint"
VERSION = 1
DEFAULT_NAME = "ckpt.pt"  # the file name inside an out_dir


class CheckpointError(Exception):
    """A checkpoint is missing, damaged, not ours, too new, or does not fit the model."""


# ---------------------------------------------------------------------------- helpers

def unwrap_model(model: torch.nn.Module) -> torch.nn.Module:
    """The plain GPT inside DistributedDataParallel (``.module``) and/or torch.compile (``._orig_mod``)."""
    while True:
        if isinstance(model, torch.nn.parallel.DistributedDataParallel):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            return model


def _strip_prefixes(state_dict: dict) -> dict:
    """Drop the key prefixes that DDP ("module.") and torch.compile ("_orig_mod.") add."""
    out = {}
    for k, v in state_dict.items():
        while k.startswith(("module.", "_orig_mod.")):
            k = k.split(".", 1)[1]
        out[k] = v
    return out


def resolve_path(path) -> Path:
    """A checkpoint file: ``path`` itself, or ``path/ckpt.pt`` when ``path`` is a folder."""
    path = Path(path).expanduser()
    return path / DEFAULT_NAME if path.is_dir() else path


def capture_rng_state(generator: torch.Generator | None = None) -> dict:
    """Every random stream training draws from, as tensors and plain numbers (weights_only-safe).

    torch: the global CPU generator (dropout on CPU, weight init); cuda: one state per GPU;
    python: the ``random`` module; batches: ``generator``, the stream that picks training batches.
    """
    state = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    if generator is not None:
        state["batches"] = generator.get_state()
    return state


def restore_rng_state(state: dict, generator: torch.Generator | None = None) -> None:
    """Put back what ``capture_rng_state`` took, so the next random numbers are the ones that
    would have come next in the run that was saved."""
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        # Only as many GPUs as this machine has; extra saved states are for devices we lack.
        states = state["cuda"][: torch.cuda.device_count()]
        for i, s in enumerate(states):
            torch.cuda.set_rng_state(s, i)
    if generator is not None and "batches" in state:
        generator.set_state(state["batches"])


def _atomic_save(obj, path: Path) -> None:
    """torch.save through ``atomic_file``: readers see the old checkpoint or the new one, never
    half of one, and a failure (Ctrl-C included) leaves the old checkpoint alone."""
    with atomic_file(path, "wb") as f:
        torch.save(obj, f)


# ---------------------------------------------------------------------------- saving

def save_checkpoint(path, model, optimizer=None, scheduler=None, step: int = 0, extra: dict | None = None,
                    tokenizer=None, rng_state="capture") -> Path:
    """Write a checkpoint atomically to ``path`` (a file, or a folder to hold ``ckpt.pt``).

    model:     a GPT, possibly wrapped in DDP or torch.compile (saved unwrapped).
    optimizer, scheduler: saved with their state dicts when given, so training can resume.
    step:      optimizer steps taken so far.
    extra:     a dict of plain values (numbers, strings, lists, dicts, tensors), e.g. the loss history.
    tokenizer: anything with ``.to_dict()``; stored so ``load_model`` returns it with the model.
    rng_state: "capture" (default) stores this process's random states; pass a dict from
               ``capture_rng_state`` (or a list of them, one per DDP rank), or None to store none.
    Returns the path written.
    """
    path = resolve_path(path)
    raw = unwrap_model(model)
    if not hasattr(raw, "config") or not hasattr(raw.config, "to_dict"):
        raise TypeError(f"save_checkpoint needs a minigpt GPT (with .config), got {type(raw).__name__}")
    if isinstance(rng_state, str):
        if rng_state != "capture":
            raise ValueError(f"rng_state must be 'capture', a dict, a list or None, got {rng_state!r}")
        rng_state = capture_rng_state()
    ckpt = {
        "format": FORMAT,
        "version": VERSION,
        "model_config": raw.config.to_dict(),
        "model": _strip_prefixes(raw.state_dict()),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "step": int(step),
        "rng": rng_state,
        "tokenizer": tokenizer.to_dict() if tokenizer is not None else None,
        "extra": dict(extra) if extra else {},
        "torch_version": str(torch.__version__),  # a str subclass that weights_only refuses
    }
    _atomic_save(ckpt, path)
    return path


def export_weights(path, model, tokenizer=None, extra: dict | None = None) -> Path:
    """A small file for sharing or shipping: model, tokenizer and ``extra`` (e.g. the loss
    history), without optimizer state or random states. ``load_model`` reads it like any checkpoint."""
    return save_checkpoint(path, model, tokenizer=tokenizer, extra=extra, rng_state=None)


# ---------------------------------------------------------------------------- loading

def _describe_foreign(obj) -> str:
    """Say what a file that is not a minigpt checkpoint looks like, and how to load it."""
    if isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        keys = list(obj)
        return (f"it looks like a plain state dict ({len(keys)} tensors, e.g. {keys[:3]}); load it with "
                f"model.load_state_dict(torch.load(path)) into a GPT built with the matching GPTConfig")
    if isinstance(obj, dict):
        keys = sorted(map(str, obj))
        hint = ""
        if "model" in obj and ("model_args" in obj or "iter_num" in obj):
            hint = ("; it looks like a nanoGPT checkpoint: build GPTConfig(**ckpt['model_args']) and "
                    "load ckpt['model'] (strip any '_orig_mod.' prefix)")
        return f"it is a dict with keys {keys[:8]}{'...' if len(keys) > 8 else ''} but no 'format' tag{hint}"
    return f"it holds a {type(obj).__name__}, not a dict"


def load_checkpoint(path, map_location="cpu") -> dict:
    """Read a checkpoint written by ``save_checkpoint`` (a file, or a folder holding ``ckpt.pt``).

    Returns the checkpoint dict (keys listed at the top of this module), tensors on ``map_location``.
    Raises CheckpointError when the file is missing, truncated or corrupt, not a minigpt
    checkpoint, or written by a newer minigpt.
    """
    given = Path(path).expanduser()
    path = resolve_path(given)
    if not path.is_file():
        where = f"{path.resolve()}" + (f" (inside the folder {given})" if given.is_dir() else "")
        raise CheckpointError(f"no checkpoint found: looked for {where}; check the path, or train "
                              f"with out_dir set so that a checkpoint is written there")
    try:
        # weights_only: tensors and plain containers only, so loading never runs code from the file.
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        if "weights only load failed" in str(e).lower():
            raise CheckpointError(
                f"{path} is not a minigpt checkpoint: it holds Python objects other than tensors and "
                f"plain containers (e.g. a whole pickled model). If you trust where it came from, open it "
                f"with torch.load(path, weights_only=False) and take what you need from it") from None
        raise CheckpointError(f"{path} is damaged ({type(e).__name__}: {e}); it may have been cut off "
                              f"while being copied. Use an earlier copy or train again") from e
    except Exception as e:  # torch raises RuntimeError, EOFError, OSError, even IndexError on bad bytes
        size = path.stat().st_size
        # torch's first sentence names the fault; the rest is zip-library internals
        detail = str(e).splitlines()[0].split(". ")[0] if str(e) else "no detail"
        raise CheckpointError(f"{path} ({size:,} bytes) is truncated or corrupt and cannot be read "
                              f"({type(e).__name__}: {detail}); "
                              f"it may have been cut off while being copied. Use an earlier copy or "
                              f"train again") from e
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a minigpt checkpoint: {_describe_foreign(ckpt)}")
    version = ckpt.get("version")
    if not isinstance(version, int) or version > VERSION:
        raise CheckpointError(f"{path} was written by a newer minigpt (checkpoint format version {version}; "
                              f"this minigpt reads up to version {VERSION}): upgrade minigpt to load it")
    return ckpt


def check_config(ckpt: dict, model) -> None:
    """Raise CheckpointError listing every GPTConfig field where ``ckpt`` and ``model`` differ."""
    saved, ours = ckpt["model_config"], unwrap_model(model).config.to_dict()
    diffs = [f"{k}: checkpoint {saved.get(k)!r}, model {ours.get(k)!r}"
             for k in sorted(set(saved) | set(ours)) if saved.get(k) != ours.get(k)]
    if diffs:
        raise CheckpointError("the checkpoint was saved from a model with a different config ("
                              + "; ".join(diffs) + "); build the model with the checkpoint's config, "
                              "e.g. GPT(GPTConfig.from_dict(ckpt['model_config'])), or use load_model(path)")


def require_training_state(ckpt: dict, path=None) -> None:
    """Raise CheckpointError unless ``ckpt`` holds what resuming training needs: optimizer state and
    random states (a weights-only file, such as ``export_weights`` writes or a shipped model, does not)."""
    if ckpt.get("optimizer") is None or ckpt.get("rng") is None:
        where = f"{resolve_path(path)}" if path is not None else "this checkpoint"
        raise CheckpointError(f"{where} holds model weights only (no optimizer or random state), so "
                              f"training cannot resume from it exactly; load it with load_model(path) and "
                              f"start a new run from those weights instead")


def restore(ckpt: dict, model, optimizer=None, scheduler=None) -> int:
    """Load the model (and optimizer, scheduler when given) state from a checkpoint dict, in place.

    The model must have the checkpoint's config (CheckpointError otherwise, listing the
    differences); a checkpoint without optimizer state cannot resume an optimizer.
    Returns the step the checkpoint was saved at. Random states are restored separately
    (``restore_rng_state``) since only a training loop knows which generators it uses.
    """
    check_config(ckpt, model)
    unwrap_model(model).load_state_dict(_strip_prefixes(ckpt["model"]))
    if optimizer is not None:
        if ckpt.get("optimizer") is None:
            require_training_state(ckpt)
        optimizer.load_state_dict(ckpt["optimizer"])
    if scheduler is not None and ckpt.get("scheduler") is not None:
        scheduler.load_state_dict(ckpt["scheduler"])
    return int(ckpt.get("step", 0))


def load_model(path, device=None):
    """Build the GPT a checkpoint describes and load its weights.

    path:   a checkpoint file, or a folder holding ``ckpt.pt``.
    device: where to put the model (default CPU).
    Returns (model: GPT in eval mode, tokenizer or None when the checkpoint holds none).
    """
    from .model import GPT, GPTConfig

    ckpt = load_checkpoint(path)
    try:
        config = GPTConfig.from_dict(ckpt["model_config"])
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{resolve_path(path)} has an unusable model config: {e}") from e
    model = GPT(config)
    try:
        model.load_state_dict(_strip_prefixes(ckpt["model"]))
    except RuntimeError as e:
        raise CheckpointError(f"{resolve_path(path)}: the weights do not fit the stored config: {e}") from e
    tokenizer = None
    if ckpt.get("tokenizer") is not None:
        from .tokenizer import tokenizer_from_dict
        tokenizer = tokenizer_from_dict(ckpt["tokenizer"])
    if device is not None:
        model.to(device)
    return model.eval(), tokenizer
