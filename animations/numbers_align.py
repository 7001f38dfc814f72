"""Numbers for the RLHF scene, from a real PPO run of ``minigpt.align``: the shipped chat model
``dailydialog-chat`` as the policy (and, frozen, as the reference) and the shipped reward model
``dailydialog-reward``.

``rlhf_numbers`` runs a short PPO (a few seconds on a CPU), then follows one answer of the
trained policy through the loop: its tokens, their KL to the reference, the reward-model score,
the per-token rewards, the value head's values, the GAE advantages, and what one step on the
clipped objective does to each token's probability. Like the other numbers files it checks what
it computes by hand against the package (GAE, the rewards, the ratio) and raises RuntimeError if
they differ, and it returns plain JSON-ready dicts and lists.
"""

from __future__ import annotations

import copy
import functools

import torch

import minigpt as mg
from minigpt import align

POLICY = "dailydialog-chat"
REWARD_MODEL = "dailydialog-reward"
PROMPT = "Could you help me move to my new flat this weekend?"


@functools.lru_cache(maxsize=1)
def models():
    """(policy, tokenizer, reward model), loaded once on the CPU."""
    policy, tok = mg.pretrained.load(POLICY, device="cpu")
    return policy, tok, align.RewardModel.load(REWARD_MODEL, device="cpu")


def provenance() -> str:
    """A footnote: where the numbers come from."""
    return f"numbers: PPO of minigpt.align, {POLICY} + {REWARD_MODEL}"


def _close(a, b, what: str, atol: float = 1e-4):
    if not torch.allclose(torch.as_tensor(a, dtype=torch.float32), torch.as_tensor(b, dtype=torch.float32),
                          atol=atol, rtol=1e-4):
        raise RuntimeError(f"{what}: the hand computation and minigpt disagree")


@functools.lru_cache(maxsize=4)
def _trained(steps: int, batch_size: int, max_new_tokens: int, seed: int):
    policy, tok, rm = models()
    policy = copy.deepcopy(policy)
    reference = copy.deepcopy(policy)
    prompts = align.dialogue_prompts("train", n=400, tokenizer=tok, max_prompt_tokens=40)
    config = align.PPOConfig(max_iters=steps, batch_size=batch_size, minibatch_size=batch_size // 2,
                             max_new_tokens=max_new_tokens, learning_rate=5e-5, min_lr=5e-5, kl_coef=0.1,
                             device="cpu", seed=seed, progress=False)
    trainer = align.PPOTrainer(policy, reference, rm, tok, prompts, config)
    trainer.fit()
    return trainer


def rlhf_numbers(prompt: str = PROMPT, steps: int = 20, batch_size: int = 8, max_new_tokens: int = 9,
                 seed: int = 0) -> dict:
    """A short PPO run, then one answer of the trained policy to ``prompt`` through the whole loop.

    Returns {"prompt", "tokens" (the answer's tokens, the end token included when written),
    "policy_logp", "ref_logp", "kl" (per token, log π − log π_ref), "kl_coef", "score",
    "rewards" (per token: −β·KL, plus the score at the last), "values", "advantages", "gamma",
    "lam", "clip", "prob_before", "prob_after" (each token's probability before and after one
    step on the clipped objective of this answer), "ratio" (after / before), "batch_size",
    "history": {"iter", "score", "kl"} (the run's mean score and KL per answer at every step)}.
    """
    trainer = _trained(steps, batch_size, max_new_tokens, seed)
    cfg, tok = trainer.config, trainer.tokenizer
    generator = torch.Generator().manual_seed(seed)
    out = align.rollout(trainer.policy, tok, [prompt], max_new_tokens=max_new_tokens, generator=generator)
    ids, mask, last = out.ids, out.mask, out.last
    with torch.no_grad():
        logits, values = trainer.model(ids)
        logp = align.logprobs_from_logits(logits, ids) * mask
        ref_logp = align.token_logprobs(trainer.reference, ids, mask)
        score = trainer.score(out)
    kl = align.kl_per_token(logp, ref_logp, mask)
    coef = trainer.kl.value
    rewards = align.token_rewards(score, kl, mask, last, coef)
    advantages, _ = align.gae(rewards, values * mask, mask, cfg.gamma, cfg.lam)
    m = mask[0]
    r, v, a = rewards[0, m], values[0, m], advantages[0, m]
    # by hand: the reward of each token and GAE from the last token backwards
    by_hand_r = -coef * kl[0, m]
    by_hand_r[-1] += score[0]
    _close(r, by_hand_r, "per-token rewards")
    adv, next_value, next_adv = torch.zeros_like(r), 0.0, 0.0
    for t in reversed(range(len(r))):
        delta = r[t] + cfg.gamma * next_value - v[t]
        next_adv = delta + cfg.gamma * cfg.lam * next_adv
        adv[t], next_value = next_adv, v[t]
    _close(a, adv, "GAE")

    # one step on the clipped objective of this one answer (a copy: the run is left as it was)
    policy = copy.deepcopy(trainer.policy)
    optimizer = torch.optim.Adam(policy.parameters(), lr=3e-5)
    new_logp = align.token_logprobs(policy, ids, mask)
    loss = align.clipped_policy_loss(new_logp, logp, advantages, mask, cfg.clip)
    _close(loss.loss, loss.unclipped, "the first step's clipped and unclipped objectives")
    optimizer.zero_grad()
    loss.loss.backward()
    optimizer.step()
    with torch.no_grad():
        after = align.token_logprobs(policy, ids, mask)
    before_p, after_p = logp[0, m].exp(), after[0, m].exp()
    tokens = [tok.token_str(i) for i in ids[0, m].tolist()]
    h = trainer.history
    return {
        "prompt": prompt, "tokens": tokens, "policy_logp": logp[0, m].tolist(), "ref_logp": ref_logp[0, m].tolist(),
        "kl": kl[0, m].tolist(), "kl_coef": coef, "score": float(score[0]), "rewards": r.tolist(),
        "values": v.tolist(), "advantages": a.tolist(), "gamma": cfg.gamma, "lam": cfg.lam, "clip": cfg.clip,
        "prob_before": before_p.tolist(), "prob_after": after_p.tolist(), "ratio": (after_p / before_p).tolist(),
        "batch_size": cfg.batch_size,
        "history": {"iter": list(h["iter"]), "score": list(h["score"]), "kl": list(h["kl"])},
    }
