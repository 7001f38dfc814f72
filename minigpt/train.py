"""Training: AdamW, warm-up + cosine learning rate, gradient accumulation and clipping, evaluation,
mixed precision, checkpoints you can resume exactly, and data parallel over several processes.

    trainer = mg.Trainer(model, train_ids, val_ids, mg.TrainConfig(max_iters=2000, out_dir="runs/x"))
    history = trainer.fit()            # Ctrl-C saves runs/x/ckpt.pt; fit(resume=True) goes on from it

One optimizer step (``Trainer._train_step``):
    1. for each of ``grad_accum_steps`` micro-batches: sample (x, y), forward, loss / steps, backward
    2. stop with TrainingDiverged if the loss is NaN or infinite (before it reaches the weights)
    3. clip the global gradient norm to ``grad_clip`` (the norm *before* clipping goes in the history)
    4. optimizer step at the learning rate ``lr_at(step)``, then advance the schedule

Launched by ``torchrun --nproc_per_node N``, every process trains on its own batches and
DistributedDataParallel averages the gradients, so all processes hold the same weights.
"""

from __future__ import annotations

import inspect
import math
import os
import time
import warnings
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Optional

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from .checkpoint import (CheckpointError, capture_rng_state, load_checkpoint, resolve_path, restore,
                         restore_rng_state, save_checkpoint)
