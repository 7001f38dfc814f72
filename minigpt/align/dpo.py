"""Direct Preference Optimisation (DPO, Rafailov et al. 2023): the preferences straight into the policy.

RLHF with a KL penalty has a closed-form best policy, pi*(a|p) ∝ pi_ref(a|p) exp(r(p, a) / beta).
Read backwards, every policy defines the reward it is optimal for, up to a constant per prompt:

    r(p, a) = beta * log(pi(a|p) / pi_ref(a|p))            (the *implicit reward*)

Put that into the Bradley–Terry loss of the reward model and the constant cancels:

    loss = -log sigmoid(beta * [(log pi(a_c) - log pi_ref(a_c)) - (log pi(a_r) - log pi_ref(a_r))])

So DPO trains the policy on preference pairs like a classifier: no reward model, no sampling, two
forward passes of the policy and two of a frozen reference per pair. When policy = reference the
margin is 0 and the loss is ln 2 ≈ 0.693 (a test holds it).

Summed or averaged log-probs: the reward above sums over the answer's tokens (``average=False``,
the paper). Averaging per token (``average_logprobs=True``, as in SimPO-style variants) removes the
pull towards short or long answers that a sum has when chosen and rejected differ in length, but it
is no longer the KL-regularised objective. A known failure (peers report it): the loss can fall by
pushing *both* log-probs down, the rejected one faster; the chosen answer then becomes less likely
too and the policy drifts to text in neither answer ("likelihood displacement"). Watch the
chosen reward: if it goes clearly negative, lower the learning rate, raise beta or stop earlier.

    out = align.dpo_loss(pc, pr, rc, rr, beta=0.1)     # out.loss, out.chosen_rewards, out.margins, out.accuracy
    history = align.train_dpo(policy, reference, tok, train_pairs, dev_pairs, align.DPOConfig(beta=0.1))
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass
from typing import Optional, Sequence

import torch
from torch.nn import functional as F

from ..checks import check_bool, check_int, check_number
from ..runtime import eval_mode
from .logprobs import AnswerBatch, token_logprobs
from .loop import (LoopConfig, autocast, clip_and_step, ctrl_c_between_steps, end_of_step, load_state, make_optimizer,
                   new_history, pick, progress_bar, record_step, save_state, set_lr)
from .pairs import PreferencePair, answer_ids, check_pairs
from .reward_model import EncodedPairs, check_same_tokenizer, encode_pairs

METHOD = "dpo"


@dataclass
class DPOOutput:
    """The DPO loss of a batch of B pairs and what it is made of.

    loss:             scalar, mean of -log sigmoid(margins).
    chosen_rewards:   [B] beta * (log pi(chosen) - log pi_ref(chosen)), the implicit reward.
    rejected_rewards: [B] the same for the rejected answers.
    margins:          [B] chosen_rewards - rejected_rewards.
    accuracy:         share of pairs with a positive margin (float).
    """

    loss: torch.Tensor
    chosen_rewards: torch.Tensor
    rejected_rewards: torch.Tensor
    margins: torch.Tensor
    accuracy: float


def dpo_loss(policy_chosen: torch.Tensor, policy_rejected: torch.Tensor, ref_chosen: torch.Tensor,
             ref_rejected: torch.Tensor, beta: float = 0.1) -> DPOOutput:
    """DPO from the log-probs [B] of chosen and rejected answers under the policy and the reference
    (summed or averaged over answer tokens, prompt excluded). beta > 0: the KL strength (small beta
    lets the policy move further from the reference)."""
    check_number(beta, "beta", 0, low_open=True)
    shapes = {tuple(t.shape) for t in (policy_chosen, policy_rejected, ref_chosen, ref_rejected)}
    if len(shapes) != 1:
        raise ValueError(f"the four log-prob tensors must have one shape [B], got {sorted(shapes)}")
    chosen = beta * (policy_chosen - ref_chosen)
    rejected = beta * (policy_rejected - ref_rejected)
    margins = chosen - rejected
    return DPOOutput(-F.logsigmoid(margins).mean(), chosen.detach(), rejected.detach(), margins.detach(),
                     (margins > 0).float().mean().item())


def pair_logprobs(model, batch: AnswerBatch, average: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probs [B] of the chosen (first half of ``batch``) and rejected (second half) answers."""
    logp = token_logprobs(model, batch.ids, batch.mask).sum(-1)
    if average:
        logp = logp / batch.mask.sum(-1)
    B = len(batch) // 2
    return logp[:B], logp[B:]


