"""What the three alignment loops share: their settings, device and precision, AdamW with the
course's learning-rate schedule, progress, and checkpoints that resume exactly.

The reward model, DPO and PPO each run their own loop (a PPO step is a rollout, scoring and several
update epochs, not one supervised batch), but they pick the device with ``runtime``, set the
learning rate with ``train.lr_at``, group parameters with ``train.param_groups`` and write atomic
checkpoints with ``checkpoint.save_checkpoint``, like the Trainer.
"""

from __future__ import annotations

import math
import signal
import threading
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

import torch

from ..checkpoint import (DEFAULT_NAME, CheckpointError, capture_rng_state, load_checkpoint, require_training_state,
                          restore, restore_rng_state, save_checkpoint)
from ..checks import check_bool, check_int, check_number, from_dict
from ..runtime import pick_device, resolve_device
from ..train import TrainingDiverged, lr_at, param_groups


@dataclass
class LoopConfig:
    """Settings every alignment loop has (each method's config adds its own and its defaults)."""

    max_iters: int = 200              # optimizer steps (PPO: rollout + update rounds)
    batch_size: int = 16              # pairs (reward model, DPO) or prompts (PPO) per step
    learning_rate: float = 5e-5       # peak learning rate: small, the model is already trained
    min_lr: float = 5e-6
    warmup_iters: int = 10
    lr_decay_iters: Optional[int] = None  # None = max_iters
    weight_decay: float = 0.0
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: Optional[float] = 1.0  # clip the global gradient norm; None or 0 = off
    eval_interval: int = 50           # evaluate on the dev data (and save) every N steps
    out_dir: Optional[str] = None     # where ckpt.pt goes; None = save nothing
    device: str = "auto"              # "auto" (CUDA if present, else CPU), "cpu", "cuda", ...
    dtype: str = "auto"               # "auto" (bfloat16 autocast on CUDA, float32 elsewhere), "float32", "bfloat16"
    seed: int = 1337
    progress: bool = True             # a tqdm progress bar; False prints a line per evaluation

    def __post_init__(self):
        name = type(self).__name__
        for field in ("max_iters", "warmup_iters"):
            check_int(getattr(self, field), f"{name}.{field}", 0)
        for field in ("batch_size", "eval_interval"):
            check_int(getattr(self, field), f"{name}.{field}", 1)
        check_int(self.lr_decay_iters, f"{name}.lr_decay_iters", 0, allow_none=True)
        check_int(self.seed, f"{name}.seed", 0)
        check_number(self.learning_rate, f"{name}.learning_rate", 0, low_open=True)
        check_number(self.min_lr, f"{name}.min_lr", 0, self.learning_rate)
        check_number(self.weight_decay, f"{name}.weight_decay", 0)
        check_number(self.beta1, f"{name}.beta1", 0, 1, high_open=True)
        check_number(self.beta2, f"{name}.beta2", 0, 1, high_open=True)
        check_number(self.grad_clip, f"{name}.grad_clip", 0, allow_none=True)
        check_bool(self.progress, f"{name}.progress")
        if self.dtype not in ("auto", "float32", "bfloat16"):
            raise ValueError(f"{name}.dtype must be 'auto', 'float32' or 'bfloat16', got {self.dtype!r}")
        if self.out_dir is not None:
            self.out_dir = str(Path(self.out_dir).expanduser())
        if self.device != "auto":
            resolve_device(self.device, f"{name}.device", must_exist=False)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict):
        return from_dict(cls, d)


def pick(config: LoopConfig) -> torch.device:
    """The device a loop runs on (``runtime.pick_device`` for "auto")."""
    if config.device == "auto":
        return pick_device()
    return resolve_device(config.device, f"{type(config).__name__}.device")


def autocast(config: LoopConfig, device: torch.device):
    """bfloat16 autocast on CUDA ("auto" or "bfloat16"), else nothing: float32 as the model is."""
    if config.dtype == "float32" or (config.dtype == "auto" and device.type != "cuda"):
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def check_trainable(module: torch.nn.Module, what: str = "model to train") -> None:
    """ValueError when no parameter of ``module`` requires a gradient (a frozen copy cannot learn)."""
    if not any(p.requires_grad for p in module.parameters()):
        raise ValueError(f"the {what} has no parameter with requires_grad=True (was it frozen, e.g. copied "
                         f"from a frozen model?); call .requires_grad_(True) on it first")


def make_optimizer(module: torch.nn.Module, config: LoopConfig) -> torch.optim.AdamW:
    """AdamW over the trainable parameters of ``module`` (decay on matrices only, as the Trainer)."""
    check_trainable(module)
    return torch.optim.AdamW(param_groups(module, config.weight_decay), lr=lr_at(0, config),
                             betas=(config.beta1, config.beta2))


def set_lr(optimizer, step: int, config: LoopConfig) -> float:
    """Set every group's learning rate for ``step`` (warm-up + cosine, ``train.lr_at``); return it."""
    lr = lr_at(step, config)
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)
    return lr


