"""python -m minigpt align: each method runs, saves a checkpoint, resumes and exports (FAST mode, tiny runs)."""

import pytest

from minigpt import align
from minigpt.__main__ import main
from minigpt.checkpoint import load_checkpoint


@pytest.fixture
def fast(monkeypatch):
    monkeypatch.setenv("MINIGPT_FAST", "1")


def test_align_reward_then_ppo_and_dpo_from_the_command_line(tmp_path, fast, capsys):
    rm_path = tmp_path / "rm.pt"
    common = ["--device", "cpu", "--no-progress", "--eval-interval", "2"]
    assert main(["align", "--method", "reward", "--max-iters", "2", "--batch-size", "4", "--out-dir",
                 str(tmp_path / "reward"), *common]) == 0
    assert load_checkpoint(tmp_path / "reward")["step"] == 2
    assert main(["align", "--method", "reward", "--max-iters", "3", "--batch-size", "4", "--out-dir",
                 str(tmp_path / "reward"), "--resume", "--export", str(rm_path), *common]) == 0
    rm = align.RewardModel.load(rm_path)
    assert len(rm.info["history"]["loss"]) == 3 and "test_accuracy" in rm.info
    assert "held-out test pairs: accuracy" in capsys.readouterr().out

    ppo_out = tmp_path / "ppo.pt"
    assert main(["align", "--method", "ppo", "--reward-model", str(rm_path), "--max-iters", "2", "--batch-size", "4",
                 "--minibatch-size", "2", "--ppo-epochs", "1", "--max-new-tokens", "4", "--eval-max-prompts", "4",
                 "--kl-coef", "0.05", "--out-dir", str(tmp_path / "ppo"), "--export", str(ppo_out), *common]) == 0
    ckpt = load_checkpoint(ppo_out)
    assert ckpt["extra"]["method"] == "ppo" and len(ckpt["extra"]["history"]["score"]) == 2
    assert main(["align", "--method", "ppo", "--reward-model", str(rm_path), "--max-iters", "3", "--batch-size", "4",
                 "--minibatch-size", "2", "--ppo-epochs", "1", "--max-new-tokens", "4", "--eval-max-prompts", "4",
                 "--kl-coef", "0.05", "--out-dir", str(tmp_path / "ppo"), "--resume", *common]) == 0
    assert load_checkpoint(tmp_path / "ppo")["step"] == 3

    assert main(["align", "--method", "dpo", "--pairs", "given", "--max-iters", "1", "--batch-size", "2",
                 "--out-dir", str(tmp_path / "dpo"), *common]) == 0
    assert load_checkpoint(tmp_path / "dpo")["extra"]["method"] == "dpo"
    # resuming a DPO run from the PPO folder is refused with a message that names both
    assert main(["align", "--method", "dpo", "--pairs", "given", "--max-iters", "2", "--out-dir",
                 str(tmp_path / "ppo"), "--resume", *common]) == 2
    assert "not dpo" in capsys.readouterr().err


def test_align_command_line_errors(tmp_path, capsys):
    assert main(["align", "--method", "ppo", "--policy", str(tmp_path / "missing.pt")]) == 2
    assert "neither a shipped model" in capsys.readouterr().err
    assert main(["align", "--method", "dpo", "--beta", "0", "--device", "cpu"]) == 2
    assert "beta" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["align", "--method", "rlhf"])
