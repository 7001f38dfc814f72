"""The training loop: config checks, schedule, weight decay groups, accumulation, divergence,
Ctrl-C, exact resume, and data parallel over two CPU processes."""

import math
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

import minigpt as mg
import minigpt.train as train_module
from minigpt.checkpoint import CheckpointError, load_checkpoint, load_model
from minigpt.train import Trainer, TrainConfig, TrainingDiverged, lr_at, param_groups

REPO = Path(__file__).resolve().parent.parent
VOCAB = 16


def tiny_gpt(seed=0, dropout=0.0, n_layer=1):
    torch.manual_seed(seed)
    return mg.GPT(mg.GPTConfig(vocab_size=VOCAB, block_size=16, n_layer=n_layer, n_head=2, n_embd=16,
                               dropout=dropout))


def ids(n=2000, seed=1):
    return torch.randint(0, VOCAB, (n,), generator=torch.Generator().manual_seed(seed))


def config(**overrides):
    # float32: these tests compare steps bit for bit; mixed precision has its own tests
    base = dict(max_iters=10, batch_size=4, warmup_iters=2, eval_interval=5, eval_iters=2,
                device="cpu", progress=False, seed=0, dtype="float32")
    return TrainConfig(**{**base, **overrides})


def make_trainer(model=None, cfg=None, **kwargs):
    data = ids()
    return Trainer(model or tiny_gpt(), data[:1600], data[1600:], cfg or config(), **kwargs)


def same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return all(torch.equal(sa[k], sb[k]) for k in sa)


# ---------------------------------------------------------------------------- config

@pytest.mark.parametrize("field, value, words", [
    ("max_iters", -1, "max_iters must be an integer >= 0"),
    ("batch_size", 0, "batch_size must be an integer >= 1"),
    ("batch_size", 2.0, "batch_size must be an integer"),
    ("learning_rate", 0.0, "learning_rate must be a number in (0"),
    ("learning_rate", float("nan"), "learning_rate"),
    ("min_lr", 1.0, "must not exceed learning_rate"),
    ("lr_decay_iters", 50, "at least warmup_iters"),
    ("beta2", 1.0, "beta2 must be a number in [0, 1)"),
    ("grad_clip", -1.0, "grad_clip"),
    ("grad_accum_steps", 0, "grad_accum_steps"),
    ("eval_iters", 0, "eval_iters"),
    ("device", "gpu7", "not a device torch knows"),
    ("dtype", "fp8", "dtype must be one of"),
    ("compile", "yes", "compile must be True or False"),
])
def test_config_rejects_bad_values(field, value, words):
    kwargs = {"warmup_iters": 100} if field == "lr_decay_iters" else {}
    with pytest.raises(ValueError, match=re.escape(words)):
        TrainConfig(**{field: value, **kwargs})


def test_config_defaults_and_round_trip(tmp_path):
    d = TrainConfig()
    assert (d.learning_rate, d.min_lr, d.warmup_iters, d.beta2, d.weight_decay, d.grad_clip) == \
        (1e-3, 1e-4, 100, 0.99, 0.1, 1.0)
    c = TrainConfig(out_dir=str(tmp_path), max_iters=7)
    assert isinstance(c.out_dir, Path)
    assert c.to_dict()["out_dir"] == str(tmp_path)  # plain str, so it fits a weights_only checkpoint
    assert TrainConfig.from_dict(c.to_dict()) == c
    with pytest.raises(ValueError, match="unknown TrainConfig fields"):
        TrainConfig.from_dict({"max_iter": 3})


def test_trainer_rejects_bad_data():
    model = tiny_gpt()
    with pytest.raises(ValueError, match="needs at least 17"):
        Trainer(model, ids(10), None, config())
    with pytest.raises(ValueError, match="outside the model's vocabulary"):
        Trainer(model, torch.arange(100), None, config())
    with pytest.raises(ValueError, match="encode it into token ids"):
        Trainer(model, "some text", None, config())
    with pytest.raises(ValueError, match="longer than the model's block_size"):
        Trainer(model, ids(), None, config(block_size=64))
    with pytest.raises(ValueError, match="float16' needs a CUDA GPU"):
        Trainer(model, ids(), None, config(dtype="float16"))


