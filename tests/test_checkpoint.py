"""Checkpoints: round trips, atomic writes, and a clear CheckpointError for every way a file can be wrong."""

import os
import random

import pytest
import torch

import minigpt as mg
from minigpt.checkpoint import (CheckpointError, capture_rng_state, check_config, export_weights,
                                load_checkpoint, load_model, restore, restore_rng_state, save_checkpoint)


@pytest.fixture
def model(tiny_config):
    torch.manual_seed(0)
    return mg.GPT(tiny_config)


def _trained_optimizer(model):
    """An AdamW and a scheduler that have taken one step, so they carry real state."""
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda it: 0.5 ** it)
    idx = torch.randint(0, model.config.vocab_size, (2, 8))
    model(idx, targets=idx).loss.backward()
    opt.step()
    sched.step()
    return opt, sched


def _same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_round_trip_with_tokenizer(tmp_path, model):
    tok = mg.CharTokenizer.from_text("hello world")
    cfg = mg.GPTConfig(vocab_size=tok.vocab_size, block_size=16, n_layer=1, n_head=2, n_embd=16)
    net = mg.GPT(cfg)
    opt, sched = _trained_optimizer(net)
    path = save_checkpoint(tmp_path / "run" / "ckpt.pt", net, opt, sched, step=7,
                           extra={"history": {"loss": [3.0, 2.5]}}, tokenizer=tok)
    assert path == tmp_path / "run" / "ckpt.pt"

    # Plain tensors and containers only: the safe loader accepts it.
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == "minigpt-checkpoint" and raw["version"] == 1
    assert raw["step"] == 7 and raw["extra"]["history"]["loss"] == [3.0, 2.5]
    assert raw["model_config"] == cfg.to_dict()

    loaded, loaded_tok = load_model(tmp_path / "run")  # a folder means folder/ckpt.pt
    assert _same_weights(loaded, net)
    assert not loaded.training
    assert loaded_tok.encode("hello") == tok.encode("hello")

    # Optimizer and scheduler state come back into fresh objects.
    net2 = mg.GPT(cfg)
    opt2 = torch.optim.AdamW(net2.parameters(), lr=1e-3)
    sched2 = torch.optim.lr_scheduler.LambdaLR(opt2, lambda it: 0.5 ** it)
    assert restore(load_checkpoint(path), net2, opt2, sched2) == 7
    assert _same_weights(net2, net)
    assert sched2.last_epoch == 1 and opt2.param_groups[0]["lr"] == opt.param_groups[0]["lr"]
    for p, q in zip(net.parameters(), net2.parameters()):
        torch.testing.assert_close(opt.state[p]["exp_avg"], opt2.state[q]["exp_avg"], rtol=0, atol=0)


def test_without_tokenizer_load_model_returns_none(tmp_path, model):
    save_checkpoint(tmp_path / "ckpt.pt", model)
    loaded, tok = load_model(tmp_path / "ckpt.pt")
    assert tok is None and _same_weights(loaded, model)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # raised inside torch's compile machinery
def test_saves_unwrapped_weights_from_a_compiled_model(tmp_path, model):
    compiled = torch.compile(model)  # compiles lazily: no forward pass, so this is quick
    assert any(k.startswith("_orig_mod.") for k in compiled.state_dict())
    save_checkpoint(tmp_path / "ckpt.pt", compiled)
    keys = load_checkpoint(tmp_path / "ckpt.pt")["model"].keys()
    assert keys == model.state_dict().keys()


def test_export_weights_is_small_and_loads(tmp_path, model):
    opt, sched = _trained_optimizer(model)
    full = save_checkpoint(tmp_path / "full.pt", model, opt, sched, step=1)
    small = export_weights(tmp_path / "small.pt", model, extra={"history": {"loss": [1.0]}})
    assert small.stat().st_size < full.stat().st_size
    ckpt = load_checkpoint(small)
    assert ckpt["optimizer"] is None and ckpt["rng"] is None
    assert _same_weights(load_model(small)[0], model)
    with pytest.raises(CheckpointError, match="weights only"):
        restore(ckpt, model, torch.optim.AdamW(model.parameters()))


def test_rng_state_round_trip():
    g = torch.Generator().manual_seed(5)
    state = capture_rng_state(g)
    first = (torch.rand(3), torch.randint(10, (3,), generator=g), random.random())
    restore_rng_state(state, g)
    second = (torch.rand(3), torch.randint(10, (3,), generator=g), random.random())
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1]) and first[2] == second[2]


# ---------------------------------------------------------------------------- errors