from .data import get_batch
from .runtime import pick_device

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite. ``.step`` is the step it happened at, ``.loss`` the value."""

    def __init__(self, message: str, step: int, loss: float):
        super().__init__(message)
        self.step, self.loss = step, loss


# ---------------------------------------------------------------------------- configuration

def _check_int(config, name: str, low: int, allow_none: bool = False) -> None:
    value = getattr(config, name)
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        none = " (or None)" if allow_none else ""
        raise ValueError(f"TrainConfig.{name} must be an integer >= {low}{none}, got {value!r}")


def _check_number(config, name: str, low: float, high: float = math.inf, low_open: bool = False,
                  high_open: bool = False, allow_none: bool = False) -> None:
    value = getattr(config, name)
    if value is None and allow_none:
        return
    ok = (not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
          and (value > low if low_open else value >= low) and (value < high if high_open else value <= high))
    if not ok:
        lo, hi = ("(" if low_open else "["), (")" if high_open or high == math.inf else "]")
        raise ValueError(f"TrainConfig.{name} must be a number in {lo}{low}, {high}{hi}, got {value!r}")


@dataclass
class TrainConfig:
    """How to train. The defaults follow nanoGPT's Shakespeare character model."""

    max_iters: int = 5000            # optimizer steps in total (a resumed run counts the steps already done)
    batch_size: int = 64             # sequences per micro-batch (per process under DDP)
    block_size: Optional[int] = None  # tokens per sequence; None = the model's block_size
    learning_rate: float = 1e-3      # peak learning rate, reached at the end of warm-up
    min_lr: float = 1e-4             # where the cosine decay ends (about learning_rate / 10)
    warmup_iters: int = 100          # linear warm-up from ~0: early Adam statistics are noisy
    lr_decay_iters: Optional[int] = None  # step where the cosine reaches min_lr; None = max_iters
    weight_decay: float = 0.1        # AdamW decay, only on matrices and embeddings
    beta1: float = 0.9
    beta2: float = 0.99              # a bit below Adam's 0.999: few tokens per step, so adapt faster
    grad_clip: Optional[float] = 1.0  # clip the global gradient norm to this; 0 or None = no clipping
    grad_accum_steps: int = 1        # micro-batches per step: effective batch = batch_size x this x processes
    eval_interval: int = 250         # evaluate every N steps (and at the end)
    eval_iters: int = 200            # batches averaged per split at each evaluation
    log_interval: int = 10           # refresh the progress bar figures every N steps
    checkpoint_interval: Optional[int] = None  # save every N steps; None = every eval_interval
    out_dir: Optional[str | Path] = None  # where ckpt.pt goes; None = save nothing
    device: str = "auto"             # "auto" (CUDA if present, else CPU), "cpu", "cuda", "cuda:1", "mps"
    dtype: str = "auto"              # "auto" (bfloat16 on CUDA, float32 elsewhere), "float32", "bfloat16", "float16"
    compile: bool = False            # torch.compile the model (fast on CUDA, slow to start on CPU)
    seed: int = 1337
    progress: bool = True            # a tqdm progress bar; False prints one line per evaluation

    def __post_init__(self):
        _check_int(self, "max_iters", 0)
        _check_int(self, "batch_size", 1)
        _check_int(self, "block_size", 1, allow_none=True)
        _check_number(self, "learning_rate", 0, low_open=True)
        _check_number(self, "min_lr", 0)
        if self.min_lr > self.learning_rate:
            raise ValueError(f"TrainConfig.min_lr ({self.min_lr}) must not exceed learning_rate "
                             f"({self.learning_rate}): the schedule decays from learning_rate down to min_lr")
        _check_int(self, "warmup_iters", 0)
        _check_int(self, "lr_decay_iters", 0, allow_none=True)
        if self.lr_decay_iters is not None and self.lr_decay_iters < self.warmup_iters:
            raise ValueError(f"TrainConfig.lr_decay_iters ({self.lr_decay_iters}) must be at least "
                             f"warmup_iters ({self.warmup_iters}): decay starts when warm-up ends")
        _check_number(self, "weight_decay", 0)
        _check_number(self, "beta1", 0, 1, high_open=True)
        _check_number(self, "beta2", 0, 1, high_open=True)
        _check_number(self, "grad_clip", 0, allow_none=True)
        for name in ("grad_accum_steps", "eval_interval", "eval_iters", "log_interval"):
            _check_int(self, name, 1)
        _check_int(self, "checkpoint_interval", 1, allow_none=True)
        if self.out_dir is not None:
            if not isinstance(self.out_dir, (str, Path)) or str(self.out_dir) == "":
                raise ValueError(f"TrainConfig.out_dir must be a folder path or None, got {self.out_dir!r}")
            self.out_dir = Path(self.out_dir).expanduser()
        if not isinstance(self.device, (str, torch.device)):
            raise ValueError(f"TrainConfig.device must be a string such as 'auto', 'cpu' or 'cuda', "
                             f"got {self.device!r}")
        self.device = str(self.device)
        if self.device != "auto":
            try:
                torch.device(self.device)
            except RuntimeError:
                raise ValueError(f"TrainConfig.device {self.device!r} is not a device torch knows; "
                                 f"use 'auto', 'cpu', 'cuda', 'cuda:0' or 'mps'") from None
        if self.dtype not in ("auto", *_DTYPES):
            raise ValueError(f"TrainConfig.dtype must be one of 'auto', {', '.join(map(repr, _DTYPES))}; "
                             f"got {self.dtype!r}")
        for name in ("compile", "progress"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"TrainConfig.{name} must be True or False, got {getattr(self, name)!r}")
        _check_int(self, "seed", 0)

    def to_dict(self) -> dict:
        """Plain values only (out_dir as a string), so it can go into a checkpoint or JSON."""
        d = asdict(self)
        d["out_dir"] = None if self.out_dir is None else str(self.out_dir)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown TrainConfig fields {sorted(unknown)}; known fields are {sorted(known)}")
        return cls(**d)