def test_compile_on_cpu_warns_that_it_is_slow_to_start(monkeypatch):
    compiled = []
    monkeypatch.setattr(torch, "compile", lambda m: compiled.append(m) or m)  # importing dynamo takes seconds
    with pytest.warns(UserWarning, match="torch.compile on the CPU"):
        trainer = make_trainer(cfg=config(compile=True))
    assert compiled == [trainer.model]


# ---------------------------------------------------------------------------- schedule and optimizer

def test_lr_schedule_shape():
    cfg = TrainConfig(max_iters=1000, warmup_iters=100, learning_rate=1e-3, min_lr=1e-4)
    lrs = [lr_at(it, cfg) for it in range(1200)]
    warm = lrs[:100]
    steps = [b - a for a, b in zip(warm, warm[1:])]
    assert all(math.isclose(s, steps[0]) for s in steps), "warm-up is not linear"
    assert 0 < lrs[0] < lrs[99] < 1e-3
    assert lrs[100] == pytest.approx(1e-3)  # the peak, where warm-up ends
    decay = lrs[100:1000]
    assert all(a >= b for a, b in zip(decay, decay[1:])), "decay is not monotone"
    assert lrs[550] == pytest.approx((1e-3 + 1e-4) / 2)  # half way down the cosine: the mid value
    assert lrs[1000] == pytest.approx(1e-4) and lrs[1199] == 1e-4  # ends at min_lr and stays
    assert lr_at(500, TrainConfig(max_iters=1000, warmup_iters=100, lr_decay_iters=500)) == pytest.approx(1e-4)


def test_learning_rate_follows_lr_at():
    cfg = config(max_iters=12, warmup_iters=3, learning_rate=1e-2, min_lr=1e-3)
    trainer = make_trainer(cfg=cfg)
    assert all(g["lr"] == lr_at(0, cfg) for g in trainer.optimizer.param_groups)
    history = trainer.fit()
    assert history["lr"] == [lr_at(it, cfg) for it in range(12)]  # exactly: set, not computed by a scheduler
    assert all(g["lr"] == lr_at(11, cfg) for g in trainer.optimizer.param_groups)  # that of the last step


def test_no_weight_decay_on_biases_and_norms():
    model = tiny_gpt()
    decay, no_decay = param_groups(model, 0.1)
    names = {id(p): n for n, p in model.named_parameters()}
    decayed = {names[id(p)] for p in decay["params"]}
    not_decayed = {names[id(p)] for p in no_decay["params"]}
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert all(n.endswith("bias") or ".ln_" in n for n in not_decayed)
    assert "transformer.ln_f.weight" in not_decayed and "transformer.h.0.attn.c_attn.bias" in not_decayed
    assert {"transformer.wte.weight", "transformer.wpe.weight", "transformer.h.0.mlp.c_fc.weight"} <= decayed
    assert len(decayed) + len(not_decayed) == len(list(model.parameters()))  # each once (tied weights too)
    groups = make_trainer(model).optimizer.param_groups
    assert [g["weight_decay"] for g in groups] == [0.1, 0.0]


class TwoSpeedModel(torch.nn.Module):
    """A GPT whose last block learns at 5x the schedule's rate (a decoder-style learning rate)."""

    def __init__(self):
        super().__init__()
        self.gpt = tiny_gpt(n_layer=2)
        self.config = self.gpt.config

    def forward(self, idx, targets=None):
        return self.gpt(idx, targets=targets)

    def optim_groups(self, weight_decay):
        fast = set(map(id, self.gpt.transformer.h[1].parameters()))
        return [{"params": [p for p in self.parameters() if id(p) not in fast], "weight_decay": weight_decay},
                {"params": [p for p in self.parameters() if id(p) in fast], "weight_decay": 0.0, "lr_scale": 5.0}]


