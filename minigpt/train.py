"""Training: AdamW, warm-up + cosine learning rate, gradient accumulation and clipping, evaluation,
mixed precision, checkpoints you can resume exactly, and data parallel over several processes.

    trainer = mg.Trainer(model, train_ids, val_ids, mg.TrainConfig(max_iters=2000, out_dir="runs/x"))
    history = trainer.fit()            # Ctrl-C saves runs/x/ckpt.pt; fit(resume=True) goes on from it

One optimizer step (``Trainer._train_step``):
    1. set the learning rate of every parameter group to ``lr_at(step)``
    2. for each of ``grad_accum_steps`` micro-batches: sample (x, y), forward, loss / steps, backward
    3. measure the global gradient norm (it goes in the history)
    4. stop with TrainingDiverged if the loss or that norm is NaN or infinite (before it reaches the weights)
    5. clip the gradients to the norm ``grad_clip``, then the optimizer step

Launched by ``torchrun --nproc_per_node N``, every process trains on its own batches and
DistributedDataParallel averages the gradients, so all processes hold the same weights.
"""

from __future__ import annotations

import math
import os
import signal
import threading
import time
import warnings
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from .checkpoint import (DEFAULT_NAME, capture_rng_state, load_checkpoint, require_training_state, restore, restore_rng_state,
                         save_checkpoint)