def test_missing_file_says_where_it_looked(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint found") as e:
        load_checkpoint(tmp_path / "nope.pt")
    assert str((tmp_path / "nope.pt").resolve()) in str(e.value)
    with pytest.raises(CheckpointError, match="ckpt.pt") as e:  # a folder without ckpt.pt
        load_model(tmp_path)
    assert "inside the folder" in str(e.value)


@pytest.mark.parametrize("cut", ["empty", "half", "tail"])
def test_truncated_file(tmp_path, model, cut):
    path = save_checkpoint(tmp_path / "ckpt.pt", model)
    data = path.read_bytes()
    path.write_bytes({"empty": b"", "half": data[: len(data) // 2], "tail": data[:-20]}[cut])
    with pytest.raises(CheckpointError, match="truncated or corrupt") as e:
        load_checkpoint(path)
    assert "earlier copy" in str(e.value)


def test_text_file_is_corrupt_not_a_crash(tmp_path):
    path = tmp_path / "ckpt.pt"
    path.write_text("this is not a checkpoint\n")
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_checkpoint(path)


def test_plain_state_dict_is_foreign(tmp_path, model):
    path = tmp_path / "weights.pt"
    torch.save(model.state_dict(), path)
    with pytest.raises(CheckpointError, match="not a minigpt checkpoint") as e:
        load_model(path)
    assert "plain state dict" in str(e.value) and "load_state_dict" in str(e.value)


def test_pickled_module_is_foreign_and_never_unpickled(tmp_path, model):
    path = tmp_path / "model.pt"
    torch.save(model, path)  # a whole pickled nn.Module: loading it would run code from the file
    with pytest.raises(CheckpointError, match="Python objects") as e:
        load_checkpoint(path)
    assert "weights_only=False" in str(e.value)


def test_nanogpt_style_dict_is_foreign_with_a_hint(tmp_path, model):
    path = tmp_path / "ckpt.pt"
    torch.save({"model": model.state_dict(), "model_args": {"n_layer": 2}, "iter_num": 10}, path)
    with pytest.raises(CheckpointError, match="no 'format' tag") as e:
        load_checkpoint(path)
    assert "nanoGPT" in str(e.value) and "model_args" in str(e.value)


def test_newer_version_asks_to_upgrade(tmp_path, model):
    path = save_checkpoint(tmp_path / "ckpt.pt", model)
    ckpt = torch.load(path, weights_only=True)
    ckpt["version"] = 99
    torch.save(ckpt, path)
    with pytest.raises(CheckpointError, match="newer minigpt") as e:
        load_checkpoint(path)
    assert "version 99" in str(e.value) and "upgrade" in str(e.value)


def test_config_mismatch_lists_the_fields(tmp_path, tiny_config, model):
    path = save_checkpoint(tmp_path / "ckpt.pt", model)
    other = mg.GPT(mg.GPTConfig(**{**tiny_config.to_dict(), "n_layer": 3, "n_embd": 64}))
    with pytest.raises(CheckpointError, match="different config") as e:
        restore(load_checkpoint(path), other)
    msg = str(e.value)
    assert f"n_layer: checkpoint {tiny_config.n_layer}, model 3" in msg
    assert f"n_embd: checkpoint {tiny_config.n_embd}, model 64" in msg
    assert "n_head" not in msg  # only the fields that differ
    check_config(load_checkpoint(path), model)  # the matching model passes


# ---------------------------------------------------------------------------- atomic writes

@pytest.mark.parametrize("error", [OSError("disk full"), KeyboardInterrupt()])
def test_crash_mid_save_keeps_the_old_checkpoint(tmp_path, model, monkeypatch, error):
    path = save_checkpoint(tmp_path / "ckpt.pt", model, step=1)
    before = path.read_bytes()
    real_save = torch.save

    def crashing_save(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04 half a checkpoint")  # some bytes reach the disk, then the crash
        raise error

    monkeypatch.setattr(torch, "save", crashing_save)
    with torch.no_grad():
        model.lm_head.weight.add_(1.0)
    with pytest.raises(type(error)):
        save_checkpoint(path, model, step=2)
    monkeypatch.setattr(torch, "save", real_save)

    assert path.read_bytes() == before
    assert load_checkpoint(path)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"], "a temporary file was left behind"


def test_saved_file_gets_ordinary_permissions(tmp_path, model):
    umask = os.umask(0)
    os.umask(umask)
    path = save_checkpoint(tmp_path / "ckpt.pt", model)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # not the 0600 of a private temporary file
    path.chmod(0o640)
    save_checkpoint(path, model)  # overwriting keeps the permissions the file had
    assert path.stat().st_mode & 0o777 == 0o640
