"""Alignment runs on tiny models: each one moves what it should, resumes exactly, and refuses bad input."""

import copy

import pytest
import torch

from align_toys import EVAL_PROMPTS, PROMPTS, share_of_a, tiny_llama_policy, tiny_policy
from minigpt import align
from minigpt.checkpoint import CheckpointError

POLITE = [align.PreferencePair(p, "thank you kindly", "go away now") for p in PROMPTS]


def ppo_config(**kw):
    base = dict(max_iters=12, batch_size=12, minibatch_size=6, ppo_epochs=2, max_new_tokens=6, learning_rate=1e-2,
                min_lr=1e-2, kl_coef=0.0, eval_interval=4, device="cpu", progress=False, seed=0)
    return align.PPOConfig(**{**base, **kw})


@pytest.mark.parametrize("make", [tiny_policy, tiny_llama_policy])
def test_a_tiny_ppo_run_raises_held_out_reward(make):
    policy, tok = make()
    trainer = align.PPOTrainer(policy, copy.deepcopy(policy), share_of_a, tok, PROMPTS, ppo_config(),
                               eval_prompts=EVAL_PROMPTS)
    history = trainer.fit()
    assert history["eval_iter"] == [0, 4, 8, 12]
    assert history["eval_score"][-1] > history["eval_score"][0] + 0.05
    assert history["eval_kl"][-1] > 0.5  # it moved away from the reference to get there
    for key in ("reward", "kl", "entropy", "clip_fraction", "answer_length", "rollout_s", "score_s", "update_s"):
        assert len(history[key]) == 12


def test_ppo_first_minibatch_has_ratio_one_and_unclipped_objective():
    policy, tok = tiny_policy()
    trainer = align.PPOTrainer(policy, copy.deepcopy(policy), share_of_a, tok, PROMPTS, ppo_config(max_iters=1))
    stats = trainer.step()
    first = trainer.update_stats[0]
    assert first["epoch"] == 0
    assert first["ratio_min"] == pytest.approx(1.0, abs=1e-6) and first["ratio_max"] == pytest.approx(1.0, abs=1e-6)
    assert first["policy_loss"] == pytest.approx(first["unclipped_loss"], abs=1e-7)
    assert first["clip_fraction"] == 0
    assert stats["kl"] == 0  # the policy is the reference during the first rollout
    assert len(trainer.update_stats) == 2 * 2  # epochs x minibatches
    assert any(s["ratio_max"] > 1 for s in trainer.update_stats[1:])  # later minibatches see the updated policy


def test_kl_penalty_keeps_ppo_near_the_reference():
    runs = {}
    for coef in (0.0, 1.0):
        policy, tok = tiny_policy()
        trainer = align.PPOTrainer(policy, copy.deepcopy(policy), share_of_a, tok, PROMPTS,
                                   ppo_config(kl_coef=coef), eval_prompts=EVAL_PROMPTS)
        runs[coef] = trainer.fit()
    assert runs[1.0]["eval_kl"][-1] < 0.5 * runs[0.0]["eval_kl"][-1]


def test_adaptive_kl_moves_the_coefficient_towards_the_target():
    kl = align.AdaptiveKL(0.1, target=4.0, horizon=100)
    assert kl.update(8.0, 10) == pytest.approx(0.1 * (1 + 0.2 * 0.1))  # above target (error clipped at 0.2): up
    assert kl.update(2.0, 10) < 0.1 * 1.02  # below target: down


def test_ppo_resumes_exactly(tmp_path):
    def trainer(max_iters, out_dir):
        policy, tok = tiny_policy()
        return align.PPOTrainer(policy, copy.deepcopy(policy), share_of_a, tok, PROMPTS,
                                ppo_config(max_iters=max_iters, eval_interval=2, kl_coef=0.1, adaptive_kl=True,
                                           target_kl=0.5, out_dir=out_dir))
    straight = trainer(4, tmp_path / "a")
    straight.fit()
    first = trainer(2, tmp_path / "b")
    first.fit()
    second = trainer(4, tmp_path / "b")
    second.fit(resume=True)
    assert second.history["score"] == straight.history["score"]
    assert second.history["kl_coef"] == straight.history["kl_coef"]
    for a, b in zip(straight.model.state_dict().values(), second.model.state_dict().values()):
        torch.testing.assert_close(a, b)


def test_a_tiny_reward_model_learns_the_preference():
    policy, tok = tiny_policy()
    rm = align.RewardModel.from_policy(policy, tok)
    config = align.RewardConfig(max_iters=30, batch_size=8, learning_rate=3e-3, min_lr=3e-4, warmup_iters=2,
                                eval_interval=10, device="cpu", progress=False)
    before = align.evaluate_reward_model(rm, POLITE)
    assert before.loss == pytest.approx(0.6931, abs=1e-3)  # a zero head: every score 0
    history = align.train_reward_model(rm, POLITE[:8], POLITE[8:], config)
    after = align.evaluate_reward_model(rm, POLITE[8:])
    assert after.accuracy == 1.0 and after.loss < 0.3
    assert history["dev_accuracy"][-1] == 1.0 and len(history["loss"]) == 30
    scores = rm.score(["new"], ["thank you kindly"]) - rm.score(["new"], ["go away now"])
    assert scores.item() > 0


def test_reward_model_saves_and_loads(tmp_path):
    policy, tok = tiny_policy()
    rm = align.RewardModel.from_policy(policy, tok)
    torch.nn.init.normal_(rm.head.weight)
    rm.save(tmp_path / "rm.pt", extra={"note": "x"})
    again = align.RewardModel.load(tmp_path / "rm.pt")
    torch.testing.assert_close(rm.score(["hi"], ["yo"]), again.score(["hi"], ["yo"]))
    assert again.info["note"] == "x"
    from minigpt.checkpoint import export_weights
    export_weights(tmp_path / "lm.pt", policy, tokenizer=tok)
    with pytest.raises(CheckpointError, match="not a reward model"):
        align.RewardModel.load(tmp_path / "lm.pt")


def test_a_tiny_dpo_run_raises_the_margin_and_resumes(tmp_path):
    def run(max_iters, resume=False):
        policy, tok = tiny_policy()
        config = align.DPOConfig(max_iters=max_iters, batch_size=6, learning_rate=3e-3, min_lr=3e-3, warmup_iters=0,
                                 eval_interval=5, beta=0.5, device="cpu", progress=False, out_dir=tmp_path)
        if resume:  # the policy continues from the checkpoint; the reference is the starting model
            history = align.train_dpo(policy, copy.deepcopy(policy), tok, POLITE[:8], POLITE[8:], config, resume=True)
        else:
            history = align.train_dpo(policy, copy.deepcopy(policy), tok, POLITE[:8], POLITE[8:], config)
        return policy, history
    _, straight = run(10)
    assert straight["dev_loss"][0] == pytest.approx(0.6931, abs=1e-4)  # policy = reference at the start
    assert straight["dev_margin"][-1] > 0.5 and straight["dev_accuracy"][-1] == 1.0
    assert straight["dev_loss"][-1] < straight["dev_loss"][0]
    import shutil
    shutil.rmtree(tmp_path)
    run(5)
    _, resumed = run(10, resume=True)
    assert resumed["loss"] == pytest.approx(straight["loss"])


def test_sampled_pairs_are_best_against_worst_by_reward():
    policy, tok = tiny_policy()
    rm = align.RewardModel.from_policy(policy, tok)
    torch.nn.init.normal_(rm.head.weight)
    pairs = align.sample_preference_pairs(policy, rm, tok, PROMPTS[:4], samples_per_prompt=3, max_new_tokens=6)
    assert 1 <= len(pairs) <= 4
    for p in pairs:
        assert rm.score([p.prompt], [p.chosen]) > rm.score([p.prompt], [p.rejected])


def test_bad_input_gets_clear_errors():
    with pytest.raises(ValueError, match="same chosen and rejected"):
        align.PreferencePair("hi", "hello", "hello")
    with pytest.raises(ValueError, match="empty"):
        align.PreferencePair("hi", "", "go away")
    with pytest.raises(ValueError, match="empty"):
        align.PreferencePair("hi", "hello", "   ")
    policy, tok = tiny_policy()
    with pytest.raises(ValueError, match="empty"):
        align.batch_answers(tok, ["hi"], [""])
    # a reward model built on another tokenizer
    from minigpt.sft import SPECIAL_TOKENS
    import minigpt as mg
    other = mg.BPETokenizer({(104, 105): 256}, ["<|endoftext|>", *SPECIAL_TOKENS], allowed_special="none")
    rm = align.RewardModel(copy.deepcopy(policy), other)
    with pytest.raises(ValueError, match="tokenizer differs"):
        align.PPOTrainer(policy, copy.deepcopy(policy), rm, tok, PROMPTS, ppo_config())
    with pytest.raises(ValueError, match="tokenizer differs"):
        align.sample_preference_pairs(policy, rm, tok, PROMPTS[:2])
    with pytest.raises(ValueError, match="separate frozen copy"):
        align.PPOTrainer(policy, policy, share_of_a, tok, PROMPTS, ppo_config())
    with pytest.raises(ValueError, match="minibatch_size"):
        align.PPOConfig(batch_size=4, minibatch_size=8)
    with pytest.raises(ValueError, match="one score per answer"):
        align.PPOTrainer(policy, copy.deepcopy(policy), lambda r: torch.zeros(1), tok, PROMPTS, ppo_config()).step()
    with pytest.raises(ValueError, match="block_size"):
        align.rollout(policy, tok, ["x" * 60])
    with pytest.raises(ValueError, match="out_dir"):
        align.train_dpo(policy, copy.deepcopy(policy), tok, POLITE, None, align.DPOConfig(device="cpu"), resume=True)


def test_the_reference_is_left_as_it_was_so_later_copies_still_train():
    policy, tok = tiny_policy()
    start = copy.deepcopy(policy)
    align.PPOTrainer(policy, start, share_of_a, tok, PROMPTS, ppo_config(max_iters=1)).fit()
    align.train_dpo(copy.deepcopy(start), start, tok, POLITE[:4], None,
                    align.DPOConfig(max_iters=1, batch_size=2, device="cpu", progress=False))
    assert all(p.requires_grad for p in start.parameters())
    second = copy.deepcopy(start)  # e.g. the next method compared from the same starting model
    align.PPOTrainer(second, start, share_of_a, tok, PROMPTS, ppo_config(max_iters=2)).fit()
    assert any(not torch.equal(a, b) for a, b in zip(second.parameters(), start.parameters()))
    frozen = copy.deepcopy(start).requires_grad_(False)
    with pytest.raises(ValueError, match="requires_grad"):
        align.PPOTrainer(frozen, start, share_of_a, tok, PROMPTS, ppo_config())


def test_ctrl_c_ends_the_step_saves_and_resume_goes_on(tmp_path, capsys):
    import signal

    def press_ctrl_c_in_step_2(event, stats):
        if event == "step" and stats["iter"] == 1:
            signal.raise_signal(signal.SIGINT)  # arrives mid-step: the step still finishes

    def trainer(out_dir, callbacks=()):
        policy, tok = tiny_policy()
        return align.PPOTrainer(policy, copy.deepcopy(policy), share_of_a, tok, PROMPTS,
                                ppo_config(max_iters=4, eval_interval=10, out_dir=out_dir), callbacks=callbacks)
    before = signal.getsignal(signal.SIGINT)  # Python's default, or "ignore" in a background job
    straight = trainer(tmp_path / "a")
    straight.fit()
    stopped = trainer(tmp_path / "b", [press_ctrl_c_in_step_2])
    with pytest.raises(KeyboardInterrupt):
        stopped.fit()
    assert "interrupted after step 2" in capsys.readouterr().out
    assert load_checkpoint_step(tmp_path / "b") == 2
    resumed = trainer(tmp_path / "b")
    resumed.fit(resume=True)
    assert resumed.history["score"] == straight.history["score"]
    assert signal.getsignal(signal.SIGINT) == before  # put back


def load_checkpoint_step(path):
    from minigpt.checkpoint import load_checkpoint
    return load_checkpoint(path)["step"]


def test_a_chatml_llama_policy_goes_through_every_method():
    """The SmolLM2 path in miniature: ChatML template, RoPE, grouped-query attention."""
    from align_toys import tiny_chatml_llama_policy
    policy, tok = tiny_chatml_llama_policy()
    end = tok.special_tokens["<|im_end|>"]
    batch = align.batch_answers(tok, ["hi"], ["ok"])
    assert batch.ids[0][batch.mask[0]].tolist() == tok.encode("ok") + [end]
    assert "<|im_start|>assistant\n" in tok.decode(batch.ids[0, :batch.prompt_lens[0]].tolist())
    start = copy.deepcopy(policy)
    trainer = align.PPOTrainer(policy, start, share_of_a, tok, PROMPTS, ppo_config(max_iters=2))
    trainer.fit()
    assert trainer.update_stats[0]["ratio_max"] == pytest.approx(1.0, abs=1e-5)
    rm = align.RewardModel.from_policy(start, tok)
    history = align.train_reward_model(rm, POLITE[:4], POLITE[4:6], align.RewardConfig(
        max_iters=2, batch_size=2, eval_interval=2, device="cpu", progress=False))
    assert history["dev_loss"][-1] < 0.7
    ev = align.evaluate_dpo(copy.deepcopy(start), start, align.encode_pairs(tok, POLITE[:4], 64), align.DPOConfig())
    assert ev["loss"] == pytest.approx(0.6931, abs=1e-4)
