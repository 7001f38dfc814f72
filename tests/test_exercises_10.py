"""Notebook 10's checks accept the reference solutions, name the usual mistakes in one printed
line, and say 'not attempted' for an exercise left as given."""

import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from minigpt import align
from minigpt.exercises import alignment as check
from minigpt.exercises.solutions import alignment as S
from minigpt.viz.align import AlignedAnswer

from verdicts import right, skipped, wrong


def test_solutions_are_the_package(capsys):
    torch.manual_seed(0)
    c, r = torch.randn(7), torch.randn(7)
    torch.testing.assert_close(S.my_bradley_terry(c, r), align.bradley_terry_loss(c, r))
    rewards, values = torch.randn(6), torch.randn(6)
    torch.testing.assert_close(S.my_gae(rewards, values, 0.99, 0.9), check.reference_gae(rewards, values, 0.99, 0.9))
    pc, pr, rc, rr = (torch.randn(5) * 10 for _ in range(4))
    torch.testing.assert_close(S.my_dpo_loss(pc, pr, rc, rr, 0.1), align.dpo_loss(pc, pr, rc, rr, beta=0.1).loss)
    assert S.my_dpo_loss(rc, rr, rc, rr, 0.1).item() == pytest.approx(math.log(2), abs=1e-6)


def test_bradley_terry(capsys):
    right(capsys, check.bradley_terry, S.my_bradley_terry)
    skipped(capsys, check.bradley_terry, lambda c, r: None)
    wrong(capsys, check.bradley_terry, lambda c, r: -F.logsigmoid(r - c).mean(), words=("rejected",))
    wrong(capsys, check.bradley_terry, lambda c, r: F.logsigmoid(c - r).mean(), words=("sign",))
    wrong(capsys, check.bradley_terry, lambda c, r: -F.logsigmoid(c - r).sum(), words=("mean",))
    wrong(capsys, check.bradley_terry, lambda c, r: 1 - torch.sigmoid(c - r).mean(), words=("log",))
    wrong(capsys, check.bradley_terry, lambda c, r: -torch.log(torch.sigmoid(c - r)).mean(), words=("logsigmoid",))
    wrong(capsys, check.bradley_terry, lambda c, r: -F.logsigmoid(c - r), words=("scalar",))
    wrong(capsys, check.bradley_terry, lambda c, r: c.mean() - r.mean(), words=("ln 2",))
    wrong(capsys, check.bradley_terry, lambda c, r: c.foo, words=("AttributeError",))


def test_gae(capsys):
    right(capsys, check.gae, S.my_gae)
    skipped(capsys, check.gae, lambda r, v, g, l: None)

    def forward(r, v, g, l):
        nxt = torch.cat([v[1:], v.new_zeros(1)])
        delta, out, acc = r + g * nxt - v, torch.zeros(len(r)), 0.0
        for t in range(len(r)):
            acc = delta[t] + g * l * acc
            out[t] = acc
        return out
    wrong(capsys, check.gae, forward, words=("backwards",))
    wrong(capsys, check.gae, lambda r, v, g, l: r + g * torch.cat([v[1:], v.new_zeros(1)]) - v, words=("δ",))
    wrong(capsys, check.gae, lambda r, v, g, l: S.my_gae(r, v, g, l) + v, words=("returns",))
    wrong(capsys, check.gae, lambda r, v, g, l: S.my_gae(r - g * torch.cat([v[1:], v.new_zeros(1)]), v, g, l),
          words=("next token's value",))
    wrong(capsys, check.gae, lambda r, v, g, l: S.my_gae(r + g * (v.roll(-1) - torch.cat([v[1:], v.new_zeros(1)])),
                                                         v, g, l), words=("roll",))
    wrong(capsys, check.gae, lambda r, v, g, l: S.my_gae(r, v, g, l)[:-1], words=("shape",))
    wrong(capsys, check.gae, lambda r, v, g, l: torch.zeros(len(r)), words=("wrong advantages",))


def test_gae_lam_alone_is_named(capsys):
    def lam_only(r, v, g, l):
        nxt = torch.cat([v[1:], v.new_zeros(1)])
        delta, out, acc = r + g * nxt - v, torch.zeros(len(r)), 0.0
        for t in reversed(range(len(r))):
            acc = delta[t] + l * acc
            out[t] = acc
        return out
    wrong(capsys, check.gae, lam_only, words=("γ·λ",))


def test_dpo_loss(capsys):
    right(capsys, check.dpo_loss, S.my_dpo_loss)
    skipped(capsys, check.dpo_loss, lambda pc, pr, rc, rr, b: None)
    wrong(capsys, check.dpo_loss, lambda pc, pr, rc, rr, b: -F.logsigmoid(b * (pc - pr)).mean(), words=("ln 2",))
    wrong(capsys, check.dpo_loss, lambda pc, pr, rc, rr, b: S.my_dpo_loss(pr, pc, rr, rc, b), words=("swapped",))
    wrong(capsys, check.dpo_loss, lambda pc, pr, rc, rr, b: S.my_dpo_loss(pc, pr, rc, rr, 1.0), words=("β",))
    wrong(capsys, check.dpo_loss, lambda pc, pr, rc, rr, b: S.my_dpo_loss(pc, pr, rc, rr, b) * len(pc),
          words=("mean",))
    wrong(capsys, check.dpo_loss, lambda pc, pr, rc, rr, b: -torch.log(torch.sigmoid(
        b * ((pc - rc) - (pr - rr)))).mean(), words=("logsigmoid",))


def test_widget_question(capsys):
    widget = SimpleNamespace(answers=[AlignedAnswer("start", "hi", [("hi", 0.0)], 0.1),
                                      AlignedAnswer("PPO", "thank you", [("thank", 1.5), (" you", 0.7)], 2.0),
                                      AlignedAnswer("DPO", "hello", [("hello", 0.4)], 0.5)])
    right(capsys, check.most_kl, "PPO", widget)
    skipped(capsys, check.most_kl, None, widget)
    skipped(capsys, check.most_kl, "PPO", SimpleNamespace(answers=[]))
    wrong(capsys, check.most_kl, "DPO", widget, words=("further",))
    wrong(capsys, check.most_kl, "GPT-4", widget, words=("one of the names",))
