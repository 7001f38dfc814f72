"""PPO for a chat model (RLHF, as in InstructGPT): sample answers, score them, push the policy up the
reward while a KL penalty keeps it near where it started.

One PPO step (``PPOTrainer.step``):

    1. rollout:  B prompts -> the policy samples answers (KV cache; prompts of equal length together)
    2. scoring:  the reward model scores each answer once (at its last token); the frozen reference
                 and the policy give per-token log-probs; the value head gives a value per token
    3. rewards:  per answer token  r_t = -kl_coef * (log pi(a_t) - log pi_ref(a_t)),  plus the score
                 at the last token. The KL term is the leash: without it (kl_coef = 0) the policy is
                 free to find whatever the reward model over-values (reward hacking).
    4. GAE:      advantages A_t from the rewards and values (gamma, lambda); returns = A_t + V_t
    5. update:   ``ppo_epochs`` passes over the batch in minibatches, each minimising
                     -min(ratio * A, clip(ratio, 1 - eps, 1 + eps) * A)      ratio = pi / pi_old
                     + vf_coef * clipped value loss - entropy_coef * entropy
                 Clipping stops one batch of samples from moving the policy too far: once the ratio
                 leaves [1 - eps, 1 + eps] in the direction the advantage favours, its gradient is 0.

Tokens are actions, the answer so far is the state, an answer is an episode. Per-token tensors line
up with the ids: ``x[:, t]`` belongs to token ``ids[:, t]``, computed from position t - 1.

    trainer = align.PPOTrainer(policy, reference, reward_model, tok, prompts, align.PPOConfig(kl_coef=0.1))
    history = trainer.fit()       # history["reward"], ["kl"], ["entropy"], ["clip_fraction"], ["answer_length"]
"""

from __future__ import annotations

import time
from collections import defaultdict
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Optional, Sequence

import torch
import torch.nn as nn

from ..checks import check_bool, check_int, check_number
from ..model import GPT
from ..sampling import Knobs, generating
from .logprobs import AnswerBatch, entropy_from_logits, logprobs_from_logits, pad_sequences
from .loop import (LoopConfig, autocast, check_trainable, clip_and_step, ctrl_c_between_steps, load_state,
                   make_optimizer, new_history, pick, progress_bar, save_state, set_lr, stop_after_ctrl_c)
from .pairs import as_messages, end_id, prompt_ids
from .reward_model import RewardModel, check_same_tokenizer

METHOD = "ppo"


# ------------------------------------------------------------------ 1. rollout

@dataclass
class Rollout:
    """Sampled answers, one per prompt.

    prompts:     the prompts (lists of Messages).
    ids:         [B, T] long on the policy's device: prompt, answer (with its end token if it ended), padding.
    mask:        [B, T] bool, True on answer tokens.
    last:        [B] index of each row's last answer token.
    prompt_lens: [B] prompt tokens per row.
    answers:     the answers as text (without the end token).
    finished:    [B] bool, True where the answer ended with the end token (else it hit max_new_tokens).
    """

    prompts: list
    ids: torch.Tensor
    mask: torch.Tensor
    last: torch.Tensor
    prompt_lens: torch.Tensor
    answers: list
    finished: torch.Tensor

    def __len__(self) -> int:
        return self.ids.size(0)

    @property
    def lengths(self) -> torch.Tensor:
        """[B] answer tokens per row (the end token included)."""
        return self.mask.sum(-1)

    def batch(self) -> AnswerBatch:
        return AnswerBatch(self.ids, self.mask, self.last, self.prompt_lens)