def test_a_model_can_ask_for_its_own_groups_and_learning_rate_scales(tmp_path):
    cfg = config(max_iters=6, warmup_iters=2, learning_rate=1e-2, min_lr=1e-3, eval_interval=3, out_dir=tmp_path)
    def stop_after_3(trainer, event, stats):
        trainer.should_stop = trainer.step >= 3

    trainer = make_trainer(TwoSpeedModel(), cfg, callbacks=[stop_after_3])
    slow, fast = trainer.optimizer.param_groups
    assert fast["lr"] == 5 * slow["lr"] and fast["weight_decay"] == 0.0 and slow["weight_decay"] == cfg.weight_decay
    trainer.fit()
    assert trainer.step == 3 and fast["lr"] == pytest.approx(5 * lr_at(2, cfg)) and slow["lr"] == lr_at(2, cfg)
    resumed = make_trainer(TwoSpeedModel(), cfg)
    resumed.fit(resume=True)
    slow, fast = resumed.optimizer.param_groups
    assert resumed.step == 6 and fast["lr"] == pytest.approx(5 * lr_at(5, cfg)) and slow["lr"] == lr_at(5, cfg)
    assert resumed.history["lr"] == [lr_at(it, cfg) for it in range(6)]  # the history keeps the schedule's own rate


def test_mixed_precision_on_a_cpu_only_where_it_multiplies_bfloat16_natively(monkeypatch):
    monkeypatch.setattr(train_module, "cpu_has_native_bfloat16", lambda: True)
    assert make_trainer(cfg=config(dtype="auto")).dtype == torch.bfloat16
    monkeypatch.setattr(train_module, "cpu_has_native_bfloat16", lambda: False)
    assert make_trainer(cfg=config(dtype="auto")).dtype == torch.float32
    monkeypatch.setenv("MINIGPT_CPU_BF16", "0")
    assert mg.runtime.cpu_has_native_bfloat16() is False


def test_bfloat16_training_on_a_cpu_learns_like_float32():
    """Mixed precision keeps float32 weights and optimizer state; only the matmuls round."""
    data = torch.arange(3000) % VOCAB  # 0 1 2 ... 15 0 1 ...: each token predicts the next
    losses = {}
    for dtype in ("float32", "bfloat16"):
        trainer = Trainer(tiny_gpt(), data, data, config(dtype=dtype, max_iters=40, learning_rate=1e-2, eval_interval=40))
        history = trainer.fit()
        assert all(p.dtype == torch.float32 for p in trainer.raw_model.parameters())
        assert history["val_loss"][-1] < 0.5 * history["val_loss"][0]
        losses[dtype] = history["val_loss"][-1]
    assert losses["bfloat16"] == pytest.approx(losses["float32"], rel=0.1)


