"""Atomic file writes, shared by checkpoints, tokenizer files and corpus downloads; file hashes.

    with atomic_file(path, "wb") as f:
        torch.save(obj, f)

Readers see the old file or the complete new one, never half of one: a crash, an error or
Ctrl-C inside the block leaves ``path`` as it was and no temporary file behind.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path


def _new_file_mode(path: Path) -> int:
    """The permissions ``path`` has, or those a plain open() would give a new file (0o666 less umask)."""
    try:
        return path.stat().st_mode & 0o777
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def _fsync_folder(folder: Path) -> None:
    """Make a rename durable (POSIX; harmless to skip where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def atomic_file(path, mode: str = "wb", encoding: str | None = None):
    """Open a temporary file beside ``path`` for writing (``mode`` "wb" or "w"); when the block
    ends without error, flush it to disk and rename it over ``path`` (atomic within a folder).
    On any exception, KeyboardInterrupt included, delete the temporary file and re-raise."""
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_file writes whole files: mode must be 'wb' or 'w', got {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        if hasattr(os, "fchmod"):  # mkstemp makes files only we can read; give the usual permissions
            os.fchmod(fd, _new_file_mode(path))
        with os.fdopen(fd, mode, encoding=encoding if "b" not in mode else None) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_folder(path.parent)


def sha256_file(path) -> str:
    """The sha256 of a file's bytes, as hex, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
