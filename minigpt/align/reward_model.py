"""A reward model: one number for how good an answer is, learned from pairs that people compared.

The backbone is the chat model itself (same tokenizer, same template); a linear head reads the
final hidden state at the answer's last token (its end-of-turn token), which has seen the whole
prompt and answer, and gives a scalar score r(prompt, answer).

People rarely agree on absolute scores but do say which of two answers is better. The
Bradley–Terry model turns scores into the probability that the chosen answer wins,

    P(chosen > rejected) = sigmoid(r_chosen - r_rejected),

and training maximises it over the pairs: loss = -log sigmoid(r_chosen - r_rejected). Only
differences matter, so the scores have no fixed zero.

    rm = align.RewardModel.from_policy(policy, tok)
    history = align.train_reward_model(rm, align.load_preference_pairs("train"), align.load_preference_pairs("dev"))
    ev = align.evaluate_reward_model(rm, align.load_preference_pairs("test"))   # ev.accuracy, ev.chosen, ev.rejected
    rm.score(["How are you?"], ["Fine, thank you!"])
"""

from __future__ import annotations

import copy
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import torch
import torch.nn as nn
from torch.nn import functional as F

from ..checkpoint import CheckpointError, load_checkpoint, resolve_path, save_checkpoint
from ..model import GPT, GPTConfig
from ..runtime import eval_mode
from .logprobs import AnswerBatch, batch_answers, pad_sequences
from .loop import (LoopConfig, autocast, clip_and_step, ctrl_c_between_steps, end_of_step, load_state, make_optimizer,
                   new_history, pick, progress_bar, record_step, save_state, set_lr)
from .pairs import PreferencePair, answer_ids, check_pairs, end_id, prompt_ids

KIND = "reward-model"


def check_same_tokenizer(policy_tokenizer, reward_tokenizer) -> None:
    """Raise ValueError unless the two tokenizers are the same (same vocabulary, merges and special
    tokens): a reward model reads the policy's token ids, so they must mean the same text."""
    def key(t):
        return t.to_dict() if hasattr(t, "to_dict") else t
    if reward_tokenizer is None or policy_tokenizer is None or key(policy_tokenizer) != key(reward_tokenizer):
        raise ValueError("the reward model's tokenizer differs from the policy's: it would read the policy's "
                         "token ids as other text. Train the reward model from this policy "
                         "(RewardModel.from_policy(policy, tokenizer)) or use a policy with its tokenizer")


def bradley_terry_loss(r_chosen: torch.Tensor, r_rejected: torch.Tensor) -> torch.Tensor:
    """Mean of -log sigmoid(r_chosen - r_rejected) over the pairs: scores [B] and [B] -> a scalar.
    ln 2 when the scores are equal; near 0 when chosen wins by a wide margin."""
    if r_chosen.shape != r_rejected.shape:
        raise ValueError(f"r_chosen {tuple(r_chosen.shape)} and r_rejected {tuple(r_rejected.shape)} "
                         f"must have the same shape")
    return -F.logsigmoid(r_chosen - r_rejected).mean()


class RewardModel(nn.Module):
    """A GPT backbone with a scalar head at the last answer token.

    backbone:  a GPT (its LM head is not used).
    tokenizer: the backbone's tokenizer (stored with the weights; checked against the policy's).
    ``rm(ids [B, T], last [B]) -> scores [B]``: ids right-padded, last = each row's last answer token.
    """

    def __init__(self, backbone: GPT, tokenizer=None):
        super().__init__()
        if not isinstance(backbone, GPT):
            raise TypeError(f"RewardModel needs a GPT backbone, got {type(backbone).__name__}")
        self.backbone, self.tokenizer = backbone, tokenizer
        self.head = nn.Linear(backbone.config.n_embd, 1)
        nn.init.zeros_(self.head.weight)  # every score starts at 0: the loss starts at ln 2
        nn.init.zeros_(self.head.bias)
        self.head.to(backbone.device)

    @classmethod
    def from_policy(cls, policy: GPT, tokenizer) -> "RewardModel":
        """A reward model on a copy of the policy's backbone (the policy itself is left alone)."""
        return cls(copy.deepcopy(policy), tokenizer)

    @property
    def device(self) -> torch.device:
        return self.backbone.device

    def features(self, ids: torch.Tensor, last: torch.Tensor) -> torch.Tensor:
        """[B, C]: the final-norm hidden state at position last[b] of each row."""
        out = self.backbone(ids, return_hidden_states=True, last_only=True)  # logits of one position only
        h = out.hidden_states[-1][torch.arange(ids.size(0), device=ids.device), last]  # [B, C]
        return self.backbone.transformer.ln_f(h)

    def forward(self, ids: torch.Tensor, last: torch.Tensor) -> torch.Tensor:
        """ids [B, T] long, last [B] long -> scores [B] (float32)."""
        return self.head(self.features(ids, last)).squeeze(-1).float()

    @torch.no_grad()
    def score(self, prompts: Sequence, answers: Sequence[str], batch_size: int = 64) -> torch.Tensor:
        """Scores [N] (CPU float32) of each answer to its prompt (strings or message lists)."""
        if self.tokenizer is None:
            raise ValueError("this reward model has no tokenizer; build it with RewardModel(backbone, tokenizer)")
        batch = batch_answers(self.tokenizer, prompts, answers, self.backbone.config.block_size)
        return self.score_batch(batch, batch_size)

    @torch.no_grad()
    def score_batch(self, batch: AnswerBatch, batch_size: int = 64) -> torch.Tensor:
        """Scores [B] (CPU float32) of an AnswerBatch, ``batch_size`` rows at a time."""
        out = []
        with eval_mode(self):
            for i in range(0, len(batch), batch_size):
                part = batch.select(range(i, min(i + batch_size, len(batch)))).to(self.device)
                out.append(self(part.ids, part.last).cpu())
        return torch.cat(out)

    # ------------------------------------------------------------------ files

    def save(self, path, extra: Optional[dict] = None) -> Path:
        """Write the reward model (backbone, head, tokenizer, ``extra``) atomically to ``path``."""
        extra = {**(extra or {}), "kind": KIND, "head": {k: v.cpu() for k, v in self.head.state_dict().items()}}
        return save_checkpoint(path, self.backbone, tokenizer=self.tokenizer, extra=extra, rng_state=None)

    @classmethod
    def load(cls, name_or_path, device=None) -> "RewardModel":
        """A reward model by shipped name (e.g. "dailydialog-reward") or file (a ``save`` or a training
        checkpoint of ``train_reward_model``), in eval mode on ``device`` (default CPU)."""
        from .. import pretrained
        from ..tokenizer import tokenizer_from_dict

        path = pretrained.path(name_or_path) if name_or_path in pretrained.PRETRAINED else resolve_path(name_or_path)
        ckpt = load_checkpoint(path)
        head = ckpt.get("extra", {}).get("head")
        if head is None:
            raise CheckpointError(f"{path} holds no reward head: it is not a reward model (a plain language model "
                                  f"needs RewardModel.from_policy and training first)")
        backbone = GPT(GPTConfig.from_dict(ckpt["model_config"]))
        backbone.load_state_dict(ckpt["model"])
        tokenizer = tokenizer_from_dict(ckpt["tokenizer"]) if ckpt.get("tokenizer") else None
        rm = cls(backbone, tokenizer)
        rm.head.load_state_dict(head)
        rm.info = {k: v for k, v in ckpt["extra"].items() if k != "head"}
        return rm.to(device or "cpu").eval()


# ------------------------------------------------------------------ pairs as token ids

@dataclass
class EncodedPairs:
    """Preference pairs as token ids: for pair i, prompt[i], chosen[i], rejected[i] (answer ids end
    with the end token). ``dropped`` counts pairs left out for not fitting the context."""

    prompt: list
    chosen: list
    rejected: list
    pad_id: int
    dropped: int = 0

    def __len__(self) -> int:
        return len(self.prompt)

    def batch(self, index) -> AnswerBatch:
        """One AnswerBatch of 2B rows for the B pairs ``index``: the chosen answers (rows 0..B-1), then
        the rejected ones (rows B..2B-1), so both go through a model in one forward pass."""
        rows = [(self.prompt[i], self.chosen[i]) for i in index] + [(self.prompt[i], self.rejected[i]) for i in index]
        return pad_sequences(rows, self.pad_id)


def encode_pairs(tokenizer, pairs: Sequence[PreferencePair], block_size: int) -> EncodedPairs:
    """Encode pairs with the chat template, leaving out (and counting) those longer than block_size."""
    pairs = check_pairs(pairs)
    out = EncodedPairs([], [], [], end_id(tokenizer))
    for p in pairs:
        ids_p = prompt_ids(tokenizer, p.prompt)
        ids_c, ids_r = answer_ids(tokenizer, p.chosen), answer_ids(tokenizer, p.rejected)
        if len(ids_p) + max(len(ids_c), len(ids_r)) > block_size:
            out.dropped += 1
            continue
        out.prompt.append(ids_p)
        out.chosen.append(ids_c)
        out.rejected.append(ids_r)
    if not len(out):
        raise ValueError(f"none of the {len(pairs)} pairs fits the model's block_size ({block_size}) tokens")
    return out


def pair_scores(rm: RewardModel, enc: EncodedPairs, index) -> tuple[torch.Tensor, torch.Tensor]:
    """Scores of the chosen and rejected answers of the pairs ``index``: one forward over 2B rows."""
    batch = enc.batch(index).to(rm.device)
    scores = rm(batch.ids, batch.last)
    return scores[:len(index)], scores[len(index):]


# ------------------------------------------------------------------ evaluation

@dataclass
class RewardEval:
    """How a reward model ranks held-out pairs. chosen, rejected: [N] scores (CPU); margins = chosen - rejected."""

    accuracy: float
    loss: float
    chosen: torch.Tensor
    rejected: torch.Tensor

    @property
    def margins(self) -> torch.Tensor:
        return self.chosen - self.rejected

    def __repr__(self) -> str:
        return (f"RewardEval(accuracy={self.accuracy:.3f}, loss={self.loss:.4f}, n={len(self.chosen)}, "
                f"chosen mean {self.chosen.mean():.3f}, rejected mean {self.rejected.mean():.3f})")


@torch.no_grad()
def evaluate_reward_model(rm: RewardModel, pairs, batch_size: int = 64) -> RewardEval:
    """Accuracy (share of pairs where chosen scores higher; ties count half), Bradley–Terry loss and the
    score distributions on ``pairs`` (PreferencePairs, or EncodedPairs)."""
    enc = pairs if isinstance(pairs, EncodedPairs) else encode_pairs(rm.tokenizer, pairs, rm.backbone.config.block_size)
    chosen, rejected = [], []
    with eval_mode(rm):
        for i in range(0, len(enc), batch_size):
            c, r = pair_scores(rm, enc, list(range(i, min(i + batch_size, len(enc)))))
            chosen.append(c.cpu())
            rejected.append(r.cpu())
    chosen, rejected = torch.cat(chosen), torch.cat(rejected)
    accuracy = ((chosen > rejected).float() + 0.5 * (chosen == rejected).float()).mean().item()
    return RewardEval(accuracy, bradley_terry_loss(chosen, rejected).item(), chosen, rejected)


# ------------------------------------------------------------------ training

@dataclass
class RewardConfig(LoopConfig):
    """How to train a reward model (LoopConfig's fields, these defaults)."""

    max_iters: int = 300
    batch_size: int = 32
    learning_rate: float = 3e-4
    min_lr: float = 3e-5
    warmup_iters: int = 20
    eval_interval: int = 50


def train_reward_model(rm: RewardModel, train_pairs, dev_pairs=None, config: Optional[RewardConfig] = None,
                       resume: bool = False, callbacks=()) -> dict:
    """Train ``rm`` in place with the Bradley–Terry loss on random batches of ``train_pairs``.

    dev_pairs: evaluated every ``eval_interval`` steps and at the end (accuracy, loss).
    resume:    go on from ``config.out_dir/ckpt.pt`` (weights, optimizer, step, history, random state).
    callbacks: ``cb(event, stats)`` with event "step" or "eval".
    Returns the history: iter, loss, accuracy, lr, grad_norm (per step); eval_iter, dev_loss, dev_accuracy.
    """
    config = config or RewardConfig()
    if not isinstance(rm, RewardModel):
        raise TypeError(f"train_reward_model trains a RewardModel, got {type(rm).__name__}")
    if rm.tokenizer is None:
        raise ValueError("the reward model needs its tokenizer: RewardModel(backbone, tokenizer)")
    device = pick(config)
    rm.to(device)
    block = rm.backbone.config.block_size
    train = encode_pairs(rm.tokenizer, train_pairs, block)
    dev = encode_pairs(rm.tokenizer, dev_pairs, block) if dev_pairs is not None else None
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    optimizer = make_optimizer(rm, config)
    history = new_history("iter", "loss", "accuracy", "lr", "grad_norm", "eval_iter", "dev_loss", "dev_accuracy")
    step = 0
    if resume:
        step, extra = load_state(config, rm.backbone, optimizer, KIND, generator)
        rm.head.load_state_dict(extra["head"])
        history = extra["history"]

    def evaluate():
        ev = evaluate_reward_model(rm, dev)
        history["eval_iter"].append(step)
        history["dev_loss"].append(ev.loss)
        history["dev_accuracy"].append(ev.accuracy)
        for cb in callbacks:
            cb("eval", {"iter": step, "dev_loss": ev.loss, "dev_accuracy": ev.accuracy})
        if not config.progress:
            print(f"step {step}: dev loss {ev.loss:.4f}, dev accuracy {ev.accuracy:.3f}", flush=True)

    def save():
        save_state(config, rm.backbone, optimizer, step, rm.tokenizer, generator=generator,
                   extra={"method": KIND, "kind": KIND, "history": history,
                          "head": {k: v.cpu() for k, v in rm.head.state_dict().items()}})

    bar = progress_bar(config, step, "reward model")
    rm.train()
    interrupts = ExitStack()
    ctrl_c = interrupts.enter_context(ctrl_c_between_steps())
    try:
        while step < config.max_iters:
            lr = set_lr(optimizer, step, config)
            index = torch.randint(len(train), (config.batch_size,), generator=generator).tolist()
            with autocast(config, device):
                r_c, r_r = pair_scores(rm, train, index)
            loss = bradley_terry_loss(r_c, r_r)
            norm = clip_and_step(rm, optimizer, loss, step, config)
            stats = {"iter": step, "loss": loss.item(), "accuracy": (r_c > r_r).float().mean().item(),
                     "lr": lr, "grad_norm": norm}
            record_step(stats, history, callbacks, bar, loss=f"{stats['loss']:.3f}", acc=f"{stats['accuracy']:.2f}")
            step += 1
            end_of_step(config, step, dev, evaluate, save, ctrl_c)
    finally:
        interrupts.close()
        if bar is not None:
            bar.close()
        rm.eval()
    return history
