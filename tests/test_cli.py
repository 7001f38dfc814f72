"""The command line: train, sample, chat and export, and the errors it prints instead of tracebacks."""

import io
import subprocess
import sys

import pytest

from minigpt.__main__ import main


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny model trained and exported by the CLI itself (FAST mode: seconds)."""
    out = tmp_path_factory.mktemp("run")
    rc = main(["train", "--fast", "--no-progress", "--out-dir", str(out), "--export", str(out / "weights.pt")])
    assert rc == 0
    return out


def test_train_writes_a_resumable_checkpoint_and_an_export(trained):
    import minigpt as mg

    ckpt = mg.load_checkpoint(trained / "ckpt.pt")
    assert ckpt["step"] == 30 and "optimizer" in ckpt
    model, tok = mg.load_model(trained / "weights.pt")
    assert model.config.n_layer == 2 and tok.vocab_size == model.config.vocab_size
    assert len(mg.load_checkpoint(trained / "weights.pt")["extra"]["history"]["loss"]) == 30


def test_sample_is_seeded(trained, capsys):
    args = ["sample", "--checkpoint", str(trained / "weights.pt"), "--prompt", "ROMEO:",
            "--max-new-tokens", "40", "--seed", "3"]
    assert main(args) == 0
    first = capsys.readouterr().out
    assert main(args) == 0
    assert capsys.readouterr().out == first
    assert first.startswith("ROMEO:") and len(first) > len("ROMEO:")


def test_sample_with_beam_search_and_a_shipped_model(capsys):
    assert main(["sample", "--pretrained", "shakespeare-char", "--prompt", "ROMEO:", "--beam-width", "3",
                 "--max-new-tokens", "20"]) == 0
    assert capsys.readouterr().out.startswith("ROMEO:")


def test_chat_takes_turns_until_an_empty_line(trained, capsys, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.StringIO("Good morrow.\nFarewell.\n\nnever read\n"))
    assert main(["chat", "--checkpoint", str(trained / "weights.pt"), "--them", "JULIET", "--seed", "0",
                 "--max-new-tokens", "30"]) == 0
    out = capsys.readouterr().out
    assert out.count("JULIET: ") == 2          # one reply per line, none after the empty line


def test_chat_survives_characters_the_model_never_saw(trained, capsys, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.StringIO("你好\nHello\n"))
    assert main(["chat", "--checkpoint", str(trained / "weights.pt"), "--max-new-tokens", "10", "--seed", "0"]) == 0
    out = capsys.readouterr().out
    assert "Try again" in out and out.count("JULIET: ") == 1


@pytest.mark.parametrize("extra, message", [
    (["--temperature", "-1"], "temperature"),
    (["--top-p", "1.5"], "top_p"),
    (["--top-k", "0"], "top_k"),
    (["--beam-width", "0"], "beam_width"),
])
def test_bad_sampling_options_are_explained(trained, capsys, extra, message):
    assert main(["sample", "--checkpoint", str(trained / "weights.pt"), "--max-new-tokens", "5", *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and message in err and "Traceback" not in err


def test_a_damaged_checkpoint_is_explained(trained, tmp_path, capsys):
    broken = tmp_path / "broken.pt"
    broken.write_bytes((trained / "weights.pt").read_bytes()[:1000])
    assert main(["sample", "--checkpoint", str(broken)]) == 2
    err = capsys.readouterr().err
    assert "error:" in err and str(broken) in err


def test_a_missing_text_file_is_explained(tmp_path, capsys):
    with pytest.raises(SystemExit, match="does not exist"):
        main(["train", "--fast", "--text-file", str(tmp_path / "nope.txt")])


@pytest.mark.parametrize("command", ["train", "sample", "chat", "export"])
def test_help_explains_every_option(command):
    out = subprocess.run([sys.executable, "-m", "minigpt", command, "--help"], capture_output=True, text=True,
                         check=True).stdout
    assert any(w.startswith("--") and w != "--help" for w in out.split())
    lines = out.splitlines()  # every option carries a description, on its line or the next
    for i, line in enumerate(lines):
        words = line.split()
        if words and words[0].startswith("--") and not words[0].startswith("--help"):
            has_help = len(" ".join(words[1:]).strip()) > len(words[0]) or (
                i + 1 < len(lines) and lines[i + 1].startswith(" " * 10) and not lines[i + 1].strip().startswith("--"))
            assert has_help, f"`{command} --help` gives no explanation for {words[0]}"


def test_train_flags_come_from_the_configs():
    """One flag per TrainConfig and GPTConfig field, with the config's default; older spellings still work."""
    import dataclasses

    from minigpt.__main__ import _config_from_args, build_parser
    from minigpt.model import GPTConfig
    from minigpt.train import TrainConfig

    parser = build_parser()
    args = parser.parse_args(["train"])
    for cls, skip in ((TrainConfig, {"block_size"}), (GPTConfig, {"vocab_size"})):
        for f in dataclasses.fields(cls):
            if f.name not in skip:
                assert getattr(args, f.name) == f.default, f"--{f.name.replace('_', '-')} default"
    assert _config_from_args(TrainConfig, args, block_size=None) == TrainConfig()
    old = parser.parse_args(["train", "--lr", "2e-3", "--grad-accum", "3", "--no-progress", "--compile"])
    new = parser.parse_args(["train", "--learning-rate", "2e-3", "--grad-accum-steps", "3", "--no-progress",
                             "--compile"])
    assert vars(old) == vars(new)
    tc = _config_from_args(TrainConfig, new)
    assert (tc.learning_rate, tc.grad_accum_steps, tc.progress, tc.compile) == (2e-3, 3, False, True)
    gc = _config_from_args(GPTConfig, parser.parse_args(["train", "--n-layer", "2", "--no-bias"]), vocab_size=10)
    assert (gc.n_layer, gc.bias, gc.vocab_size, gc.n_embd) == (2, False, 10, GPTConfig().n_embd)


def test_bad_flag_values_are_errors_not_tracebacks(capsys):
    assert main(["train", "--fast", "--no-progress", "--learning-rate", "-1"]) == 2
    assert "learning_rate" in capsys.readouterr().err


def test_chat_with_a_small_chat_model_caps_replies_to_its_window(capsys, monkeypatch):
    # the default --max-new-tokens (200) is longer than dailydialog-chat's 128-token window
    monkeypatch.setattr(sys, "stdin", io.StringIO("Hello, how are you?\n\n"))
    assert main(["chat", "--model", "dailydialog-chat", "--seed", "0"]) == 0
    out = capsys.readouterr().out
    assert "capped at 64 tokens" in out and "assistant:" in out
