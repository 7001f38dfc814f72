"""The alignment losses against hand formulas, and the quantities they are made of."""

import copy
import math

import pytest
import torch
from torch.nn import functional as F

from align_toys import byte_chat_tokenizer, tiny_llama_policy, tiny_policy
from minigpt import align


def test_bradley_terry_matches_hand_formula():
    rc, rr = torch.tensor([2.0, -1.0, 0.5]), torch.tensor([1.0, 0.0, 0.5])
    by_hand = sum(-math.log(1 / (1 + math.exp(-(c - r)))) for c, r in zip(rc.tolist(), rr.tolist())) / 3
    assert align.bradley_terry_loss(rc, rr).item() == pytest.approx(by_hand)
    assert align.bradley_terry_loss(rc, rc).item() == pytest.approx(math.log(2))


def test_dpo_loss_matches_hand_formula():
    pc, pr = torch.tensor([-10.0, -4.0]), torch.tensor([-12.0, -3.0])
    rc, rr = torch.tensor([-11.0, -5.0]), torch.tensor([-11.0, -2.0])
    beta = 0.5
    out = align.dpo_loss(pc, pr, rc, rr, beta=beta)
    margins = [beta * ((a - b) - (c - d)) for a, b, c, d in zip(pc.tolist(), rc.tolist(), pr.tolist(), rr.tolist())]
    by_hand = sum(math.log(1 + math.exp(-m)) for m in margins) / 2
    assert out.loss.item() == pytest.approx(by_hand)
    assert out.chosen_rewards.tolist() == pytest.approx([beta * 1.0, beta * 1.0])
    assert out.rejected_rewards.tolist() == pytest.approx([beta * -1.0, beta * -1.0])
    assert out.margins.tolist() == pytest.approx(margins)
    assert out.accuracy == 1.0


def test_dpo_loss_is_ln2_when_policy_equals_reference():
    policy, tok = tiny_policy()
    reference = copy.deepcopy(policy)
    pairs = [align.PreferencePair("hi", "thanks a lot", "go away"), align.PreferencePair("ok", "yes please", "no")]
    enc = align.encode_pairs(tok, pairs, policy.config.block_size)
    for average in (False, True):
        ev = align.evaluate_dpo(policy, reference, enc, align.DPOConfig(beta=0.3, average_logprobs=average))
        assert ev["loss"] == pytest.approx(math.log(2), abs=1e-6)
        assert ev["margin"] == pytest.approx(0.0, abs=1e-6)


def test_dpo_loss_checks_its_arguments():
    x = torch.zeros(2)
    with pytest.raises(ValueError, match="beta"):
        align.dpo_loss(x, x, x, x, beta=0)
    with pytest.raises(ValueError, match="shape"):
        align.dpo_loss(x, x, x, torch.zeros(3))


def test_gae_matches_hand_computed_example():
    # row 0: two prompt tokens, three answer tokens, one pad; row 1: one-token answer
    mask = torch.tensor([[0, 0, 1, 1, 1, 0], [0, 1, 0, 0, 0, 0]], dtype=torch.bool)
    rewards = torch.tensor([[0, 0, 0.0, 0.0, 1.0, 0], [0, 2.0, 0, 0, 0, 0]])
    values = torch.tensor([[0, 0, 0.5, 0.2, 0.1, 0], [0, 0.5, 0, 0, 0, 0]])
    adv, ret = align.gae(rewards, values, mask, gamma=1.0, lam=0.9)
    # by hand: d4 = 1 - 0.1 = 0.9; d3 = 0 + 0.1 - 0.2 = -0.1; d2 = 0 + 0.2 - 0.5 = -0.3
    # A4 = 0.9; A3 = -0.1 + 0.9 * 0.9 = 0.71; A2 = -0.3 + 0.9 * 0.71 = 0.339
    torch.testing.assert_close(adv[0], torch.tensor([0, 0, 0.339, 0.71, 0.9, 0]))
    torch.testing.assert_close(adv[1], torch.tensor([0, 1.5, 0, 0, 0, 0]))
    torch.testing.assert_close(ret[0], torch.tensor([0, 0, 0.839, 0.91, 1.0, 0]))
    # gamma discounts the next value, lam = 0 is one-step TD
    adv, _ = align.gae(rewards, values, mask, gamma=0.5, lam=0.0)
    torch.testing.assert_close(adv[0, 2:5], torch.tensor([0.5 * 0.2 - 0.5, 0.5 * 0.1 - 0.2, 0.9]))


def test_clipped_policy_loss_equals_unclipped_at_ratio_one_and_clips_beyond():
    logp = torch.log(torch.tensor([[0.5, 0.2, 0.1]]))
    mask = torch.ones(1, 3, dtype=torch.bool)
    adv = torch.tensor([[1.0, -1.0, 2.0]])
    out = align.clipped_policy_loss(logp, logp, adv, mask, clip=0.2)
    assert torch.all(out.ratio == 1)
    assert out.loss.item() == pytest.approx(out.unclipped.item()) == pytest.approx(-adv.mean().item())
    assert out.clip_fraction == 0
    # the new policy doubled the first token's probability: a positive advantage is clipped at 1.2
    new = logp + torch.log(torch.tensor([[2.0, 1.0, 1.0]]))
    out = align.clipped_policy_loss(new, logp, adv, mask, clip=0.2)
    assert out.loss.item() == pytest.approx((-1.2 * 1 + 1 - 2) / 3)
    assert out.unclipped.item() == pytest.approx((-2 * 1 + 1 - 2) / 3)
    assert out.clip_fraction == pytest.approx(1 / 3)


def test_clipped_value_loss_by_hand():
    mask = torch.ones(1, 2, dtype=torch.bool)
    values, old, returns = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 0.0]]), torch.tensor([[2.0, 1.0]])
    # token 0: unclipped (1 - 2)^2 = 1, clipped (0.2 - 2)^2 = 3.24 -> 3.24; token 1: 1 and 1
    assert align.clipped_value_loss(values, old, returns, mask, 0.2).item() == pytest.approx(0.5 * (3.24 + 1) / 2)
    assert align.clipped_value_loss(values, old, returns, mask, None).item() == pytest.approx(0.5 * (1 + 1) / 2)


@pytest.mark.parametrize("make", [tiny_policy, tiny_llama_policy])
def test_kl_penalty_is_zero_when_policy_equals_reference(make):
    policy, tok = make()
    reference = copy.deepcopy(policy)
    batch = align.batch_answers(tok, ["hi", "how are you"], ["hello there", "fine"])
    with torch.no_grad():
        kl = align.kl_per_token(align.token_logprobs(policy, batch.ids), align.token_logprobs(reference, batch.ids),
                                batch.mask)
    assert torch.all(kl == 0)
    rewards = align.token_rewards(torch.tensor([1.0, -2.0]), kl, batch.mask, batch.last, kl_coef=0.5)
    assert rewards.sum(-1).tolist() == [1.0, -2.0]  # only the scores, at the last answer token
    assert rewards[0, batch.last[0]] == 1.0


def test_masks_cover_only_answer_tokens():
    tok = byte_chat_tokenizer()
    prompts, answers = ["hi", "a longer question"], ["ok", "a reply"]
    batch = align.batch_answers(tok, prompts, answers)
    for b, (p, a) in enumerate(zip(prompts, answers)):
        p_ids, a_ids = align.prompt_ids(tok, p), align.answer_ids(tok, a)
        assert batch.ids[b][batch.mask[b]].tolist() == a_ids  # the answer and its end token, nothing else
        assert batch.mask[b].nonzero().squeeze(-1).tolist() == list(range(len(p_ids), len(p_ids) + len(a_ids)))
        assert batch.last[b] == len(p_ids) + len(a_ids) - 1
        assert batch.ids[b, :len(p_ids)].tolist() == p_ids
    assert a_ids[-1] == tok.special_tokens["<|end|>"]


def test_logprobs_are_those_of_each_sequence_alone():
    policy, tok = tiny_policy()
    prompts, answers = ["hi", "a longer question"], ["ok", "a reply that is longer"]
    batch = align.batch_answers(tok, prompts, answers)
    with torch.no_grad():
        together = align.sequence_logprobs(policy, batch)
        averaged = align.sequence_logprobs(policy, batch, average=True)
        for b, (p, a) in enumerate(zip(prompts, answers)):
            p_ids, a_ids = align.prompt_ids(tok, p), align.answer_ids(tok, a)
            ids = torch.tensor([p_ids + a_ids])
            logp = F.log_softmax(policy(ids).logits[0], -1)
            by_hand = sum(logp[len(p_ids) + i - 1, t].item() for i, t in enumerate(a_ids))
            assert together[b].item() == pytest.approx(by_hand, abs=1e-4)
            assert averaged[b].item() == pytest.approx(by_hand / len(a_ids), abs=1e-4)


def test_reward_model_reads_the_last_answer_token_whatever_the_padding():
    policy, tok = tiny_policy()
    rm = align.RewardModel.from_policy(policy, tok)
    torch.nn.init.normal_(rm.head.weight)
    prompts, answers = ["hi", "a longer question"], ["ok", "a reply that is longer"]
    together = rm.score(prompts, answers)
    alone = torch.cat([rm.score([p], [a]) for p, a in zip(prompts, answers)])
    torch.testing.assert_close(together, alone)
    assert policy.lm_head.weight.data_ptr() != rm.backbone.lm_head.weight.data_ptr()  # a copy


def test_rollout_answers_end_at_the_end_token_and_are_masked():
    policy, tok = tiny_policy()
    end = tok.special_tokens["<|end|>"]
    with torch.no_grad():  # make <|end|> likely so that some answers end early
        policy.lm_head.weight[end] *= 0
        policy.transformer.ln_f.bias.zero_()
    g = torch.Generator().manual_seed(0)
    out = align.rollout(policy, tok, ["hi", "ok", "a longer one"], max_new_tokens=6, generator=g)
    for b in range(len(out)):
        answer = out.ids[b][out.mask[b]].tolist()
        assert len(answer) <= 6 and end not in answer[:-1]
        assert bool(out.finished[b]) == (answer[-1] == end)
        assert out.ids[b, out.last[b]] == answer[-1]
        assert out.answers[b] == tok.decode([t for t in answer if t != end])


def test_rollout_with_cache_gives_the_tokens_of_recomputing():
    """Greedy rollouts (batched, KV cache) equal mg.generate's greedy text for each prompt alone."""
    import minigpt as mg
    for make in (tiny_policy, tiny_llama_policy):
        policy, tok = make()
        prompts = ["hi", "ok", "a longer one"]
        out = align.rollout(policy, tok, prompts, max_new_tokens=8, temperature=1e-6)
        for p, answer in zip(prompts, out.answers):
            ids = align.prompt_ids(tok, p)
            alone = mg.generate(policy, tok, ids, max_new_tokens=8, temperature=0, stop="<|end|>", use_cache=False)
            assert answer == alone.split("<|end|>")[0]
