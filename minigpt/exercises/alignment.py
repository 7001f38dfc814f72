"""Checks for notebook 10 (alignment): write the Bradley–Terry loss of a reward model, generalized
advantage estimation (GAE) for one answer, and the DPO loss; and a question answered with the
widget that compares the aligned models.

Every check compares the learner's function with the package's (``minigpt.align``) on inputs
chosen to expose the usual mistakes, and names the mistake it finds.
"""

from __future__ import annotations

import math

import torch

from . import Hint, NotAttempted, exercise, not_attempted
from .. import align

LN2 = math.log(2.0)


def _scalar(out, name: str) -> torch.Tensor:
    if out is None:
        raise not_attempted(name, "alignment")
    out = torch.as_tensor(out, dtype=torch.float64) if not torch.is_tensor(out) else out.double()
    if out.numel() != 1:
        raise Hint(f"{name} must return one number (a scalar: the mean over the pairs), got a tensor of shape "
                   f"{list(out.shape)}")
    return out.reshape(())


def _close(a, b, tol: float = 1e-5) -> bool:
    a, b = torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64)
    return a.shape == b.shape and bool(torch.isfinite(a).all()) and bool(torch.allclose(a, b, atol=tol, rtol=1e-4))


# --------------------------------------------------------------------------- Bradley–Terry

# five pairs' scores, margins of both signs, and two that a careless log(sigmoid(...)) cannot take
R_CHOSEN = torch.tensor([1.5, 0.2, -0.7, 2.0, 0.0])
R_REJECTED = torch.tensor([0.5, 0.9, -1.2, -1.0, 0.0])
FAR_CHOSEN, FAR_REJECTED = torch.tensor([-60.0, 3.0]), torch.tensor([60.0, -3.0])


@exercise
def bradley_terry(fn):
    """Check ``fn(r_chosen [B], r_rejected [B]) -> scalar``: mean of −log σ(r_chosen − r_rejected)."""
    c, r = R_CHOSEN.clone(), R_REJECTED.clone()
    got = _scalar(fn(c.clone(), r.clone()), "my_bradley_terry")
    want = align.bradley_terry_loss(c, r)
    if not _close(got, want):
        if _close(got, align.bradley_terry_loss(r, c)):
            raise Hint("your loss falls when the *rejected* answer scores higher: the margin is r_chosen − r_rejected")
        if _close(got, -want):
            raise Hint("the sign: log σ(margin) is ≤ 0, and the loss is its negative, −log σ(r_chosen − r_rejected)")
        if _close(got, want * len(c)):
            raise Hint("take the mean over the pairs, not the sum, so the loss does not grow with the batch size")
        if _close(got, (1 - torch.sigmoid(c - r)).mean()) or _close(got, -torch.sigmoid(c - r).mean()):
            raise Hint("the loss is the negative log-likelihood of the preference, −log σ(margin), not σ itself")
        equal = _scalar(fn(torch.zeros(3), torch.zeros(3)), "my_bradley_terry")
        if not _close(equal, LN2):
            raise Hint(f"with equal scores P(chosen preferred) = σ(0) = 1/2, so the loss must be ln 2 = {LN2:.4f}; "
                       f"yours gives {float(equal):.4f}")
        raise Hint(f"on the test pairs your loss is {float(got):.4f}, the Bradley–Terry loss is {float(want):.4f} "
                   f"(hint: −log σ(r_chosen − r_rejected), averaged over the pairs)")
    far = fn(FAR_CHOSEN.clone(), FAR_REJECTED.clone())
    far = _scalar(far, "my_bradley_terry")
    if not torch.isfinite(far):
        raise Hint("right on ordinary scores, but a pair ranked wrong by a margin of 120 gives "
                   f"{float(far)}: σ(−120) rounds to 0 and log 0 = −inf. Use F.logsigmoid, which never forms σ")
    if not _close(far, align.bradley_terry_loss(FAR_CHOSEN, FAR_REJECTED), tol=1e-3):
        raise Hint("right on ordinary scores, wrong on a large margin (120): compute it as −F.logsigmoid(margin)")
    return (f"loss {float(want):.4f} on the five pairs (ln 2 = {LN2:.4f} when the scores are equal), and finite "
            f"when a pair is ranked wrong by a margin of 120")