def clip_and_step(module, optimizer, loss: torch.Tensor, step: int, config: LoopConfig) -> float:
    """backward, stop on a NaN/inf loss or gradient (before it reaches the weights), clip, step.
    Returns the gradient norm before clipping."""
    if not torch.isfinite(loss):
        raise TrainingDiverged(f"the loss is {loss.item()} at step {step}; lower the learning rate", step, loss.item())
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    params = [p for g in optimizer.param_groups for p in g["params"]]
    norm = torch.nn.utils.clip_grad_norm_(params, config.grad_clip if config.grad_clip else math.inf)
    if not torch.isfinite(norm):
        raise TrainingDiverged(f"the gradient norm is {norm.item()} at step {step}; lower the learning rate",
                               step, loss.item())
    optimizer.step()
    return norm.item()


def progress_bar(config: LoopConfig, step: int, desc: str):
    """A tqdm bar from ``step`` to ``max_iters`` (None when progress is off)."""
    if not config.progress:
        return None
    from tqdm.auto import tqdm
    return tqdm(total=config.max_iters, initial=step, desc=desc, unit="step", dynamic_ncols=True)


def checkpoint_path(config: LoopConfig) -> Optional[Path]:
    return None if config.out_dir is None else Path(config.out_dir) / DEFAULT_NAME


def save_state(config: LoopConfig, model, optimizer, step: int, tokenizer, extra: dict,
               generator: Optional[torch.Generator] = None) -> Optional[Path]:
    """Atomically write ``out_dir/ckpt.pt`` (model weights, optimizer, step, random states, config and
    ``extra``); nothing when out_dir is None. A crash mid-save keeps the previous checkpoint."""
    path = checkpoint_path(config)
    if path is None:
        return None
    extra = {**extra, "align_config": config.to_dict()}
    return save_checkpoint(path, model, optimizer, step=step, extra=extra, tokenizer=tokenizer,
                           rng_state=capture_rng_state(generator))


def load_state(config: LoopConfig, model, optimizer, method: str, generator=None) -> tuple[int, dict]:
    """Resume from ``out_dir/ckpt.pt``: weights and optimizer into ``model`` / ``optimizer``, random
    states back; returns (step, the checkpoint's extra). CheckpointError when there is nothing to
    resume or the file was written by another method."""
    path = checkpoint_path(config)
    if path is None:
        raise ValueError("resume=True needs out_dir: the folder whose ckpt.pt to resume from")
    ckpt = load_checkpoint(path)
    require_training_state(ckpt, path)
    found = ckpt.get("extra", {}).get("method")
    if found != method:
        raise CheckpointError(f"{path} was written by {found or 'another loop'!s}, not {method}; "
                              f"resume it with its own method or choose another out_dir")
    step = restore(ckpt, model, optimizer)
    restore_rng_state(ckpt["rng"], generator)
    return step, ckpt["extra"]


class CtrlC:
    """Set by the first Ctrl-C while a loop runs (``ctrl_c_between_steps``): the loop finishes its step,
    saves and stops; a second Ctrl-C stops at once."""

    pressed = False


@contextmanager
def ctrl_c_between_steps():
    """Yield a CtrlC: in the main thread, a first Ctrl-C only sets ``.pressed`` so the loop can end the
    step it is in and save whole steps (as the Trainer does); elsewhere Ctrl-C keeps its meaning."""
    flag = CtrlC()
    previous = signal.getsignal(signal.SIGINT)
    if threading.current_thread() is not threading.main_thread() or previous is None:
        yield flag
        return

    def on_ctrl_c(signum, frame):
        if flag.pressed:
            raise KeyboardInterrupt
        flag.pressed = True

    signal.signal(signal.SIGINT, on_ctrl_c)
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, previous)


def stop_after_ctrl_c(config: LoopConfig, step: int, save) -> None:
    """After a step that a Ctrl-C interrupted: save (``save()``, when out_dir is set), say how to go on,
    and raise KeyboardInterrupt."""
    if config.out_dir is not None:
        save()
        print(f"interrupted after step {step}: saved {checkpoint_path(config)}; run again with resume=True "
              f"(--resume) to go on", flush=True)
    raise KeyboardInterrupt


def record_step(stats: dict, history: dict, callbacks, bar, **postfix) -> None:
    """Append one step's stats to the history, call the callbacks, move the progress bar on."""
    for k, v in stats.items():
        history[k].append(v)
    for cb in callbacks:
        cb("step", stats)
    if bar is not None:
        bar.update(1)
        bar.set_postfix(**postfix)


def end_of_step(config: LoopConfig, step: int, dev, evaluate, save, ctrl_c: CtrlC) -> None:
    """After step ``step`` (counted from 1): evaluate (when there is a dev set) and save every
    ``eval_interval`` steps and at the last one; after a Ctrl-C, save and stop."""
    if step % config.eval_interval == 0 or step == config.max_iters:
        if dev is not None:
            evaluate()
        save()
    if ctrl_c.pressed:
        stop_after_ctrl_c(config, step, save)


def new_history(*keys: str) -> dict:
    return {k: [] for k in keys}