# ------------------------------------------------------------------ pairs from the policy itself

@torch.no_grad()
def sample_preference_pairs(policy, reward_model, tokenizer, prompts: Sequence, samples_per_prompt: int = 4,
                            max_new_tokens: int = 40, temperature: float = 1.0, seed: int = 0,
                            min_gap: float = 0.0) -> list[PreferencePair]:
    """On-policy preference pairs: ``samples_per_prompt`` answers per prompt from the policy, scored by
    the reward model; the best becomes ``chosen``, the worst ``rejected``. Prompts whose best and worst
    answers are the same text, or score within ``min_gap``, give no pair. Returns PreferencePairs."""
    from .ppo import rollout

    check_same_tokenizer(tokenizer, reward_model.tokenizer)
    check_int(samples_per_prompt, "samples_per_prompt", 2)
    generator = torch.Generator(device=policy.device).manual_seed(seed)
    repeated = [p for p in prompts for _ in range(samples_per_prompt)]
    out = rollout(policy, tokenizer, repeated, max_new_tokens=max_new_tokens, temperature=temperature,
                  generator=generator)
    # Score the answers as text, encoded again: that is what DPO will read (sampled tokens need not be
    # the tokenizer's own encoding of their text). Empty answers cannot be scored or trained on.
    k = samples_per_prompt
    block = reward_model.backbone.config.block_size
    keep = [i for i, a in enumerate(out.answers)
            if a.strip() and int(out.prompt_lens[i]) + len(answer_ids(tokenizer, a)) <= block]
    scores = torch.full((len(repeated),), float("nan"))
    if keep:
        scores[keep] = reward_model.score([repeated[i] for i in keep], [out.answers[i] for i in keep])
    pairs = []
    for i, prompt in enumerate(prompts):
        s = scores[i * k:(i + 1) * k]
        if torch.isnan(s).sum() > k - 2:
            continue
        best = int(torch.where(torch.isnan(s), -torch.inf, s).argmax())
        worst = int(torch.where(torch.isnan(s), torch.inf, s).argmin())
        chosen, rejected = out.answers[i * k + best], out.answers[i * k + worst]
        if chosen.strip() != rejected.strip() and s[best] - s[worst] > min_gap:
            pairs.append(PreferencePair(prompt, chosen, rejected))
    return pairs


# ------------------------------------------------------------------ training

@dataclass
class DPOConfig(LoopConfig):
    """How to train with DPO (LoopConfig's fields, these defaults, and DPO's own)."""

    max_iters: int = 200
    batch_size: int = 16
    learning_rate: float = 1e-4
    min_lr: float = 1e-5
    warmup_iters: int = 10
    eval_interval: int = 50
    beta: float = 0.1                 # strength of the implicit KL: larger keeps the policy nearer the reference
    average_logprobs: bool = False    # mean instead of sum over answer tokens (see the module's notes)

    def __post_init__(self):
        super().__post_init__()
        check_number(self.beta, "DPOConfig.beta", 0, low_open=True)
        check_bool(self.average_logprobs, "DPOConfig.average_logprobs")


@torch.no_grad()
def evaluate_dpo(policy, reference, pairs: EncodedPairs, config: DPOConfig, batch_size: int = 32) -> dict:
    """Mean DPO loss, margin, accuracy and implicit rewards over every pair of ``pairs``."""
    totals = {"loss": 0.0, "margin": 0.0, "accuracy": 0.0, "chosen_reward": 0.0, "rejected_reward": 0.0}
    with eval_mode(policy):
        for i in range(0, len(pairs), batch_size):
            index = list(range(i, min(i + batch_size, len(pairs))))
            batch = pairs.batch(index).to(policy.device)
            out = dpo_loss(*pair_logprobs(policy, batch, config.average_logprobs),
                           *pair_logprobs(reference, batch, config.average_logprobs), beta=config.beta)
            n = len(index)
            totals["loss"] += out.loss.item() * n
            totals["margin"] += out.margins.sum().item()
            totals["accuracy"] += out.accuracy * n
            totals["chosen_reward"] += out.chosen_rewards.sum().item()
            totals["rejected_reward"] += out.rejected_rewards.sum().item()
    return {k: v / len(pairs) for k, v in totals.items()}