# --------------------------------------------------------------------------- GAE

GAE_REWARDS = torch.tensor([-0.02, 0.05, -0.01, -0.03, 1.2])   # −β·KL per token, the score added at the end
GAE_VALUES = torch.tensor([0.4, 0.5, 0.3, 0.6, 0.9])


def reference_gae(rewards, values, gamma: float, lam: float) -> torch.Tensor:
    """The package's GAE for one answer (every token an answer token): [T] advantages."""
    mask = torch.ones(1, len(rewards), dtype=torch.bool)
    advantages, _ = align.gae(rewards[None].float(), values[None].float(), mask, gamma=gamma, lam=lam)
    return advantages[0]


def _gae_variants(r, v, gamma, lam):
    """What the usual mistakes compute, to name them."""
    T = len(r)
    nxt = torch.cat([v[1:], v.new_zeros(1)])
    delta = r + gamma * nxt - v
    out = {"delta_only": delta, "no_bootstrap": None, "forward": None, "wrap": None, "lam_only": None}
    for name, d, factor in (("no_bootstrap", r - v, gamma * lam), ("wrap", r + gamma * v.roll(-1) - v, gamma * lam),
                            ("lam_only", delta, lam)):
        a, acc = torch.zeros(T), 0.0
        for t in reversed(range(T)):
            acc = d[t] + factor * acc
            a[t] = acc
        out[name] = a
    a, acc = torch.zeros(T), 0.0
    for t in range(T):
        acc = delta[t] + gamma * lam * acc
        a[t] = acc
    out["forward"] = a
    return out


@exercise
def gae(fn):
    """Check ``fn(rewards [T], values [T], gamma, lam) -> advantages [T]`` for one answer."""
    for gamma, lam in ((1.0, 0.95), (0.9, 0.8), (1.0, 1.0), (1.0, 0.0)):
        r, v = GAE_REWARDS.clone(), GAE_VALUES.clone()
        got = fn(r.clone(), v.clone(), gamma, lam)
        if got is None:
            raise not_attempted("my_gae", "alignment")
        got = torch.as_tensor(got, dtype=torch.float64).reshape(-1) if not torch.is_tensor(got) else got.double()
        want = reference_gae(r, v, gamma, lam)
        if got.shape != want.shape:
            raise Hint(f"return one advantage per token: shape [{len(r)}], got {list(got.shape)}")
        if _close(got, want, 1e-4):
            continue
        wrong = _gae_variants(r.double(), v.double(), gamma, lam)
        at = f" (γ = {gamma}, λ = {lam})"
        if _close(got, want + v, 1e-4):
            raise Hint("you returned the returns A + V; the advantages are the returns minus the values")
        if _close(got, wrong["forward"], 1e-4):
            raise Hint("the recursion runs backwards, from the last token: A_t = δ_t + γλ·A_(t+1)" + at)
        if _close(got, wrong["delta_only"], 1e-4):
            raise Hint("these are the one-step errors δ_t; GAE adds γλ·A_(t+1) to each, from the end backwards" + at)
        if _close(got, wrong["no_bootstrap"], 1e-4):
            raise Hint("δ_t = r_t + γ·V_(t+1) − V_t: the next token's value is missing" + at)
        if _close(got, wrong["wrap"], 1e-4):
            raise Hint("after the last token the answer is over: its next value is 0 (torch.roll wraps around "
                       "to the first token's value)" + at)
        if _close(got, wrong["lam_only"], 1e-4):
            raise Hint("the factor of A_(t+1) is γ·λ, not λ alone" + at)
        raise Hint(f"wrong advantages{at}: got {[round(x, 3) for x in got.tolist()]}, want "
                   f"{[round(x, 3) for x in want.tolist()]} (hint: δ_t = r_t + γ·V_(t+1) − V_t with V_(T) = 0, "
                   f"then A_t = δ_t + γλ·A_(t+1) from the end)")
    a = reference_gae(GAE_REWARDS, GAE_VALUES, 1.0, 0.95)
    return (f"advantages {[round(x, 3) for x in a.tolist()]} for γ = 1, λ = 0.95, and right for λ = 0 (one-step "
            f"errors) and λ = 1 (returns minus values) too")


# --------------------------------------------------------------------------- DPO

POLICY_CHOSEN = torch.tensor([-12.0, -30.5, -8.2, -20.0])
POLICY_REJECTED = torch.tensor([-15.0, -28.0, -9.0, -26.0])
REF_CHOSEN = torch.tensor([-13.0, -31.0, -8.0, -21.0])
REF_REJECTED = torch.tensor([-14.0, -29.5, -9.5, -24.0])


@exercise
def dpo_loss(fn):
    """Check ``fn(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta) -> scalar``
    (each [B]: summed log-probs of the answers)."""
    args = (POLICY_CHOSEN, POLICY_REJECTED, REF_CHOSEN, REF_REJECTED)
    beta = 0.5
    out = fn(*(a.clone() for a in args), beta)
    got = _scalar(out, "my_dpo_loss")
    want = align.dpo_loss(*args, beta=beta).loss
    if not _close(got, want):
        same = _scalar(fn(REF_CHOSEN.clone(), REF_REJECTED.clone(), REF_CHOSEN.clone(), REF_REJECTED.clone(), beta),
                       "my_dpo_loss")
        pc, pr, rc, rr = args
        if _close(same, LN2 * len(rc)):
            raise Hint("take the mean over the pairs, not the sum")
        if not _close(same, LN2):
            raise Hint(f"when the policy equals the reference every implicit reward is 0 and the loss must be "
                       f"ln 2 = {LN2:.4f}; yours gives {float(same):.4f} (hint: subtract the reference's log-probs)")
        if _close(got, align.dpo_loss(pr, pc, rr, rc, beta=beta).loss):
            raise Hint("chosen and rejected are swapped: the loss must fall as the chosen answer gains on the rejected")
        if _close(got, align.dpo_loss(*args, beta=1.0).loss):
            raise Hint("β is missing: the implicit reward is β·(log π − log π_ref)")
        if _close(got, align.dpo_loss(rc, rr, pc, pr, beta=beta).loss):
            raise Hint("policy and reference are swapped: the reward is β·(log π − log π_ref), the policy's first")
        if _close(got, -align.dpo_loss(*args, beta=beta).loss):
            raise Hint("the sign: the loss is −log σ(margin), a positive number")
        raise Hint(f"your loss is {float(got):.4f}, DPO's is {float(want):.4f} (hint: margin = β·((log π(c) − "
                   f"log π_ref(c)) − (log π(r) − log π_ref(r))), loss = mean of −log σ(margin))")
    far = _scalar(fn(torch.tensor([-300.0]), torch.tensor([-10.0]), torch.tensor([-10.0]), torch.tensor([-300.0]),
                     1.0), "my_dpo_loss")
    if not torch.isfinite(far):
        raise Hint("right on ordinary log-probs, but infinite when a pair is far from right (a margin of −580): "
                   "log(sigmoid(x)) underflows; use F.logsigmoid")
    return f"loss {float(want):.4f} on the four pairs (β = {beta}), and ln 2 when the policy is the reference"


# --------------------------------------------------------------------------- the widget question


@exercise
def most_kl(answer, widget):
    """``answer``: the name of the model whose answer in ``widget`` (a CompareAligned) has the
    largest KL to the reference."""
    if answer is None:
        raise not_attempted("answer", "alignment")
    answers = getattr(widget, "answers", None)
    if not answers:
        raise NotAttempted("not answered yet: the widget shows no answers; type a prompt, press 'ask all', then answer")
    names = [a.name for a in answers]
    if str(answer).strip() not in names:
        raise Hint(f"answer with one of the names in the widget: {names}")
    best = max(answers, key=lambda a: a.kl)
    picked = next(a for a in answers if a.name == str(answer).strip())
    if picked is not best:
        raise Hint(f"{picked.name}'s answer has KL {picked.kl:+.2f} nats; another is further from the reference "
                   f"(the KL is written beside each name)")
    return (f"{best.name}: {best.kl:+.2f} nats from the reference over {len(best.tokens)} tokens. Its reddest tokens "
            f"are where it moved most; is its reward-model score the highest too?")