def test_grad_accumulation_equals_one_big_batch(monkeypatch):
    """2 micro-batches of 4 give the step that one batch of 8 gives (dropout 0)."""
    fixed = ids(8 * 17, seed=3).view(8, 17)  # the same 8 training sequences, in order, for both runs
    served, trainers = [], []
    real_get_batch = train_module.get_batch

    def serve(data, batch_size, block_size, generator=None, device=None):
        if generator is not trainers[-1].generator:  # an evaluation batch: leave it as it is
            return real_get_batch(data, batch_size, block_size, generator=generator, device=device)
        start = sum(served) % 8
        served.append(batch_size)
        rows = fixed[start:start + batch_size]
        return rows[:, :block_size].clone(), rows[:, 1:block_size + 1].clone()

    monkeypatch.setattr(train_module, "get_batch", serve)
    results = []
    for batch_size, accum in ((8, 1), (4, 2)):
        served.clear()
        model = tiny_gpt()
        trainers.append(make_trainer(model, config(max_iters=2, batch_size=batch_size, grad_accum_steps=accum,
                                                   eval_interval=100, eval_iters=1, learning_rate=1e-2)))
        results.append((model, trainers[-1].fit()))
    (big, h_big), (acc, h_acc) = results
    assert h_big["loss"] == pytest.approx(h_acc["loss"], rel=1e-5)
    assert h_big["grad_norm"] == pytest.approx(h_acc["grad_norm"], rel=1e-4)
    # Adam divides by sqrt(v), which blows rounding noise in near-zero gradients up to ~lr-sized
    # steps for single elements; 1e-5 is still 1000x below the lr of 1e-2 that moved the weights.
    for p, q in zip(big.parameters(), acc.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------------------- the loop

def test_loss_goes_down_on_learnable_text():
    data = torch.arange(3000) % VOCAB  # 0 1 2 ... 15 0 1 ...: each token predicts the next
    trainer = Trainer(tiny_gpt(), data, data, config(max_iters=40, learning_rate=1e-2, eval_interval=20))
    h = trainer.fit()
    assert h["val_loss"][-1] < 0.5 * h["val_loss"][0]
    assert h["loss"][-1] < h["loss"][0]


def test_history_and_callbacks():
    events = []

    def record(trainer, event, stats):
        events.append((event, stats["iter"]))
        assert trainer.step == (stats["iter"] + 1 if event == "step" else stats["iter"])

    trainer = make_trainer(cfg=config(max_iters=7, eval_interval=3), callbacks=[record])
    h = trainer.fit()
    assert h["iter"] == list(range(7))
    assert all(len(h[k]) == 7 for k in ("loss", "lr", "grad_norm", "tokens_per_sec"))
    assert h["eval_iter"] == [0, 3, 6, 7]  # every eval_interval, and at the end
    assert len(h["val_loss"]) == len(h["train_eval_loss"]) == 4
    assert all(t > 0 for t in h["tokens_per_sec"])
    assert [e for e in events if e[0] == "eval"] == [("eval", i) for i in (0, 3, 6, 7)]
    assert [e for e in events if e[0] == "step"] == [("step", i) for i in range(7)]
    assert events[-1] == ("end", 7)


def test_grad_norm_is_recorded_before_clipping():
    """With a tiny clip threshold the recorded norms stay large: they are measured before clipping,
    which is what a plot of gradient norms with and without clipping needs."""
    h = make_trainer(cfg=config(max_iters=3, grad_clip=1e-4, eval_interval=100)).fit()
    assert min(h["grad_norm"]) > 1e-2


def test_should_stop_ends_early_and_evaluates():
    def stop_at_4(trainer, event, stats):
        if event == "step" and trainer.step == 4:
            trainer.should_stop = True

    trainer = make_trainer(callbacks=[stop_at_4])
    h = trainer.fit()
    assert trainer.step == 4 and h["eval_iter"][-1] == 4


def test_evaluate_restores_mode_and_leaves_training_randomness_alone():
    trainer = make_trainer(tiny_gpt(dropout=0.2))
    trainer.model.train()
    before = (torch.get_rng_state(), trainer.generator.get_state())
    first = trainer.evaluate()
    assert trainer.model.training
    assert torch.equal(before[0], torch.get_rng_state()) and torch.equal(before[1], trainer.generator.get_state())
    assert set(first) == {"train", "val"} and trainer.evaluate() == first  # same batches each time
    assert set(Trainer(tiny_gpt(), ids(), None, config()).evaluate()) == {"train"}


def test_nan_loss_stops_with_training_diverged(tmp_path):
    """A NaN loss at step 3 stops training before it touches the weights; the checkpoint on disk
    stays the last good one."""
    model = tiny_gpt()
    snapshot = {}

    def poison_after_step_2(module, args, output):
        if trainer.step == 3 and module.training:
            output.loss = output.loss * float("nan")
        return output

    def keep_weights(trainer, event, stats):
        if event == "step" and trainer.step == 3:
            snapshot.update({k: v.clone() for k, v in trainer.model.state_dict().items()})

    model.register_forward_hook(poison_after_step_2)
    trainer = make_trainer(model, config(out_dir=tmp_path, checkpoint_interval=2), callbacks=[keep_weights])
    with pytest.raises(TrainingDiverged, match="step 3") as e:
        trainer.fit()
    assert e.value.step == 3 and math.isnan(e.value.loss)
    assert "Lower TrainConfig.learning_rate" in str(e.value) and str(tmp_path / "ckpt.pt") in str(e.value)
    assert all(torch.equal(v, snapshot[k]) for k, v in model.state_dict().items())
    ckpt = load_checkpoint(tmp_path)
    assert ckpt["step"] == 2 and all(torch.isfinite(v).all() for v in ckpt["model"].values())


def test_huge_learning_rate_diverges_with_advice():
    cfg = config(max_iters=30, learning_rate=1e6, min_lr=0.0, warmup_iters=0, grad_clip=0.0, eval_interval=100)
    with pytest.raises(TrainingDiverged, match="Lower TrainConfig.learning_rate") as e:
        make_trainer(cfg=cfg).fit()
    assert "turn on gradient clipping" in str(e.value)


# ---------------------------------------------------------------------------- checkpoints and resume

def interrupt_at(step):
    def cb(trainer, event, stats):
        if event == "step" and trainer.step == step:
            raise KeyboardInterrupt
    return cb


def test_ctrl_c_saves_a_checkpoint_then_reraises(tmp_path, capsys):
    tok = mg.CharTokenizer.from_text("abcdefghijklmnop")
    trainer = make_trainer(cfg=config(out_dir=tmp_path / "run"), callbacks=[interrupt_at(5)], tokenizer=tok)
    with pytest.raises(KeyboardInterrupt):
        trainer.fit()
    assert load_checkpoint(tmp_path / "run")["step"] == 5
    assert str(tmp_path / "run" / "ckpt.pt") in capsys.readouterr().out
    model, loaded_tok = load_model(tmp_path / "run")
    assert same_weights(model, trainer.model) and loaded_tok.encode("abc") == tok.encode("abc")


def test_ctrl_c_without_out_dir_saves_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        make_trainer(callbacks=[interrupt_at(2)]).fit()
    assert list(tmp_path.iterdir()) == []


def test_checkpoints_every_interval(tmp_path):
    seen = []
    trainer = make_trainer(cfg=config(max_iters=5, out_dir=tmp_path, checkpoint_interval=2),
                           callbacks=[lambda t, e, s: seen.append(load_checkpoint(tmp_path)["step"])
                                      if e == "step" and (tmp_path / "ckpt.pt").exists() else None])
    trainer.fit()
    assert seen == [2, 2, 4, 4]  # after steps 2..5 (the callback runs after the save)
    assert load_checkpoint(tmp_path)["step"] == 5  # and at the end


@pytest.mark.parametrize("how", ["shorter run", "ctrl-c mid-run"])
def test_resume_is_exact(tmp_path, how):
    """Stopping and resuming gives bit for bit the weights and losses of a run never stopped,
    with dropout on and gradient accumulation, so every random stream must come back."""
    common = dict(max_iters=12, lr_decay_iters=12, grad_accum_steps=2, eval_interval=4, eval_iters=1,
                  out_dir=tmp_path)
    straight_model = tiny_gpt(dropout=0.1)
    straight = make_trainer(straight_model, config(**{**common, "out_dir": tmp_path / "straight"})).fit()

    first_model = tiny_gpt(dropout=0.1)
    if how == "shorter run":  # fit to step 6, then a new Trainer goes on to 12
        make_trainer(first_model, config(**{**common, "max_iters": 6})).fit()
    else:  # Ctrl-C after step 7, between two checkpoints
        with pytest.raises(KeyboardInterrupt):
            make_trainer(first_model, config(**common), callbacks=[interrupt_at(7)]).fit()

    resumed_model = tiny_gpt(seed=123, dropout=0.1)  # other weights: the checkpoint must win
    torch.manual_seed(999)  # and other global randomness
    resumed = make_trainer(resumed_model, config(**common)).fit(resume=True)

    assert same_weights(resumed_model, straight_model)
    for key in ("iter", "loss", "lr", "grad_norm"):  # every step (tokens_per_sec is wall-clock)
        assert resumed[key] == straight[key], key
    # The evaluations match too; the shorter run also evaluated where it ended, at step 6.
    evals = lambda h: {i: (t, v) for i, t, v in zip(h["eval_iter"], h["train_eval_loss"], h["val_loss"])}
    extra = {6} if how == "shorter run" else set()
    assert resumed["eval_iter"] == sorted([0, 4, 8, 12, *extra])
    assert {i: e for i, e in evals(resumed).items() if i not in extra} == evals(straight)


def test_resume_into_a_different_model_lists_the_differences(tmp_path):
    make_trainer(cfg=config(max_iters=2, out_dir=tmp_path)).fit()
    other = make_trainer(tiny_gpt(n_layer=2), config(max_iters=4, out_dir=tmp_path))
    with pytest.raises(CheckpointError, match="n_layer: checkpoint 1, model 2"):
        other.fit(resume=True)


def test_resume_needs_a_place_to_look(tmp_path):
    with pytest.raises(ValueError, match="out_dir is not set"):
        make_trainer().fit(resume=True)
    with pytest.raises(CheckpointError, match="no checkpoint found"):
        make_trainer(cfg=config(out_dir=tmp_path)).fit(resume=True)


# ---------------------------------------------------------------------------- data parallel

@pytest.mark.slow
def test_ddp_two_cpu_processes(tmp_path):
    """torchrun with 2 processes (gloo): the processes see different batches, end with the same
    weights (DDP starts them from rank 0's and averages gradients), and only rank 0 saves."""
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(REPO / "tests" / "ddp_train_script.py"), str(tmp_path)]
    run = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert r0["world_size"] == r1["world_size"] == 2
    assert not torch.equal(r0["first_batch"], r1["first_batch"]), "both processes trained on the same batch"
    for k in r0["state_dict"]:
        assert torch.equal(r0["state_dict"][k], r1["state_dict"][k]), f"{k} differs between processes"
    assert r0["history"]["loss"] == r1["history"]["loss"]  # averaged over processes
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.pt", "rank0.pt", "rank1.pt"]
    ckpt = load_checkpoint(tmp_path)
    assert ckpt["step"] == 4 and len(ckpt["rng"]) == 2  # one random state per process
    assert all(torch.equal(ckpt["model"][k], r0["state_dict"][k]) for k in ckpt["model"])
    assert run.stdout.count("step 4:") == 1, "only rank 0 should print"


