"""atomic_file: the whole new file or the old one, never half, and ordinary permissions."""

import os

import pytest

from minigpt.files import atomic_file


def _leftovers(folder):
    return [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]


def test_writes_bytes_and_text(tmp_path):
    with atomic_file(tmp_path / "sub" / "a.bin") as f:
        f.write(b"\x00\x01")
    with atomic_file(tmp_path / "b.txt", "w", encoding="utf-8") as f:
        f.write("héllo 世界")
    assert (tmp_path / "sub" / "a.bin").read_bytes() == b"\x00\x01"
    assert (tmp_path / "b.txt").read_text(encoding="utf-8") == "héllo 世界"


@pytest.mark.parametrize("error", [RuntimeError("disk on fire"), KeyboardInterrupt()])
def test_a_failure_keeps_the_old_file_and_leaves_no_temporary(tmp_path, error):
    path = tmp_path / "ckpt.pt"
    path.write_bytes(b"old")
    with pytest.raises(type(error)):
        with atomic_file(path) as f:
            f.write(b"half of the new")
            raise error
    assert path.read_bytes() == b"old"
    assert _leftovers(tmp_path) == []


def test_new_files_get_the_usual_permissions_and_old_ones_keep_theirs(tmp_path):
    umask = os.umask(0)
    os.umask(umask)
    with atomic_file(tmp_path / "new.txt", "w") as f:
        f.write("x")
    assert (tmp_path / "new.txt").stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's private 0600
    (tmp_path / "kept.txt").write_text("x")
    os.chmod(tmp_path / "kept.txt", 0o640)
    with atomic_file(tmp_path / "kept.txt", "w") as f:
        f.write("y")
    assert (tmp_path / "kept.txt").stat().st_mode & 0o777 == 0o640


def test_only_whole_file_writes(tmp_path):
    with pytest.raises(ValueError, match="mode must be 'wb' or 'w'"):
        with atomic_file(tmp_path / "x", "a"):
            pass


def test_tokenizer_files_are_readable_by_others(tmp_path):
    import minigpt as mg

    umask = os.umask(0)
    os.umask(umask)
    path = mg.CharTokenizer.from_text("abc").save(tmp_path / "tok.json")
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask
