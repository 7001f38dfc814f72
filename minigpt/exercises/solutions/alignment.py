"""Solutions for notebook 10 (alignment)."""

import torch
import torch.nn.functional as F


def my_bradley_terry(r_chosen, r_rejected):
    """r_chosen, r_rejected: [B] reward-model scores of each pair's answers. Returns the mean over
    the pairs of −log σ(r_chosen − r_rejected): the negative log-likelihood that people prefer the
    chosen answer. F.logsigmoid stays finite where log(sigmoid(x)) would round σ to 0."""
    return -F.logsigmoid(r_chosen - r_rejected).mean()


def my_gae(rewards, values, gamma, lam):
    """rewards, values: [T] for one answer's tokens. Returns [T] advantages:
    δ_t = r_t + γ·V_(t+1) − V_t (V after the last token is 0: the answer is over), then
    A_t = δ_t + γλ·A_(t+1), computed from the last token backwards."""
    T = len(rewards)
    advantages = torch.zeros(T)
    next_value, next_advantage = 0.0, 0.0
    for t in reversed(range(T)):
        delta = rewards[t] + gamma * next_value - values[t]
        next_advantage = delta + gamma * lam * next_advantage
        advantages[t] = next_advantage
        next_value = values[t]
    return advantages


def my_dpo_loss(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta):
    """Each argument [B]: an answer's summed log-probability under the policy or the frozen
    reference. The implicit reward of an answer is β·(log π − log π_ref); the loss is the
    Bradley–Terry loss of the two implicit rewards: mean −log σ(reward_chosen − reward_rejected)."""
    chosen = beta * (policy_chosen - ref_chosen)
    rejected = beta * (policy_rejected - ref_rejected)
    return -F.logsigmoid(chosen - rejected).mean()