def test_resume_warns_when_a_longer_run_stretches_the_schedule(tmp_path):
    make_trainer(cfg=config(max_iters=4, out_dir=tmp_path)).fit()
    with pytest.warns(UserWarning, match="lr_decay_iters=4"):
        make_trainer(cfg=config(max_iters=8, out_dir=tmp_path)).resume()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the same schedule, only longer: nothing to say
        make_trainer(cfg=config(max_iters=8, lr_decay_iters=4, out_dir=tmp_path)).resume()


def test_ctrl_c_during_a_step_lets_it_finish_then_saves(tmp_path, capsys):
    """A real SIGINT in the middle of step 3 (between forward and backward): the step completes,
    the checkpoint holds 3 whole steps, and resuming from it is exact."""
    import signal

    before = signal.getsignal(signal.SIGINT)  # Python's default, or "ignore" in a background job
    straight_model = tiny_gpt()
    straight = make_trainer(straight_model, config(max_iters=6)).fit()

    model = tiny_gpt()

    def ctrl_c_in_step_3(module, args, output):
        if trainer.step == 2 and module.training:
            os.kill(os.getpid(), signal.SIGINT)  # delivered at once, to the main thread
        return output

    hook = model.register_forward_hook(ctrl_c_in_step_3)
    trainer = make_trainer(model, config(max_iters=6, out_dir=tmp_path))
    with pytest.raises(KeyboardInterrupt):
        trainer.fit()
    hook.remove()
    assert trainer.step == 3 and load_checkpoint(tmp_path)["step"] == 3
    assert "interrupted at step 3" in capsys.readouterr().out
    assert signal.getsignal(signal.SIGINT) == before  # put back after fit()
    resumed_model = tiny_gpt(seed=5)
    resumed = make_trainer(resumed_model, config(max_iters=6, out_dir=tmp_path)).fit(resume=True)
    assert same_weights(resumed_model, straight_model) and resumed["loss"] == straight["loss"]


def test_resumes_a_checkpoint_written_with_a_scheduler(tmp_path):
    """Checkpoints from before the Trainer set the learning rate itself hold LambdaLR's state and
    its 'initial_lr' in the optimizer's groups; they still resume, exactly."""
    straight_model = tiny_gpt()
    straight = make_trainer(straight_model, config(max_iters=8)).fit()
    make_trainer(cfg=config(max_iters=4, lr_decay_iters=8, out_dir=tmp_path)).fit()
    ckpt = torch.load(tmp_path / "ckpt.pt", weights_only=True)
    ckpt["scheduler"] = {"base_lrs": [1e-3, 1e-3], "last_epoch": 4, "_step_count": 5, "_last_lr": [5e-4, 5e-4]}
    for group in ckpt["optimizer"]["param_groups"]:
        group.update(initial_lr=1e-3, lr=123.0, foreach=None, fused=None)  # whatever was saved, lr_at wins
    torch.save(ckpt, tmp_path / "ckpt.pt")
    resumed_model = tiny_gpt(seed=5)
    resumed = make_trainer(resumed_model, config(max_iters=8, out_dir=tmp_path)).fit(resume=True)
    assert same_weights(resumed_model, straight_model) and resumed["lr"] == straight["lr"]


def test_the_shipped_weights_load_but_do_not_resume(tmp_path):
    from minigpt import pretrained

    model, tok = mg.pretrained.load("shakespeare-char")
    ids_ = torch.tensor(tok.encode("ROMEO:\nBut soft, what light through yonder window breaks?\n" * 3))
    trainer = Trainer(model, ids_, None, config(max_iters=1, block_size=16))
    with pytest.raises(CheckpointError, match="weights only"):
        trainer.resume(pretrained.path("shakespeare-char"))


