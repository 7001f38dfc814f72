"""The RLHF scene: its numbers are those of a real PPO run of ``minigpt.align`` (the score on screen
is the reward model's for the tokens shown, the KL and advantages the package's).
Its render is tested with every other scene in test_animations.py."""

import importlib
import importlib.util
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from minigpt import align

REPO = Path(__file__).resolve().parent.parent
ANIMATIONS = REPO / "animations"


@pytest.fixture(scope="module")
def numbers():
    sys.path.insert(0, str(ANIMATIONS))  # what manim does for the scene it renders
    try:
        return importlib.import_module("numbers_align")
    finally:
        sys.path.remove(str(ANIMATIONS))


def test_numbers_on_screen_are_the_runs(numbers):
    d = numbers.rlhf_numbers(steps=3, batch_size=4)
    trainer = numbers._trained(3, 4, 9, 0)
    policy, reference, rm = trainer.policy, trainer.reference, trainer.reward_model
    tok = trainer.tokenizer
    assert len(d["history"]["iter"]) == 3 and d["history"]["score"] == trainer.history["score"]
    prompt = align.prompt_ids(tok, d["prompt"])
    # the same answer again (the same seed), and "score +x.xx" on screen: the reward model at the answer's last token
    out = align.rollout(policy, tok, [d["prompt"]], max_new_tokens=9, generator=torch.Generator().manual_seed(0))
    assert [tok.token_str(i) for i in out.ids[0, out.mask[0]].tolist()] == d["tokens"]
    with torch.no_grad():
        score = float(rm(out.ids, out.last)[0])
        P = len(prompt)
        lp = F.log_softmax(policy(out.ids).logits[0], -1)
        lq = F.log_softmax(reference(out.ids).logits[0], -1)
    assert f"{score:+.2f}" == f"{d['score']:+.2f}"
    ids = out.ids[0].tolist()
    kl = [float(lp[t - 1, ids[t]] - lq[t - 1, ids[t]]) for t in range(P, P + len(d["tokens"]))]
    assert d["kl"] == pytest.approx(kl, abs=1e-4)
    assert d["policy_logp"] == pytest.approx([float(lp[t - 1, ids[t]]) for t in range(P, P + len(d["tokens"]))],
                                             abs=1e-4)
    # the rewards on screen: -beta * KL per token, plus the score at the last one
    want = [-d["kl_coef"] * k for k in kl]
    want[-1] += score
    assert d["rewards"] == pytest.approx(want, abs=1e-4)
    # GAE with V after the last token = 0, from the end backwards
    adv, nv, na = [], 0.0, 0.0
    for r, v in reversed(list(zip(d["rewards"], d["values"]))):
        na = r + d["gamma"] * nv - v + d["gamma"] * d["lam"] * na
        adv.insert(0, na)
        nv = v
    assert d["advantages"] == pytest.approx(adv, abs=1e-4)
    assert d["ratio"] == pytest.approx([a / b for a, b in zip(d["prob_after"], d["prob_before"])], rel=1e-4)
    # the run did not touch the shipped model the scene's footnote names
    start, _, _ = numbers.models()
    assert any(not torch.equal(a, b) for a, b in zip(start.parameters(), policy.parameters()))
