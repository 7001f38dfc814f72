"""The side-by-side measures of aligned models."""

import copy

import pytest
import torch

from align_toys import EVAL_PROMPTS, tiny_policy
from minigpt import align


def test_win_rate_counts_ties_half():
    scores, baseline = torch.tensor([1.0, 2.0, 3.0, 0.0]), torch.tensor([0.0, 2.0, 4.0, -1.0])
    assert align.win_rate(scores, baseline) == pytest.approx(0.625)
    with pytest.raises(ValueError, match="same prompts"):
        align.win_rate(torch.zeros(2), torch.zeros(3))


def test_evaluate_policy_on_the_reference_itself():
    policy, tok = tiny_policy()
    reference = copy.deepcopy(policy)
    rm = align.RewardModel.from_policy(policy, tok)
    torch.nn.init.normal_(rm.head.weight)
    a = align.evaluate_policy(policy, reference, rm, tok, EVAL_PROMPTS, name="start", max_new_tokens=6)
    b = align.evaluate_policy(reference, reference, rm, tok, EVAL_PROMPTS, name="same", max_new_tokens=6)
    assert a.answers == b.answers  # one seed: the same draws for every model
    assert torch.all(a.kl == 0) and a.mean_kl == 0
    assert a.row(b)["win_rate"] == 0.5
    assert len(a.scores) == len(EVAL_PROMPTS) and 1 <= a.length <= 6
    table = align.side_by_side([a, b])
    assert "| start |" in table and "win rate vs start" in table
    pieces = align.token_kl(policy, reference, tok, "hi", "hello")
    assert [p for p, _ in pieces][-1] == "<|end|>" and all(k == 0 for _, k in pieces)


def test_peak_memory_sees_a_large_tensor():
    with align.peak_memory("cpu") as peak:
        x = torch.ones(64, 2**20)  # 256 MB
        del x
    if peak.mb is not None:
        assert peak.mb > 200


def test_politeness_signal_and_ranking_agreement():
    assert align.politeness("Thank you, I would be happy to help.") == 4  # thank, would, happy, help
    assert align.politeness("Obviously. Duh!") == -2
    assert align.ranking_agreement([3.0, 1.0, 2.0], [1, -1, 0]) == 1.0
    assert align.ranking_agreement([1.0, 3.0, 2.0], [1, -1, 0]) == 0.0
    assert align.ranking_agreement([1.0, 1.0], [1, 0]) == 0.5
    import math
    assert math.isnan(align.ranking_agreement([1.0, 2.0], [0, 0]))