def test_evaluation_in_large_batches_is_the_mean_over_the_same_batches():
    """evaluate() runs several batches per forward pass; the result is the mean loss of the
    batches a one-at-a-time loop with the same generator would draw."""
    trainer = make_trainer(cfg=config(eval_iters=6, batch_size=3))
    got = trainer.evaluate()
    g = torch.Generator().manual_seed(trainer.config.seed + 1_000_003 * 1 + 1)  # the val split's stream
    trainer.model.eval()
    with torch.no_grad():
        losses = [trainer.model(*mg.data.get_batch(trainer.val_ids, 3, 16, generator=g)).loss for _ in range(6)]
    assert got["val"] == pytest.approx(torch.stack(losses).mean().item(), rel=1e-5)


def test_a_step_is_the_plain_loop_of_the_notebook():
    """The Trainer's steps give bit for bit the weights of the plain loop (lr_at, torch's
    clip_grad_norm_, AdamW on param_groups): with the clip threshold between the gradient norms,
    some steps are clipped and some are not, and both kinds must agree."""
    cfg = config(max_iters=8, grad_clip=0.7, eval_interval=100, learning_rate=1e-2)
    trainer = make_trainer(tiny_gpt(), cfg)
    history = trainer.fit()
    assert min(history["grad_norm"]) < 0.7 < max(history["grad_norm"])

    model = tiny_gpt()
    data = ids()[:1600]
    torch.manual_seed(cfg.seed)
    batches = torch.Generator().manual_seed(cfg.seed)
    opt = torch.optim.AdamW(param_groups(model, cfg.weight_decay), betas=(cfg.beta1, cfg.beta2),
                            **train_module._fastest_adamw(torch.device("cpu")))
    norms = []
    for it in range(cfg.max_iters):
        for group in opt.param_groups:
            group["lr"] = lr_at(it, cfg)
        x, y = mg.data.get_batch(data, cfg.batch_size, 16, generator=batches)
        model(x, targets=y).loss.backward()
        norms.append(torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip).item())
        opt.step()
        opt.zero_grad(set_to_none=True)
    assert history["grad_norm"] == norms
    assert same_weights(model, trainer.raw_model)