from .checks import as_ids, check_bool, check_ids_in_vocab, check_int, check_number, from_dict
from .data import get_batch
from .runtime import cpu_has_native_bfloat16, eval_mode, pick_device, resolve_device

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite. ``.step`` is the step it happened at, ``.loss`` the value."""

    def __init__(self, message: str, step: int, loss: float):
        super().__init__(message)
        self.step, self.loss = step, loss


# ---------------------------------------------------------------------------- configuration

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
    dtype: str = "auto"              # "auto" (bfloat16 mixed precision on CUDA and CPUs with bfloat16 units, else float32),
                                     # "float32", "bfloat16", "float16"
    compile: bool = False            # torch.compile the model (fast on CUDA, slow to start on CPU)
    seed: int = 1337
    progress: bool = True            # a tqdm progress bar; False prints one line per evaluation

    def __post_init__(self):
        def integer(name, low, allow_none=False):
            check_int(getattr(self, name), f"TrainConfig.{name}", low, allow_none)

        def number(name, low, high=math.inf, **kw):
            check_number(getattr(self, name), f"TrainConfig.{name}", low, high, **kw)

        integer("max_iters", 0)
        integer("batch_size", 1)
        integer("block_size", 1, allow_none=True)
        number("learning_rate", 0, low_open=True)
        number("min_lr", 0)
        if self.min_lr > self.learning_rate:
            raise ValueError(f"TrainConfig.min_lr ({self.min_lr}) must not exceed learning_rate "
                             f"({self.learning_rate}): the schedule decays from learning_rate down to min_lr")
        integer("warmup_iters", 0)
        integer("lr_decay_iters", 0, allow_none=True)
        if self.lr_decay_iters is not None and self.lr_decay_iters < self.warmup_iters:
            raise ValueError(f"TrainConfig.lr_decay_iters ({self.lr_decay_iters}) must be at least "
                             f"warmup_iters ({self.warmup_iters}): decay starts when warm-up ends")
        number("weight_decay", 0)
        number("beta1", 0, 1, high_open=True)
        number("beta2", 0, 1, high_open=True)
        number("grad_clip", 0, allow_none=True)
        for name in ("grad_accum_steps", "eval_interval", "eval_iters", "log_interval"):
            integer(name, 1)
        integer("checkpoint_interval", 1, allow_none=True)
        if self.out_dir is not None:
            if not isinstance(self.out_dir, (str, Path)) or str(self.out_dir) == "":
                raise ValueError(f"TrainConfig.out_dir must be a folder path or None, got {self.out_dir!r}")
            self.out_dir = Path(self.out_dir).expanduser()
        if not isinstance(self.device, (str, torch.device)):
            raise ValueError(f"TrainConfig.device must be a string such as 'auto', 'cpu' or 'cuda', "
                             f"got {self.device!r}")
        self.device = str(self.device)
        if self.device != "auto":
            resolve_device(self.device, "TrainConfig.device", must_exist=False)  # whether it is here: in Trainer
        if self.dtype not in ("auto", *_DTYPES):
            raise ValueError(f"TrainConfig.dtype must be one of 'auto', {', '.join(map(repr, _DTYPES))}; "
                             f"got {self.dtype!r}")
        check_bool(self.compile, "TrainConfig.compile")
        check_bool(self.progress, "TrainConfig.progress")
        integer("seed", 0)

    def to_dict(self) -> dict:
        """Plain values only (out_dir as a string), so it can go into a checkpoint or JSON."""
        d = asdict(self)
        d["out_dir"] = None if self.out_dir is None else str(self.out_dir)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        return from_dict(cls, d)


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
    just fight the normalisation. Tied weights (wte = lm_head) appear once.

    A model with its own ``optim_groups(weight_decay) -> list[dict]`` decides instead; a group's
    optional ``"lr_scale"`` multiplies the schedule's learning rate for it (e.g. a decoder that
    learns 5x faster than its encoder, as in PyTorch's chatbot tutorial)."""
    if hasattr(model, "optim_groups"):
        return model.optim_groups(weight_decay)
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
    get_batch:  optional ``get_batch(data, batch_size, block_size, generator=, device=) -> (x, y)``
                that draws batches instead of ``minigpt.data.get_batch``; train_ids and val_ids
                are then whatever it reads (e.g. ``minigpt.sft.ChatData``: padded or packed
                conversations whose targets are -100 where no loss is taken).

    ``raw_model`` is the GPT itself (its weights go into checkpoints); ``model`` is what forward
    passes go through: the same GPT, or its ``torch.compile``d version. Under torchrun, ``fit()``
    wraps ``model`` in DistributedDataParallel for the training steps.

    ``history`` holds lists: iter, loss, lr, grad_norm, tokens_per_sec (one entry per step) and
    eval_iter, train_eval_loss, val_loss (one per evaluation). ``iter`` counts steps done before it.

    Like nanoGPT, the Trainer seeds torch's global generator with ``config.seed`` (+ the process
    rank), so a run repeats exactly.
    """

    def __init__(self, model, train_ids, val_ids=None, config: TrainConfig | None = None,
                 callbacks=(), tokenizer=None, get_batch=None):
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
        self.dtype = self._pick_dtype(model)
        self.block_size = config.block_size or model.config.block_size
        if self.block_size > model.config.block_size:
            raise ValueError(f"TrainConfig.block_size ({self.block_size}) is longer than the model's "
                             f"block_size ({model.config.block_size}); use at most {model.config.block_size}")
        self.get_batch = get_batch  # None: minigpt.data.get_batch, random windows of one token stream
        if get_batch is None:
            # The token ids live on the training device, so a batch is an index and a gather there.
            self.train_ids = self._check_ids(train_ids, "train_ids", model.config.vocab_size)
            self.val_ids = None if val_ids is None else self._check_ids(val_ids, "val_ids", model.config.vocab_size)
        else:  # data that the caller's get_batch reads (and checks)
            self.train_ids, self.val_ids = train_ids, val_ids

        self.raw_model = self.model = model.to(self.device)
        if config.compile:
            if self.device.type != "cuda":
                warnings.warn("torch.compile on the CPU takes a minute or more before the first step and "
                              "rarely pays off for small models; set compile=False to start at once",
                              stacklevel=2)
            self.model = torch.compile(model)

        # Every process gets its own random streams: different dropout masks and different batches.
        torch.manual_seed(config.seed + self.rank)
        self.generator = torch.Generator().manual_seed(config.seed + self.rank)  # picks training batches

        # One fused kernel for all parameters where torch has it (CUDA, and CPU since torch 2.4),
        # else one multi-tensor (foreach) kernel per operation, rather than a loop over parameters.
        self._adamw_impl = _fastest_adamw(self.device)
        self.optimizer = torch.optim.AdamW(param_groups(model, config.weight_decay), lr=lr_at(0, config),
                                           betas=(config.beta1, config.beta2), **self._adamw_impl)
        self._set_lr(0)
        # float16 needs loss scaling so that small gradients do not underflow; bfloat16 does not.
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.dtype == torch.float16)

        self.step = 0
        self.history = {k: [] for k in ("iter", "loss", "lr", "grad_norm", "tokens_per_sec",
                                        "eval_iter", "train_eval_loss", "val_loss")}
        self.should_stop = False
        self._last_saved_step = None
        self._in_step = False            # True while a step runs: an interrupt then leaves a half-made step
        self._ctrl_c = False             # Ctrl-C arrived during a step: stop when it ends

    # ------------------------------------------------------------------ set-up helpers

    def _pick_device(self) -> torch.device:
        cfg = self.config
        device = pick_device() if cfg.device == "auto" else resolve_device(cfg.device, "TrainConfig.device")
        if device.type == "cuda" and self.world_size > 1:
            device = torch.device("cuda", self.local_rank)  # one GPU per process
        return device

    def _pick_dtype(self, model) -> torch.dtype:
        cfg, cuda = self.config, self.device.type == "cuda"
        if cfg.dtype == "auto":
            if not cuda:
                # Mixed precision pays on a CPU only where it multiplies bfloat16 natively: there the
                # matmuls run several times faster; elsewhere bfloat16 is emulated and slower. A model
                # can say it trains badly that way (cpu_bfloat16 = False, e.g. the encoder-decoder).
                fast = self.device.type == "cpu" and cpu_has_native_bfloat16()
                return torch.bfloat16 if fast and getattr(model, "cpu_bfloat16", True) else torch.float32
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        if cfg.dtype == "float16" and not cuda:
            raise ValueError(f"TrainConfig.dtype='float16' needs a CUDA GPU (it trains on {self.device}); "
                             f"use 'bfloat16' or 'float32'")
        return _DTYPES[cfg.dtype]

    def _check_ids(self, ids, what: str, vocab_size: int) -> torch.Tensor:
        """[N] ids checked (integers, long enough, inside the vocabulary) and placed on the device."""
        t = as_ids(ids, what)
        if len(t) < self.block_size + 1:
            raise ValueError(f"{what} has {len(t)} tokens but block_size={self.block_size} needs at least "
                             f"{self.block_size + 1}; use more text or a smaller block_size")
        check_ids_in_vocab(t, vocab_size, what)
        return t.to(self.device)

    def _batch(self, data, batch_size: int, generator: torch.Generator):
        """(x, y), each [batch_size, block_size], on the device: from the caller's get_batch, or random windows."""
        draw = get_batch if self.get_batch is None else self.get_batch
        return draw(data, batch_size, self.block_size, generator=generator, device=self.device)

    def _set_lr(self, it: int) -> float:
        """Give every parameter group the schedule's learning rate for step ``it`` (times the
        group's ``lr_scale``, if it has one); returns the schedule's rate."""
        lr = lr_at(it, self.config)
        for group in self.optimizer.param_groups:
            group["lr"] = lr * group.get("lr_scale", 1.0)
        return lr

    def _autocast(self):
        if self.dtype == torch.float32:
            return nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.dtype)

    @property
    def checkpoint_path(self) -> Path | None:
        """Where checkpoints go: ``out_dir/ckpt.pt``, or None when out_dir is not set."""
        return None if self.config.out_dir is None else Path(self.config.out_dir) / DEFAULT_NAME

    @property
    def _distributed_now(self) -> bool:
        return self.world_size > 1 and dist.is_available() and dist.is_initialized()

    @contextmanager
    def _distributed(self):
        """Yield the module the training steps run through. Under torchrun: join the process group
        (unless the caller already did) and wrap ``model`` in DDP for the duration of fit(); leave
        the group afterwards if we joined it. Otherwise: ``model`` itself."""
        if self.world_size <= 1:
            yield self.model
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
        try:
            yield DistributedDataParallel(self.model, device_ids=device_ids)
        finally:
            if joined:
                dist.destroy_process_group()

    def _all_mean(self, value: torch.Tensor) -> torch.Tensor:
        """The mean of a tensor over all processes (itself without DDP)."""
        if self._distributed_now:
            value = value.clone()
            dist.all_reduce(value, op=dist.ReduceOp.SUM)  # SUM: every backend has it, AVG is NCCL only
            value /= self.world_size
        return value

    def _callback(self, event: str, stats: dict) -> None:
        for cb in self.callbacks:
            cb(self, event, stats)

    # ------------------------------------------------------------------ evaluation

    @torch.inference_mode()
    def evaluate(self, eval_iters: int | None = None) -> dict:
        """Mean loss over ``eval_iters`` (default config.eval_iters) batches of each split.

        Returns {"train": float, "val": float} ("val" only with val_ids). The batches are the same
        at every evaluation (a fixed seed), so the curve shows the model changing, not the sample,
        and evaluating never disturbs the random streams of training. Dropout is off meanwhile.
        Under DDP each process evaluates its share and the means are averaged over processes.
        """
        cfg = self.config
        eval_iters = cfg.eval_iters if eval_iters is None else eval_iters
        n = math.ceil(eval_iters / self.world_size)
        # Without gradients nothing is kept for a backward pass, so several batches go through in one
        # forward pass (one larger matrix product instead of many small ones: faster on every device).
        # They are the same batches, drawn in the same order, and all equally long, so the mean is too.
        per_pass = max(1, min(n, _EVAL_LOGITS // (cfg.batch_size * self.block_size * self.raw_model.config.vocab_size)))
        if self.get_batch is not None:
            per_pass = 1  # the caller's batches may count different numbers of target tokens: one at a time
        splits = [("train", self.train_ids)] + ([("val", self.val_ids)] if self.val_ids is not None else [])
        out = {}
        with eval_mode(self.model):
            for k, (name, data) in enumerate(splits):
                g = torch.Generator().manual_seed(cfg.seed + 1_000_003 * (self.rank + 1) + k)
                total = torch.zeros((), device=self.device)
                for start in range(0, n, per_pass):
                    m = min(per_pass, n - start)
                    x, y = self._batch(data, cfg.batch_size * m, g)
                    with self._autocast():
                        total += self.model(x, targets=y).loss.float() * m
                out[name] = total / n
            means = self._all_mean(torch.stack(list(out.values()))).tolist()  # one read for both splits
        return dict(zip(out, means))

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
        """Save everything needed to resume exactly (model, optimizer, step, history, random
        states) to ``path`` (default out_dir/ckpt.pt), between two steps. Under DDP every process
        must call it (they pool their random states); only the main process writes. Returns the
        path or None."""
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
        return save_checkpoint(path, self.raw_model, self.optimizer, step=self.step, extra=extra,
                               tokenizer=self.tokenizer, rng_state=rng)

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
        ckpt = load_checkpoint(path)
        require_training_state(ckpt, path)
        self.step = restore(ckpt, self.raw_model, self.optimizer)
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
            old = TrainConfig.from_dict({**saved, "out_dir": None, "device": "auto"})
        except (TypeError, ValueError):
            return  # written by another version of TrainConfig: nothing to compare with
        differ = next((it for it in range(self.step, self.config.max_iters)
                       if lr_at(it, old) != lr_at(it, self.config)), None)
        if differ is not None:
            it, keep = differ, (old.max_iters if old.lr_decay_iters is None else old.lr_decay_iters)
            warnings.warn(f"the learning-rate schedule differs from the one the checkpoint was trained with "
                          f"(at step {it}: {lr_at(it, old):.3g} then, {lr_at(it, self.config):.3g} now); "
                          f"training goes on with the new one. To keep the old schedule, set "
                          f"lr_decay_iters={keep} and the same learning_rate, min_lr and warmup_iters",
                          stacklevel=3)

    def _apply_config_to_optimizer(self) -> None:
        """After loading optimizer state (which brings the saved hyper-parameters with it), take
        them from the current config, and this machine's choice of AdamW kernel."""
        cfg = self.config
        for group, fresh in zip(self.optimizer.param_groups, param_groups(self.raw_model, cfg.weight_decay)):
            group.update({"lr_scale": fresh.get("lr_scale", 1.0), "betas": (cfg.beta1, cfg.beta2),
                          "weight_decay": fresh.get("weight_decay", cfg.weight_decay),
                          "foreach": None, "fused": None, **self._adamw_impl})
        self._set_lr(self.step)

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

    # ------------------------------------------------------------------ Ctrl-C

    @contextmanager
    def _ctrl_c_between_steps(self):
        """While fit() runs (in the main thread), a Ctrl-C during a step lets that step finish and
        stops after it, so the checkpoint saved is one of whole steps; a second Ctrl-C, or one
        between steps, stops at once. Elsewhere Ctrl-C keeps its usual meaning."""
        previous = signal.getsignal(signal.SIGINT)
        if threading.current_thread() is not threading.main_thread() or previous is None:
            yield
            return

        def on_ctrl_c(signum, frame):
            if self._in_step and not self._ctrl_c:
                self._ctrl_c = True
            else:
                raise KeyboardInterrupt

        self._ctrl_c = False
        signal.signal(signal.SIGINT, on_ctrl_c)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)

    def _save_on_interrupt(self) -> None:
        """Ctrl-C: save what the last completed step left, say where, so fit(resume=True) goes on."""
        if self.checkpoint_path is None or not self.is_main_process:
            return
        if self._in_step:  # stopped in the middle of a step (a second Ctrl-C): its state is half made
            self.optimizer.zero_grad(set_to_none=True)
            kept = (f"the last checkpoint ({self._last_saved_step} steps) is {self.checkpoint_path}"
                    if self._last_saved_step is not None else "no checkpoint was saved")
            print(f"\ninterrupted in the middle of step {self.step + 1}: nothing saved; {kept}", flush=True)
            return
        # No collectives here (other processes may be gone), so only this process's random state.
        path = self._write_checkpoint(self.checkpoint_path, capture_rng_state(self.generator))
        print(f"\ninterrupted at step {self.step}: saved {path}; continue with fit(resume=True) "
              f"(or python -m minigpt train ... --resume)", flush=True)

    # ------------------------------------------------------------------ training

    def fit(self, resume=False) -> dict:
        """Train until ``config.max_iters`` steps are done; return ``history``.

        resume: True to continue from out_dir/ckpt.pt, or a path to a checkpoint (file or folder).
        Calling fit() again on the same Trainer continues where it stopped (raise max_iters first).
        Raises TrainingDiverged when the loss turns NaN/inf; on Ctrl-C finishes the step under way,
        saves a checkpoint (when out_dir is set) and re-raises KeyboardInterrupt.
        """
        if resume:
            if resume is True and self.config.out_dir is None:
                raise ValueError("fit(resume=True) continues from out_dir/ckpt.pt, but TrainConfig.out_dir "
                                 "is not set; set it or pass the checkpoint path: fit(resume='runs/x/ckpt.pt')")
            self.resume(None if resume is True else resume)
        self.should_stop = False
        with self._ctrl_c_between_steps(), self._distributed() as model:
            try:
                self._loop(model)
            except KeyboardInterrupt:
                self._save_on_interrupt()
                raise
            finally:
                self._in_step = False
                # The DDP wrapper goes before the process group it uses is destroyed on leaving
                # the block: torn down after it, its reducer can wait for the other processes forever.
                del model
        return self.history

    def _progress_bar(self):
        if not (self.config.progress and self.is_main_process):
            return None
        from tqdm.auto import tqdm

        return tqdm(total=self.config.max_iters, initial=self.step, desc="training", unit="step",
                    dynamic_ncols=True)

    def _loop(self, model) -> None:
        cfg = self.config
        every_ckpt = cfg.checkpoint_interval or cfg.eval_interval
        tokens_per_step = cfg.batch_size * self.block_size * cfg.grad_accum_steps * self.world_size
        bar = self._progress_bar()
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
                if bar is not None:
                    bar.update(1)
                    if self.step % cfg.log_interval == 0 or self.step == cfg.max_iters:
                        val = h["val_loss"][-1] if h["val_loss"] else math.nan
                        recent = h["tokens_per_sec"][-cfg.log_interval:]
                        speed = len(recent) / sum(1 / t for t in recent)  # tokens over time across the window
                        bar.set_postfix({"loss": f"{stats['loss']:.4f}", "val": f"{val:.4f}",
                                         "tok/s": f"{speed:,.0f}"}, refresh=False)
                self._callback("step", stats)
                if self._ctrl_c:
                    raise KeyboardInterrupt
            if not evaluated_at(self.step):  # stopped early by a callback
                self._evaluate_and_record()
            if cfg.out_dir is not None and self._last_saved_step != self.step:
                self.save_checkpoint()
        finally:
            if bar is not None:
                bar.close()
        self._callback("end", {"iter": self.step, "train_loss": h["train_eval_loss"][-1],
                               "val_loss": h["val_loss"][-1]})

    def _train_step(self, model) -> dict:
        """One optimizer step over ``grad_accum_steps`` micro-batches through ``model`` (the
        trainer's model, or its DDP wrapper); returns its stats."""
        cfg, it = self.config, self.step
        self._in_step = True
        lr = self._set_lr(it)
        ddp = isinstance(model, DistributedDataParallel)
        loss_sum = 0.0
        for micro in range(cfg.grad_accum_steps):
            x, y = self._batch(self.train_ids, cfg.batch_size, self.generator)
            # DDP averages gradients in every backward(); during accumulation only the last one needs to.
            last = micro == cfg.grad_accum_steps - 1
            with model.no_sync() if ddp and not last else nullcontext():
                with self._autocast():
                    # Dividing by the number of micro-batches makes the summed gradients a mean,
                    # the gradient of one batch grad_accum_steps times larger.
                    loss = model(x, targets=y).loss / cfg.grad_accum_steps
                self.scaler.scale(loss).backward()
            loss_sum = loss_sum + loss.detach().float()
        self.scaler.unscale_(self.optimizer)  # true gradients before measuring them (no-op without float16)
        # The global gradient norm before clipping goes in the history: it shows what clipping tamed.
        params = [p for p in self.raw_model.parameters() if p.grad is not None]
        norm = torch.nn.utils.get_total_norm([p.grad for p in params])
        # One read of both numbers: on a GPU every read waits for the work queued before it.
        loss_value, grad_norm = torch.stack((self._all_mean(loss_sum), norm.float())).tolist()
        # A NaN loss makes NaN gradients; they would reach the weights only in optimizer.step(), below.
        if not math.isfinite(loss_value):  # every process decides alike: the loss is their mean
            self._diverged(it, loss_value, lr, "the loss")
        if not math.isfinite(grad_norm) and not self.scaler.is_enabled():  # float16 skips such steps itself
            self._diverged(it, grad_norm, lr, "the gradient norm")
        # Clipping scales every gradient by min(1, grad_clip / norm); well below the threshold that
        # factor is exactly 1, and knowing the norm already, we skip multiplying by it.
        if cfg.grad_clip and grad_norm > 0.999 * cfg.grad_clip:
            torch.nn.utils.clip_grads_with_norm_(params, cfg.grad_clip, norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
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


# Logits elements per evaluation forward pass (float32: 16 MiB), whatever the batch and vocabulary.
_EVAL_LOGITS = 1 << 22


def _fastest_adamw(device: torch.device) -> dict:
    """AdamW's implementation keyword: fused (one kernel for every parameter) where this torch has
    it for ``device``, else foreach (one kernel per operation over all parameters)."""
    from torch.optim.optimizer import _get_fused_kernels_supported_devices

    try:
        fused = device.type in _get_fused_kernels_supported_devices()
    except Exception:  # a private helper: if it moves, the multi-tensor kernels are nearly as good
        fused = False
    return {"fused": True} if fused else {"foreach": True}