def train_dpo(policy, reference, tokenizer, train_pairs, dev_pairs=None, config: Optional[DPOConfig] = None,
              resume: bool = False, callbacks=()) -> dict:
    """Train ``policy`` (a GPT, in place) with DPO on preference pairs; ``reference`` (the starting
    policy, a separate copy) stays frozen.

    train_pairs, dev_pairs: PreferencePairs (the given data, or ``sample_preference_pairs``).
    resume:    go on from ``config.out_dir/ckpt.pt``.
    callbacks: ``cb(event, stats)``, event "step" or "eval".
    Returns the history: iter, loss, margin, accuracy, chosen_reward, rejected_reward, lr, grad_norm (per
    step); eval_iter, dev_loss, dev_margin, dev_accuracy, dev_chosen_reward, dev_rejected_reward.
    """
    config = config or DPOConfig()
    if policy is reference:
        raise ValueError("the reference must be a separate frozen copy of the starting policy "
                         "(copy.deepcopy(policy) before training), not the policy itself")
    device = pick(config)
    policy.to(device)
    reference.to(device).eval()  # frozen: only ever run under no_grad (its flags are left alone)
    block = policy.config.block_size
    train = encode_pairs(tokenizer, check_pairs(train_pairs, "train_pairs"), block)
    dev = encode_pairs(tokenizer, check_pairs(dev_pairs, "dev_pairs"), block) if dev_pairs is not None else None
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    optimizer = make_optimizer(policy, config)
    history = new_history("iter", "loss", "margin", "accuracy", "chosen_reward", "rejected_reward", "lr",
                          "grad_norm", "eval_iter", "dev_loss", "dev_margin", "dev_accuracy", "dev_chosen_reward",
                          "dev_rejected_reward")
    step = 0
    if resume:
        step, extra = load_state(config, policy, optimizer, METHOD, generator)
        history = extra["history"]

    def evaluate():
        ev = evaluate_dpo(policy, reference, dev, config)
        history["eval_iter"].append(step)
        for k, v in ev.items():
            history[f"dev_{k}"].append(v)
        for cb in callbacks:
            cb("eval", {"iter": step, **{f"dev_{k}": v for k, v in ev.items()}})
        if not config.progress:
            print(f"step {step}: dev loss {ev['loss']:.4f}, margin {ev['margin']:.3f}, "
                  f"accuracy {ev['accuracy']:.3f}", flush=True)

    def save():
        save_state(config, policy, optimizer, step, tokenizer, {"method": METHOD, "history": history}, generator)

    bar = progress_bar(config, step, "DPO")
    policy.eval()  # dropout off: log-probs of policy and reference must be comparable
    interrupts = ExitStack()
    ctrl_c = interrupts.enter_context(ctrl_c_between_steps())
    try:
        if dev is not None and step == 0:
            evaluate()
        while step < config.max_iters:
            lr = set_lr(optimizer, step, config)
            index = torch.randint(len(train), (config.batch_size,), generator=generator).tolist()
            batch = train.batch(index).to(device)
            with autocast(config, device):
                with torch.no_grad():
                    ref = pair_logprobs(reference, batch, config.average_logprobs)
                out = dpo_loss(*pair_logprobs(policy, batch, config.average_logprobs), *ref, beta=config.beta)
            norm = clip_and_step(policy, optimizer, out.loss, step, config)
            stats = {"iter": step, "loss": out.loss.item(), "margin": out.margins.mean().item(),
                     "accuracy": out.accuracy, "chosen_reward": out.chosen_rewards.mean().item(),
                     "rejected_reward": out.rejected_rewards.mean().item(), "lr": lr, "grad_norm": norm}
            record_step(stats, history, callbacks, bar, loss=f"{stats['loss']:.3f}", margin=f"{stats['margin']:.2f}")
            step += 1
            end_of_step(config, step, dev, evaluate, save, ctrl_c)
    finally:
        interrupts.close()
        if bar is not None:
            bar.close()
    return history