@torch.no_grad()
def rollout(policy: GPT, tokenizer, prompts: Sequence, max_new_tokens: int = 40, temperature: float = 1.0,
            top_k: Optional[int] = None, top_p: Optional[float] = None,
            generator: Optional[torch.Generator] = None) -> Rollout:
    """Sample one answer per prompt with the KV cache; returns a Rollout (rows in the order of ``prompts``).

    Without an attention mask, only prompts of the same token length can share a batch (left padding
    would let them attend to the padding), so prompts are grouped by length and each group is one
    batched prefill plus one batched decode step per token. A row that wrote the end token is padded
    from then on; a group stops when all its rows have ended. PPO needs the policy's own distribution:
    keep temperature 1 and no top-k / top-p for training rollouts.
    """
    check_int(max_new_tokens, "max_new_tokens", 1)
    knobs = Knobs(temperature=temperature, top_k=top_k, top_p=top_p)
    prompts = [as_messages(p) for p in prompts]
    if not prompts:
        raise ValueError("no prompts given: give at least one")
    encoded = [prompt_ids(tokenizer, p) for p in prompts]
    stop, block = end_id(tokenizer), policy.config.block_size
    groups = defaultdict(list)
    for i, ids in enumerate(encoded):
        groups[len(ids)].append(i)
    answers_ids: list = [None] * len(prompts)
    with generating(policy):
        for L, rows in groups.items():
            n_new = min(max_new_tokens, block - L)
            if n_new < 1:
                raise ValueError(f"a prompt takes {L} tokens, leaving no room to answer within the model's "
                                 f"block_size ({block}); use shorter prompts")
            x = torch.tensor([encoded[i] for i in rows], device=policy.device)  # [G, L]
            out = policy(x, use_cache=True, last_only=True)
            done = torch.zeros(len(rows), dtype=torch.bool, device=policy.device)
            new = []
            for t in range(n_new):
                token = knobs.pick(out.logits[:, -1].float(), None, generator)  # [G]
                token = torch.where(done, stop, token)
                new.append(token)
                done |= token == stop
                if t == n_new - 1 or bool(done.all()):
                    break
                out = policy(token[:, None], past_key_values=out.past_key_values, use_cache=True)
            for r, seq in zip(rows, torch.stack(new, 1).tolist()):
                answers_ids[r] = seq[:seq.index(stop) + 1] if stop in seq else seq
    batch = pad_sequences([(p, a) for p, a in zip(encoded, answers_ids)], stop).to(policy.device)
    finished = torch.tensor([a[-1] == stop for a in answers_ids], device=policy.device)
    texts = [tokenizer.decode(a[:-1] if a[-1] == stop else a) for a in answers_ids]
    return Rollout(prompts, batch.ids, batch.mask, batch.last, batch.prompt_lens, texts, finished)


# ------------------------------------------------------------------ 2-4. KL, rewards, advantages

def kl_per_token(logp: torch.Tensor, ref_logp: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """[B, T]: log pi(a_t) - log pi_ref(a_t) on answer tokens, 0 elsewhere. Its sum over an answer is an
    unbiased sample of KL(pi || pi_ref) for that prompt (one token can be negative; the mean is >= 0)."""
    return (logp - ref_logp) * mask


def token_rewards(scores: torch.Tensor, kl: torch.Tensor, mask: torch.Tensor, last: torch.Tensor,
                  kl_coef: float) -> torch.Tensor:
    """[B, T] per-token rewards: -kl_coef * kl on every answer token, plus the score [B] at the last one."""
    rewards = -kl_coef * kl * mask
    rewards[torch.arange(len(last), device=last.device), last] += scores.to(rewards.dtype)
    return rewards


def gae(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float = 1.0,
        lam: float = 0.95) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation over each row's answer tokens.

    rewards, values: [B, T] (values[:, t] = V(state before token t)); mask: [B, T] bool, the answer.
    delta_t = r_t + gamma * V_{t+1} - V_t  (V after the last answer token = 0: the episode ends),
    A_t = delta_t + gamma * lam * A_{t+1}.  lam = 0: one-step TD; lam = 1: reward-to-go minus V.
    Returns (advantages [B, T], returns [B, T] = advantages + values), 0 outside the mask.
    """
    mask = mask.to(values.dtype)
    advantages = torch.zeros_like(values)
    next_value = torch.zeros_like(values[:, 0])
    next_adv = torch.zeros_like(values[:, 0])
    for t in range(values.size(1) - 1, -1, -1):
        m = mask[:, t]
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        adv = delta + gamma * lam * next_adv
        advantages[:, t] = adv * m
        # step back: keep the running values only inside the answer (beyond it they start from 0)
        next_value = values[:, t] * m
        next_adv = adv * m
    return advantages, (advantages + values) * mask


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (x * mask).sum() / mask.sum().clamp(min=1)


def whiten(x: torch.Tensor, mask: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Advantages shifted and scaled to mean 0, std 1 over the masked entries (0 outside)."""
    mean = masked_mean(x, mask)
    var = masked_mean((x - mean) ** 2, mask)
    return (x - mean) * torch.rsqrt(var + eps) * mask


# ------------------------------------------------------------------ 5. the losses

@dataclass
class PolicyLoss:
    """The clipped surrogate of one minibatch.

    loss:          scalar, masked mean of max(-ratio * A, -clip(ratio) * A) (what is minimised).
    unclipped:     scalar, masked mean of -ratio * A (equal to loss while no ratio is clipped).
    ratio:         [B, T] pi(a_t) / pi_old(a_t) (1 on the first minibatch of the first epoch).
    clip_fraction: share of answer tokens where the clipped term was the one taken.
    """

    loss: torch.Tensor
    unclipped: torch.Tensor
    ratio: torch.Tensor
    clip_fraction: float


def clipped_policy_loss(new_logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor,
                        mask: torch.Tensor, clip: float = 0.2) -> PolicyLoss:
    """PPO's clipped surrogate objective (negated, to minimise) over the answer tokens [B, T]."""
    ratio = torch.exp(new_logp - old_logp)
    unclipped = -advantages * ratio
    clipped = -advantages * ratio.clamp(1 - clip, 1 + clip)
    taken = torch.maximum(unclipped, clipped)
    clip_fraction = masked_mean((clipped > unclipped).float(), mask).item()
    return PolicyLoss(masked_mean(taken, mask), masked_mean(unclipped, mask), ratio.detach(), clip_fraction)


def clipped_value_loss(values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor,
                       mask: torch.Tensor, clip: Optional[float] = 0.2) -> torch.Tensor:
    """0.5 * masked mean of max((V - R)^2, (V_clipped - R)^2), V_clipped = V_old + clip(V - V_old, ±clip):
    the value head, like the policy, may not move far from where the batch was collected (None = no clip)."""
    loss = (values - returns) ** 2
    if clip is not None:
        clipped = old_values + (values - old_values).clamp(-clip, clip)
        loss = torch.maximum(loss, (clipped - returns) ** 2)
    return 0.5 * masked_mean(loss, mask)


class PolicyWithValue(nn.Module):
    """The policy GPT and a value head on its final-norm hidden states (shared backbone, as in TRL).

    ``forward(ids [B, T]) -> (logits [B, T, V], values [B, T])`` with values[:, t] = V(ids[:, :t]) read at
    position t - 1, lined up with the token it judges (values[:, 0] = 0).
    """

    def __init__(self, policy: GPT):
        super().__init__()
        if not isinstance(policy, GPT):
            raise TypeError(f"the policy must be a GPT, got {type(policy).__name__}")
        self.policy = policy
        self.value_head = nn.Linear(policy.config.n_embd, 1).to(policy.device)
        nn.init.zeros_(self.value_head.weight)
        nn.init.zeros_(self.value_head.bias)

    def forward(self, ids: torch.Tensor):
        out = self.policy(ids, return_hidden_states=True)
        h = self.policy.transformer.ln_f(out.hidden_states[-1][:, :-1])  # [B, T-1, C]
        values = nn.functional.pad(self.value_head(h).squeeze(-1).float(), (1, 0))  # [B, T]
        return out.logits, values


class AdaptiveKL:
    """The KL coefficient of Ziegler et al. (2019): raised when the KL per answer is above ``target``,
    lowered when below, by at most 20% of the error per ``horizon`` answers."""

    def __init__(self, init_coef: float, target: float, horizon: int = 1000):
        self.value, self.target, self.horizon = init_coef, target, horizon

    def update(self, kl: float, n: int) -> float:
        error = max(-0.2, min(0.2, kl / self.target - 1))
        self.value *= 1 + error * n / self.horizon
        return self.value


# ------------------------------------------------------------------ the trainer

@dataclass
class PPOConfig(LoopConfig):
    """How to run PPO (LoopConfig's fields, these defaults, and PPO's own)."""

    max_iters: int = 100              # PPO steps: each a rollout of batch_size prompts and its updates
    batch_size: int = 32              # prompts (answers) per rollout
    learning_rate: float = 2e-5
    min_lr: float = 2e-5
    warmup_iters: int = 0
    eval_interval: int = 10           # held-out reward and KL every N steps (when eval_prompts are given)
    kl_coef: float = 0.1              # beta of the per-token KL penalty; 0 = no leash
    adaptive_kl: bool = False         # adapt kl_coef towards target_kl (AdaptiveKL)
    target_kl: float = 6.0            # nats per answer, for adaptive_kl
    kl_horizon: int = 1000
    gamma: float = 1.0
    lam: float = 0.95
    clip: float = 0.2                 # epsilon of the clipped surrogate
    value_clip: Optional[float] = 0.2
    vf_coef: float = 0.1
    entropy_coef: float = 0.0
    ppo_epochs: int = 4
    minibatch_size: int = 8
    max_new_tokens: int = 40
    temperature: float = 1.0          # of the rollouts (1 = the policy's own distribution)
    eval_max_prompts: int = 64

    def __post_init__(self):
        super().__post_init__()
        check_number(self.kl_coef, "PPOConfig.kl_coef", 0)
        check_bool(self.adaptive_kl, "PPOConfig.adaptive_kl")
        check_number(self.target_kl, "PPOConfig.target_kl", 0, low_open=True)
        check_int(self.kl_horizon, "PPOConfig.kl_horizon", 1)
        check_number(self.gamma, "PPOConfig.gamma", 0, 1)
        check_number(self.lam, "PPOConfig.lam", 0, 1)
        check_number(self.clip, "PPOConfig.clip", 0, 1, low_open=True)
        check_number(self.value_clip, "PPOConfig.value_clip", 0, low_open=True, allow_none=True)
        check_number(self.vf_coef, "PPOConfig.vf_coef", 0)
        check_number(self.entropy_coef, "PPOConfig.entropy_coef", 0)
        check_int(self.ppo_epochs, "PPOConfig.ppo_epochs", 1)
        check_int(self.minibatch_size, "PPOConfig.minibatch_size", 1)
        check_int(self.max_new_tokens, "PPOConfig.max_new_tokens", 1)
        check_number(self.temperature, "PPOConfig.temperature", 0, low_open=True)
        check_int(self.eval_max_prompts, "PPOConfig.eval_max_prompts", 1)
        if self.minibatch_size > self.batch_size:
            raise ValueError(f"PPOConfig.minibatch_size ({self.minibatch_size}) must not exceed batch_size "
                             f"({self.batch_size}): a minibatch is a part of one rollout batch")


HISTORY = ("iter", "reward", "score", "kl", "kl_coef", "entropy", "clip_fraction", "answer_length", "finished",
           "policy_loss", "value_loss", "approx_kl", "lr", "rollout_s", "score_s", "update_s",
           "eval_iter", "eval_score", "eval_kl", "eval_length")


class PPOTrainer:
    """PPO on a chat policy.

    policy:       the GPT to train (in place).
    reference:    a frozen copy of the starting policy (``copy.deepcopy(policy)`` before training).
    reward_model: a RewardModel with the policy's tokenizer, or a function ``f(rollout) -> scores [B]``
                  (e.g. a rule, for tests and experiments).
    tokenizer:    the policy's tokenizer.
    prompts:      the training prompts (strings or message lists).
    eval_prompts: optional held-out prompts: every ``eval_interval`` steps the mean score and KL of
                  answers sampled for them with a fixed seed go into the history.
    callbacks:    ``cb(event, stats)``, event "step" or "eval".
    ``history`` (lists, one entry per step): reward (score - KL penalty), score, kl (per answer),
    kl_coef, entropy (nats per token), clip_fraction, answer_length, finished (share that ended),
    policy_loss, value_loss, approx_kl (old vs new policy), lr, rollout_s / score_s / update_s (seconds);
    per evaluation: eval_iter, eval_score, eval_kl, eval_length. ``samples``: the last batch's
    (prompt, answer, score). ``update_stats``: per minibatch of the last step (epoch, ratio_min/max,
    policy_loss, unclipped_loss, clip_fraction).
    """

    def __init__(self, policy: GPT, reference: GPT, reward_model, tokenizer, prompts: Sequence,
                 config: Optional[PPOConfig] = None, eval_prompts: Optional[Sequence] = None, callbacks=()):
        self.config = config = config or PPOConfig()
        if not isinstance(config, PPOConfig):
            raise TypeError(f"config must be a PPOConfig, got {type(config).__name__}")
        if policy is reference:
            raise ValueError("the reference must be a separate frozen copy of the starting policy "
                             "(copy.deepcopy(policy) before training), not the policy itself")
        if isinstance(reward_model, RewardModel):
            check_same_tokenizer(tokenizer, reward_model.tokenizer)
        elif not callable(reward_model):
            raise TypeError("reward_model must be a RewardModel or a function rollout -> scores [B]")
        check_trainable(policy, "policy")
        self.device = pick(config)
        self.policy, self.tokenizer = policy.to(self.device), tokenizer
        self.reference = reference.to(self.device).eval()  # frozen: only ever run under no_grad
        if isinstance(reward_model, RewardModel):
            reward_model = reward_model.to(self.device).eval()
        self.reward_model = reward_model
        self.prompts = [as_messages(p) for p in prompts]
        if not self.prompts:
            raise ValueError("no training prompts given")
        self.eval_prompts = [as_messages(p) for p in eval_prompts][:config.eval_max_prompts] if eval_prompts else None
        self.callbacks = list(callbacks)
        self.model = PolicyWithValue(policy)
        torch.manual_seed(config.seed)
        self.generator = torch.Generator().manual_seed(config.seed)  # picks prompts and minibatches
        self.sampler = torch.Generator(device=self.device).manual_seed(config.seed + 1)  # draws tokens
        self.optimizer = make_optimizer(self.model, config)
        self.kl = AdaptiveKL(config.kl_coef, config.target_kl, config.kl_horizon)
        self.history = new_history(*HISTORY)
        self.step_count = 0
        self.samples: list = []
        self.update_stats: list = []
        self.should_stop = False
        # prompts grouped by token length: a batch drawn from one group is one batched rollout
        by_len = defaultdict(list)
        for i, p in enumerate(self.prompts):
            by_len[len(prompt_ids(tokenizer, p))].append(i)
        self._groups = list(by_len.values())

    # ------------------------------------------------------------------ pieces of a step

    def draw_prompts(self) -> list:
        """batch_size prompts: as many as possible of one token length (so the rollout batches them),
        the length picked with probability proportional to its number of prompts; the rest at random."""
        B, g = self.config.batch_size, self.generator
        sizes = torch.tensor([len(x) for x in self._groups], dtype=torch.float)
        group = self._groups[int(torch.multinomial(sizes, 1, generator=g))]
        picked = [group[i] for i in torch.randperm(len(group), generator=g)[:B].tolist()]
        if len(picked) < B:
            picked += torch.randint(len(self.prompts), (B - len(picked),), generator=g).tolist()
        return [self.prompts[i] for i in picked]

    def score(self, out: Rollout) -> torch.Tensor:
        """Reward-model scores [B] (float32, on the device) of a rollout's answers."""
        if isinstance(self.reward_model, RewardModel):
            return self.reward_model.score_batch(out.batch()).to(self.device)
        scores = torch.as_tensor(self.reward_model(out), dtype=torch.float32).to(self.device)
        if scores.shape != (len(out),):
            raise ValueError(f"the reward function must return one score per answer, shape [{len(out)}], "
                             f"got {tuple(scores.shape)}")
        return scores

    @torch.no_grad()
    def evaluate(self) -> dict:
        """Mean score, KL per answer and answer length on eval_prompts (fixed seed: comparable over steps)."""
        g = torch.Generator(device=self.device).manual_seed(self.config.seed + 2)
        out = rollout(self.policy, self.tokenizer, self.eval_prompts, self.config.max_new_tokens,
                      self.config.temperature, generator=g)
        with generating(self.policy), autocast(self.config, self.device):
            logp = logprobs_from_logits(self.policy(out.ids).logits, out.ids)
            ref = logprobs_from_logits(self.reference(out.ids).logits, out.ids)
        kl = kl_per_token(logp, ref, out.mask).sum(-1)
        return {"eval_score": self.score(out).mean().item(), "eval_kl": kl.mean().item(),
                "eval_length": out.lengths.float().mean().item()}

    def step(self) -> dict:
        """One PPO step (rollout, scoring, update); returns its stats (also appended to history)."""
        cfg, dev = self.config, self.device
        lr = set_lr(self.optimizer, self.step_count, cfg)
        t0 = time.perf_counter()
        out = rollout(self.policy, self.tokenizer, self.draw_prompts(), cfg.max_new_tokens, cfg.temperature,
                      generator=self.sampler)
        t1 = _sync(dev)
        mask = out.mask
        # no_grad, not inference_mode: these tensors meet the autograd graph in the update
        with torch.no_grad(), autocast(cfg, dev):
            self.model.eval()
            logits, old_values = self.model(out.ids)
            old_logp = logprobs_from_logits(logits, out.ids) * mask
            entropy = masked_mean(entropy_from_logits(logits), mask).item()
            ref_logp = logprobs_from_logits(self.reference(out.ids).logits, out.ids) * mask
            del logits
        scores = self.score(out)
        kl = kl_per_token(old_logp, ref_logp, mask)
        coef = self.kl.value
        rewards = token_rewards(scores, kl, mask, out.last, coef)
        advantages, returns = gae(rewards, old_values * mask, mask, cfg.gamma, cfg.lam)
        advantages = whiten(advantages, mask)
        t2 = _sync(dev)
        losses = self._update(out, old_logp, old_values * mask, advantages, returns)
        t3 = _sync(dev)
        kl_answer = kl.sum(-1).mean().item()
        if cfg.adaptive_kl:
            self.kl.update(kl_answer, len(out))
        stats = {"iter": self.step_count, "reward": rewards.sum(-1).mean().item(), "score": scores.mean().item(),
                 "kl": kl_answer, "kl_coef": coef, "entropy": entropy,
                 "answer_length": out.lengths.float().mean().item(),
                 "finished": out.finished.float().mean().item(), "lr": lr,
                 "rollout_s": t1 - t0, "score_s": t2 - t1, "update_s": t3 - t2, **losses}
        for k, v in stats.items():
            self.history[k].append(v)
        self.samples = list(zip(out.prompts, out.answers, scores.tolist()))
        self.step_count += 1
        for cb in self.callbacks:
            cb("step", stats)
        return stats

    def _update(self, out: Rollout, old_logp, old_values, advantages, returns) -> dict:
        """ppo_epochs passes over the rollout in shuffled minibatches; mean losses and clip fraction."""
        cfg = self.config
        B, n = len(out), 0
        sums = defaultdict(float)
        self.update_stats = []
        self.model.eval()  # dropout off: the ratio must compare the same function at old and new weights
        for epoch in range(cfg.ppo_epochs):
            order = torch.randperm(B, generator=self.generator)
            for start in range(0, B, cfg.minibatch_size):
                rows = order[start:start + cfg.minibatch_size].to(self.device)
                T = int(out.last[rows].max()) + 1
                ids, mask = out.ids[rows, :T], out.mask[rows, :T]
                with autocast(cfg, self.device):
                    logits, values = self.model(ids)
                new_logp = logprobs_from_logits(logits, ids) * mask
                pl = clipped_policy_loss(new_logp, old_logp[rows, :T], advantages[rows, :T], mask, cfg.clip)
                vl = clipped_value_loss(values * mask, old_values[rows, :T], returns[rows, :T], mask, cfg.value_clip)
                loss = pl.loss + cfg.vf_coef * vl
                if cfg.entropy_coef:
                    loss = loss - cfg.entropy_coef * masked_mean(entropy_from_logits(logits), mask)
                clip_and_step(self.model, self.optimizer, loss, self.step_count, cfg)
                with torch.no_grad():
                    approx_kl = masked_mean(old_logp[rows, :T] - new_logp, mask).item()
                    ratios = pl.ratio[mask]
                self.update_stats.append({"epoch": epoch, "ratio_min": ratios.min().item(),
                                          "ratio_max": ratios.max().item(), "policy_loss": pl.loss.item(),
                                          "unclipped_loss": pl.unclipped.item(), "clip_fraction": pl.clip_fraction})
                sums["policy_loss"] += pl.loss.item()
                sums["value_loss"] += vl.item()
                sums["clip_fraction"] += pl.clip_fraction
                sums["approx_kl"] += approx_kl
                n += 1
        return {k: v / n for k, v in sums.items()}

    # ------------------------------------------------------------------ the loop, checkpoints

    def save_checkpoint(self):
        """Write config.out_dir/ckpt.pt atomically (policy, value head, optimizer, KL coefficient,
        history, random states); nothing without out_dir."""
        extra = {"method": METHOD, "history": self.history, "kl_coef": self.kl.value,
                 "value_head": {k: v.cpu() for k, v in self.model.value_head.state_dict().items()},
                 "sampler": self.sampler.get_state()}
        return save_state(self.config, self.policy, self.optimizer, self.step_count, self.tokenizer, extra,
                          self.generator)

    def resume(self) -> "PPOTrainer":
        """Continue from config.out_dir/ckpt.pt (the reference and reward model are the ones given)."""
        self.step_count, extra = load_state(self.config, self.policy, self.optimizer, METHOD, self.generator)
        self.model.value_head.load_state_dict(extra["value_head"])
        self.kl.value, self.history = extra["kl_coef"], extra["history"]
        self.sampler.set_state(extra["sampler"])
        return self

    def fit(self, resume: bool = False) -> dict:
        """Run PPO steps up to config.max_iters (evaluating and saving every eval_interval); returns history."""
        cfg = self.config
        if resume:
            self.resume()
        bar = progress_bar(cfg, self.step_count, f"PPO (kl_coef {cfg.kl_coef:g})")
        interrupts = ExitStack()
        ctrl_c = interrupts.enter_context(ctrl_c_between_steps())
        try:
            if self.eval_prompts and self.step_count == 0:
                self._evaluate_and_record()
            while self.step_count < cfg.max_iters and not self.should_stop:
                stats = self.step()
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(score=f"{stats['score']:.2f}", kl=f"{stats['kl']:.2f}",
                                    len=f"{stats['answer_length']:.0f}")
                if self.step_count % cfg.eval_interval == 0 or self.step_count == cfg.max_iters:
                    if self.eval_prompts:
                        self._evaluate_and_record()
                    self.save_checkpoint()
                if ctrl_c.pressed:
                    stop_after_ctrl_c(cfg, self.step_count, self.save_checkpoint)
        finally:
            interrupts.close()
            if bar is not None:
                bar.close()
        return self.history

    def _evaluate_and_record(self) -> None:
        ev = self.evaluate()
        self.history["eval_iter"].append(self.step_count)
        for k, v in ev.items():
            self.history[k].append(v)
        for cb in self.callbacks:
            cb("eval", {"iter": self.step_count, **ev})
        if not self.config.progress:
            print(f"step {self.step_count}: held-out score {ev['eval_score']:.3f}, KL {ev['eval_kl']:.2f}, "
                  f"length {ev['eval_length']:.1f}", flush=True)


def _sync(device: torch.device) -> float:
    """time.perf_counter() after the device has finished its queued work (honest split timings)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()
