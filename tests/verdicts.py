"""How the exercise tests read a check's verdict: the one line it printed, starting with ✓, ✗
(with the hint's key words) or ○ (not attempted)."""


def verdict(capsys, check, *args, **kwargs):
    """Run a check; return (verdict, the one line it printed)."""
    v = check(*args, **kwargs)
    out = capsys.readouterr().out.strip()
    assert out.count("\n") == 0, out
    return v, out


def right(capsys, check, *args, **kwargs):
    v, line = verdict(capsys, check, *args, **kwargs)
    assert v and line.startswith("✓"), line
    return line


def wrong(capsys, check, *args, words=(), **kwargs):
    v, line = verdict(capsys, check, *args, **kwargs)
    assert not v and line.startswith("✗"), line
    for w in words:
        assert w in line, (w, line)
    return line


def skipped(capsys, check, *args, **kwargs):
    v, line = verdict(capsys, check, *args, **kwargs)
    assert not v and line.startswith("○") and "not" in line, line