def lr_at(it: int, config: TrainConfig) -> float:
    """Learning rate for step ``it`` (0-based): linear warm-up to ``learning_rate`` over
    ``warmup_iters`` steps, then a half cosine down to ``min_lr`` at ``lr_decay_iters``
    (default ``max_iters``), then ``min_lr`` for good. A pure function, so it can be plotted."""
    decay_iters = config.max_iters if config.lr_decay_iters is None else config.lr_decay_iters
    if it < config.warmup_iters:
        return config.learning_rate * (it + 1) / (config.warmup_iters + 1)  # never exactly 0: step 0 learns too
    if it >= decay_iters:
        return config.min_lr
    progress = (it - config.warmup_iters) / (decay_iters - config.warmup_iters)  # 0 -> 1
    return config.min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (config.learning_rate - config.min_lr)


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """Two AdamW groups: weight decay on >= 2-D weights (matmuls, embeddings), none on biases
    and LayerNorm gains, which only shift and scale: pulling them to 0 would not regularise,
    just fight the normalisation. Tied weights (wte = lm_head) appear once."""
    params = [p for p in model.parameters() if p.requires_grad]
    return [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]


# ---------------------------------------------------------------------------- the trainer

class Trainer:
    """Trains a GPT on token ids.

    model:      a GPT (moved to the trainer's device).
    train_ids:  [N] token ids to train on (1-D integer tensor or list); val_ids: [M] held out, or None.
    config:     a TrainConfig (default: TrainConfig()).
    callbacks:  callables ``cb(trainer, event, stats)``, event in {"step", "eval", "end"}; stats:
                step: iter, loss, lr, grad_norm, tokens_per_sec; eval: iter, train_loss, val_loss;
                end: iter, train_loss, val_loss. Set ``trainer.should_stop = True`` to stop early.
                Under DDP they run in every process (the numbers are the same); use
                ``trainer.is_main_process`` to act once.
    tokenizer:  stored in checkpoints when given, so ``load_model`` returns it with the model.

    ``history`` holds lists: iter, loss, lr, grad_norm, tokens_per_sec (one entry per step) and
    eval_iter, train_eval_loss, val_loss (one per evaluation). ``iter`` counts steps done before it.

    Like nanoGPT, the Trainer seeds torch's global generator with ``config.seed`` (+ the process
    rank), so a run repeats exactly.
    """

    def __init__(self, model, train_ids, val_ids=None, config: TrainConfig | None = None,
                 callbacks=(), tokenizer=None):
        self.config = config = TrainConfig() if config is None else config
        if not isinstance(config, TrainConfig):
            raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
        if not hasattr(model, "config") or not hasattr(model.config, "vocab_size"):
            raise TypeError(f"Trainer trains a minigpt GPT, got {type(model).__name__}")
        self.callbacks = list(callbacks)
        for cb in self.callbacks:
            if not callable(cb):
                raise TypeError(f"callbacks must be callables cb(trainer, event, stats), got {cb!r}")
        self.tokenizer = tokenizer

        # Data parallel: torchrun sets WORLD_SIZE, RANK and LOCAL_RANK for every process.
        if dist.is_available() and dist.is_initialized():
            self.rank, self.world_size = dist.get_rank(), dist.get_world_size()
        else:
            self.rank, self.world_size = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
        self.local_rank = int(os.environ.get("LOCAL_RANK", 0))
        self.is_main_process = self.rank == 0

        self.device = self._pick_device()
        self.dtype = self._pick_dtype()
        self.block_size = config.block_size or model.config.block_size
        if self.block_size > model.config.block_size:
            raise ValueError(f"TrainConfig.block_size ({self.block_size}) is longer than the model's "
                             f"block_size ({model.config.block_size}); use at most {model.config.block_size}")
        self.train_ids = self._check_ids(train_ids, "train_ids", model.config.vocab_size)
        self.val_ids = None if val_ids is None else self._check_ids(val_ids, "val_ids", model.config.vocab_size)

        self.raw_model = self.model = model.to(self.device)
        self._model = model  # what forward passes go through: the model, or its compiled version
        if config.compile:
            if self.device.type != "cuda":
                warnings.warn("torch.compile on the CPU takes a minute or more before the first step and "
                              "rarely pays off for small models; set compile=False to start at once",
                              stacklevel=2)
            self._model = torch.compile(model)
        self._ddp = None  # DistributedDataParallel wrapper while fit() runs under torchrun

        # Every process gets its own random streams: different dropout masks and different batches.
        torch.manual_seed(config.seed + self.rank)
        self.generator = torch.Generator().manual_seed(config.seed + self.rank)  # picks training batches

        self._fused = self.device.type == "cuda" and "fused" in inspect.signature(torch.optim.AdamW).parameters
        self.optimizer = torch.optim.AdamW(param_groups(model, config.weight_decay), lr=config.learning_rate,
                                           betas=(config.beta1, config.beta2),
                                           **({"fused": True} if self._fused else {}))
        # LambdaLR multiplies the base rate by this factor; its state (the step) goes into checkpoints.
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda it: lr_at(it, self.config) / self.config.learning_rate)
        # float16 has too little range for small gradients: scale the loss up, the gradients back down.
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.dtype == torch.float16)

        self.step = 0
        self.history = {k: [] for k in ("iter", "loss", "lr", "grad_norm", "tokens_per_sec",
                                        "eval_iter", "train_eval_loss", "val_loss")}
        self.should_stop = False
        self._last_saved_step = None
        self._in_step = False
        self._rng_before_step = None

    # ------------------------------------------------------------------ set-up helpers

    def _pick_device(self) -> torch.device:
        cfg = self.config
        device = pick_device() if cfg.device == "auto" else torch.device(cfg.device)
        if device.type == "cuda":
            if not torch.cuda.is_available():
                raise ValueError(f"TrainConfig.device={cfg.device!r} but no CUDA device is available; "
                                 f"use device='auto' or 'cpu'")
            if self.world_size > 1:
                device = torch.device("cuda", self.local_rank)  # one GPU per process
        if device.type == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
            raise ValueError("TrainConfig.device='mps' but MPS is not available here; use 'auto' or 'cpu'")
        return device

    def _pick_dtype(self) -> torch.dtype:
        cfg, cuda = self.config, self.device.type == "cuda"
        if cfg.dtype == "auto":
            if not cuda:
                return torch.float32
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        if cfg.dtype == "float16" and not cuda:
            raise ValueError(f"TrainConfig.dtype='float16' needs a CUDA GPU (it trains on {self.device}); "
                             f"use 'bfloat16' or 'float32'")
        return _DTYPES[cfg.dtype]

    def _check_ids(self, ids, what: str, vocab_size: int) -> torch.Tensor:
        if isinstance(ids, str):
            raise ValueError(f"{what} is a str; encode it into token ids first, e.g. tok.encode(text)")
        t = torch.as_tensor(ids)
        if t.dim() != 1 or t.dtype.is_floating_point or t.dtype.is_complex or t.dtype == torch.bool:
            raise ValueError(f"{what} must be a 1-D sequence of integer token ids, got {t.dim()}-D {t.dtype}")
        if len(t) < self.block_size + 1:
            raise ValueError(f"{what} has {len(t)} tokens but block_size={self.block_size} needs at least "
                             f"{self.block_size + 1}; use more text or a smaller block_size")
        lo, hi = int(t.min()), int(t.max())
        if lo < 0 or hi >= vocab_size:
            raise ValueError(f"{what} holds token id {lo if lo < 0 else hi}, outside the model's vocabulary "
                             f"(0..{vocab_size - 1}); build the model with vocab_size=tok.vocab_size of "
                             f"the tokenizer that encoded the text")
        return t

    def _autocast(self):
        if self.dtype == torch.float32:
            return nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.dtype)

    @property
    def checkpoint_path(self) -> Path | None:
        """Where checkpoints go: ``out_dir/ckpt.pt``, or None when out_dir is not set."""
        return None if self.config.out_dir is None else Path(self.config.out_dir) / "ckpt.pt"

    @property
    def _distributed_now(self) -> bool:
        return self.world_size > 1 and dist.is_available() and dist.is_initialized()

    @contextmanager
    def _distributed(self):
        """Under torchrun: join the process group (unless the caller already did) and wrap the
        model in DDP for the duration of fit(); leave the group afterwards if we joined it."""
        if self.world_size <= 1:
            yield
            return
        joined = False
        if not dist.is_initialized():
            backend = "nccl" if self.device.type == "cuda" else "gloo"
            if self.device.type == "cuda":
                torch.cuda.set_device(self.device)
            dist.init_process_group(backend=backend)
            joined = True
        # DDP copies rank 0's weights to every process, then averages gradients in backward().
        device_ids = [self.device.index] if self.device.type == "cuda" else None
        self._ddp = DistributedDataParallel(self._model, device_ids=device_ids)
        try:
            yield
        finally:
            self._ddp = None
            if joined:
                dist.destroy_process_group()

    def _all_mean(self, value: torch.Tensor) -> torch.Tensor:
        """The mean of a scalar tensor over all processes (itself without DDP)."""
        if self._distributed_now:
            value = value.clone()
            dist.all_reduce(value, op=dist.ReduceOp.SUM)  # SUM: every backend has it, AVG is NCCL only
            value /= self.world_size
        return value

    def _callback(self, event: str, stats: dict) -> None:
        for cb in self.callbacks:
            cb(self, event, stats)

    # ------------------------------------------------------------------ evaluation

    @torch.no_grad()
    def evaluate(self, eval_iters: int | None = None) -> dict:
        """Mean loss over ``eval_iters`` (default config.eval_iters) batches of each split.

        Returns {"train": float, "val": float} ("val" only with val_ids). The batches are the same
        at every evaluation (a fixed seed), so the curve shows the model changing, not the sample,
        and evaluating never disturbs the random streams of training. Dropout is off meanwhile.
        Under DDP each process evaluates its share and the means are averaged over processes.
        """
        eval_iters = self.config.eval_iters if eval_iters is None else eval_iters
        n = math.ceil(eval_iters / self.world_size)
        model, was_training = self._model, self._model.training
        model.eval()
        out = {}
        splits = [("train", self.train_ids)] + ([("val", self.val_ids)] if self.val_ids is not None else [])
        for k, (name, data) in enumerate(splits):
            g = torch.Generator().manual_seed(self.config.seed + 1_000_003 * (self.rank + 1) + k)
            total = torch.zeros((), device=self.device)
            for _ in range(n):
                x, y = get_batch(data, self.config.batch_size, self.block_size, generator=g, device=self.device)
                with self._autocast():
                    total += model(x, targets=y).loss.float()
            out[name] = self._all_mean(total / n).item()
        model.train(was_training)
        return out

    def _evaluate_and_record(self) -> dict:
        losses = self.evaluate()
        h = self.history
        h["eval_iter"].append(self.step)
        h["train_eval_loss"].append(losses["train"])
        h["val_loss"].append(losses.get("val", math.nan))
        stats = {"iter": self.step, "train_loss": losses["train"], "val_loss": losses.get("val", math.nan)}
        if self.is_main_process and not self.config.progress:
            val = f", val loss {stats['val_loss']:.4f}" if "val" in losses else ""
            print(f"step {self.step}: train loss {stats['train_loss']:.4f}{val}", flush=True)
        self._callback("eval", stats)
        return stats

    # ------------------------------------------------------------------ checkpoints

    def save_checkpoint(self, path=None) -> Path | None:
        """Save everything needed to resume exactly (model, optimizer, schedule, step, history,
        random states) to ``path`` (default out_dir/ckpt.pt). Under DDP every process must call
        it (they pool their random states); only the main process writes. Returns the path or None."""
        path = self.checkpoint_path if path is None else Path(path)
        if path is None:
            raise ValueError("no path to save to: pass one, or set TrainConfig.out_dir")
        rng = capture_rng_state(self.generator)
        if self._distributed_now:
            rngs = [None] * self.world_size
            dist.all_gather_object(rngs, rng)  # one entry per process, so each resumes its own streams
            rng = rngs
        return self._write_checkpoint(path, rng)

    def _write_checkpoint(self, path: Path, rng) -> Path | None:
        self._last_saved_step = self.step  # in every process, so they all agree on when to save next
        if not self.is_main_process:
            return None
        extra = {"history": self.history, "train_config": self.config.to_dict(),
                 "world_size": self.world_size, "scaler": self.scaler.state_dict()}
        written = save_checkpoint(path, self.raw_model, self.optimizer, self.scheduler, step=self.step,
                                  extra=extra, tokenizer=self.tokenizer, rng_state=rng)
        return written

    def resume(self, path=None) -> "Trainer":
        """Load a checkpoint written by a Trainer (a file, or a folder holding ckpt.pt; default
        out_dir) and continue from it: ``fit()`` then gives exactly the losses and weights of a
        run that was never stopped, as long as the config's schedule is the same.

        The current config wins for hyper-parameters (learning rate schedule, betas, weight decay);
        the checkpoint supplies the state (weights, Adam moments, step, history, random streams).
        Raises CheckpointError for a missing or unusable file or a model with another config.
        """
        if path is None:
            if self.config.out_dir is None:
                raise ValueError("resume needs a checkpoint path, or TrainConfig.out_dir to look in")
            path = self.config.out_dir
        ckpt = load_checkpoint(resolve_path(path))
        if ckpt.get("optimizer") is None or ckpt.get("rng") is None:
            raise CheckpointError(f"{resolve_path(path)} holds weights only (no optimizer or random state), "
                                  f"so training cannot resume from it; load it with load_model(path) and "
                                  f"start a new run from those weights instead")
        self.step = restore(ckpt, self.raw_model, self.optimizer, self.scheduler)
        extra = ckpt.get("extra", {})
        saved_history = extra.get("history", {})
        self.history = {k: list(saved_history.get(k, [])) for k in self.history}
        if extra.get("scaler"):
            self.scaler.load_state_dict(extra["scaler"])
        self._warn_if_schedule_changed(extra.get("train_config"))
        self._apply_config_to_optimizer()
        self._restore_rng(ckpt["rng"])
        self._last_saved_step = self.step
        return self

    def _warn_if_schedule_changed(self, saved: dict | None) -> None:
        """Raising max_iters to train longer also stretches the cosine (unless lr_decay_iters is
        set), so the learning rate jumps; say so, and how to keep the old schedule."""
        if not saved or not self.is_main_process:
            return
        try:
            old = TrainConfig.from_dict({**saved, "out_dir": None})
        except (TypeError, ValueError):
            return  # written by another version of TrainConfig: nothing to compare with
        differ = [it for it in range(self.step, self.config.max_iters) if lr_at(it, old) != lr_at(it, self.config)]
        if differ:
            it, keep = differ[0], (old.max_iters if old.lr_decay_iters is None else old.lr_decay_iters)
            warnings.warn(f"the learning-rate schedule differs from the one the checkpoint was trained with "
                          f"(at step {it}: {lr_at(it, old):.3g} then, {lr_at(it, self.config):.3g} now); "
                          f"training goes on with the new one. To keep the old schedule, set "
                          f"lr_decay_iters={keep} and the same learning_rate, min_lr and warmup_iters",
                          stacklevel=3)

    def _apply_config_to_optimizer(self) -> None:
        """After loading optimizer state, take the hyper-parameters from the current config."""
        cfg = self.config
        factor = lr_at(self.step, cfg) / cfg.learning_rate
        for group, wd in zip(self.optimizer.param_groups, (cfg.weight_decay, 0.0)):
            group.update(lr=cfg.learning_rate * factor, initial_lr=cfg.learning_rate,  # as LambdaLR computes it
                         betas=(cfg.beta1, cfg.beta2), weight_decay=wd)
            if "fused" in group:
                group["fused"] = True if self._fused else None
        self.scheduler.base_lrs = [cfg.learning_rate] * len(self.optimizer.param_groups)
        self.scheduler.last_epoch = self.step
        self.scheduler._last_lr = [g["lr"] for g in self.optimizer.param_groups]

    def _restore_rng(self, rng) -> None:
        """Give every process back its own random streams. A checkpoint saved by another number
        of processes (or on Ctrl-C under DDP, which keeps only the main process's) cannot: the
        processes it lacks start fresh streams that do not repeat the batches seen so far."""
        states = rng if isinstance(rng, list) else [rng]
        if self.rank < len(states):
            restore_rng_state(states[self.rank], self.generator)
        else:
            torch.manual_seed(self.config.seed + self.rank + 7919 * self.step)
            self.generator.manual_seed(self.config.seed + self.rank + 7919 * self.step)
        if len(states) != self.world_size and self.is_main_process:
            warnings.warn(f"the checkpoint holds the random state of {len(states)} process(es) and this run "
                          f"has {self.world_size}: training goes on correctly, but its batches differ from "
                          f"those of an uninterrupted run", stacklevel=3)

    def _save_on_interrupt(self) -> None:
        """Ctrl-C: save what the last completed step left, say where, so fit(resume=True) goes on."""
        if self.checkpoint_path is None or not self.is_main_process:
            return
        if self._in_step:  # interrupted mid-step: drop its half-made gradients, rewind its random draws
            self.optimizer.zero_grad(set_to_none=True)
            rng = self._rng_before_step
        else:
            rng = capture_rng_state(self.generator)
        # No collectives here (other processes may be gone), so only this process's random state.
        path = self._write_checkpoint(self.checkpoint_path, rng)
        print(f"\ninterrupted at step {self.step}: saved {path}; continue with fit(resume=True) "
              f"(or python -m minigpt train ... --resume)", flush=True)

    # ------------------------------------------------------------------ training

    def fit(self, resume=False) -> dict:
        """Train until ``config.max_iters`` steps are done; return ``history``.

        resume: True to continue from out_dir/ckpt.pt, or a path to a checkpoint (file or folder).
        Calling fit() again on the same Trainer continues where it stopped (raise max_iters first).
        Raises TrainingDiverged when the loss turns NaN/inf; on Ctrl-C saves a checkpoint (when
        out_dir is set) and re-raises KeyboardInterrupt.
        """
        if resume:
            if resume is True and self.config.out_dir is None:
                raise ValueError("fit(resume=True) continues from out_dir/ckpt.pt, but TrainConfig.out_dir "
                                 "is not set; set it or pass the checkpoint path: fit(resume='runs/x/ckpt.pt')")
            self.resume(None if resume is True else resume)
        self.should_stop = False
        with self._distributed():
            try:
                self._loop()
            except KeyboardInterrupt:
                self._save_on_interrupt()
                raise
            finally:
                self._in_step = False
        return self.history

    def _loop(self) -> None:
        from tqdm.auto import tqdm

        cfg = self.config
        model = self._ddp if self._ddp is not None else self._model
        every_ckpt = cfg.checkpoint_interval or cfg.eval_interval
        tokens_per_step = cfg.batch_size * self.block_size * cfg.grad_accum_steps * self.world_size
        bar = tqdm(total=cfg.max_iters, initial=self.step, desc="training", unit="step", dynamic_ncols=True,
                   disable=not (cfg.progress and self.is_main_process))
        model.train()
        h = self.history

        def evaluated_at(step):
            return bool(h["eval_iter"]) and h["eval_iter"][-1] == step

        try:
            if self.step % cfg.eval_interval == 0 and not evaluated_at(self.step):
                self._evaluate_and_record()  # where we start: step 0, or a resumed step
            while self.step < cfg.max_iters and not self.should_stop:
                t0 = time.perf_counter()
                stats = self._train_step(model)
                stats["tokens_per_sec"] = tokens_per_step / (time.perf_counter() - t0)
                for k in ("iter", "loss", "lr", "grad_norm", "tokens_per_sec"):
                    h[k].append(stats[k])
                # Evaluate before saving, so the checkpoint's history holds this step's evaluation.
                if self.step % cfg.eval_interval == 0 or self.step == cfg.max_iters:
                    self._evaluate_and_record()
                if cfg.out_dir is not None and self.step % every_ckpt == 0:
                    self.save_checkpoint()
                bar.update(1)
                if self.step % cfg.log_interval == 0 or self.step == cfg.max_iters:
                    val = h["val_loss"][-1] if h["val_loss"] else math.nan
                    recent = h["tokens_per_sec"][-cfg.log_interval:]
                    speed = len(recent) / sum(1 / t for t in recent)  # tokens over time across the window
                    bar.set_postfix({"loss": f"{stats['loss']:.4f}", "val": f"{val:.4f}",
                                     "tok/s": f"{speed:,.0f}"}, refresh=False)
                self._callback("step", stats)
            if not evaluated_at(self.step):  # stopped early by a callback
                self._evaluate_and_record()
            if cfg.out_dir is not None and self._last_saved_step != self.step:
                self.save_checkpoint()
        finally:
            bar.close()
        self._callback("end", {"iter": self.step, "train_loss": h["train_eval_loss"][-1],
                               "val_loss": h["val_loss"][-1]})

    def _train_step(self, model) -> dict:
        """One optimizer step over ``grad_accum_steps`` micro-batches; returns its stats."""
        cfg, it = self.config, self.step
        self._rng_before_step, self._in_step = capture_rng_state(self.generator), True
        lr = self.optimizer.param_groups[0]["lr"]
        loss_sum = torch.zeros((), device=self.device)
        for micro in range(cfg.grad_accum_steps):
            x, y = get_batch(self.train_ids, cfg.batch_size, self.block_size, generator=self.generator,
                             device=self.device)
            # DDP averages gradients in every backward(); during accumulation only the last one needs to.
            last = micro == cfg.grad_accum_steps - 1
            sync = self._ddp.no_sync() if self._ddp is not None and not last else nullcontext()
            with sync:
                with self._autocast():
                    loss = model(x, targets=y).loss
                # Dividing by the number of micro-batches makes the summed gradients a mean,
                # the gradient of one batch grad_accum_steps times larger.
                self.scaler.scale(loss / cfg.grad_accum_steps).backward()
            loss_sum += loss.detach().float() / cfg.grad_accum_steps
        loss_value = self._all_mean(loss_sum).item()  # every process decides alike
        if not math.isfinite(loss_value):
            self._diverged(it, loss_value, lr, "the loss")
        self.scaler.unscale_(self.optimizer)  # true gradients before measuring them (no-op without float16)
        # clip_grad_norm_ returns the norm before clipping: the history shows what clipping tamed.
        max_norm = cfg.grad_clip if cfg.grad_clip else math.inf
        grad_norm = torch.nn.utils.clip_grad_norm_(self.raw_model.parameters(), max_norm).item()
        if not math.isfinite(grad_norm) and not self.scaler.is_enabled():  # float16 skips such steps itself
            self._diverged(it, grad_norm, lr, "the gradient norm")
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        self.step += 1
        self._in_step = False
        return {"iter": it, "loss": loss_value, "lr": lr, "grad_norm": grad_norm}

    def _diverged(self, it: int, value: float, lr: float, what: str):
        self.optimizer.zero_grad(set_to_none=True)  # the weights stay those of the last good step
        self._in_step = False
        saved = ""
        if self._last_saved_step is not None and self.checkpoint_path is not None:
            saved = f" The last good checkpoint ({self._last_saved_step} steps) is {self.checkpoint_path}."
        clip = "" if self.config.grad_clip else " or turn on gradient clipping (grad_clip=1.0)"
        raise TrainingDiverged(
            f"training diverged: {what} became {value} at step {it} (learning rate {lr:.3g}); the weights "
            f"were not updated with it. Lower TrainConfig.learning_rate (now {self.config.learning_rate:g}) "
            f"by 3-10x{clip} and train again.{saved}", step=it, loss=value)
