"""Tokenizer files: small JSON objects (``tok.to_dict()``) with a ``type`` field, written atomically.

    tok.save("tok.json")
    load_tokenizer("tok.json")                  # whichever class it is
    BPETokenizer.load("tok.json")               # the same, and checks it is a BPETokenizer
"""

from __future__ import annotations

import json
from pathlib import Path

from ..files import atomic_file
from .base import TokenizerError
from .bpe import BPETokenizer
from .char import CharTokenizer

KINDS = {"CharTokenizer": CharTokenizer, "BPETokenizer": BPETokenizer}  # JSON "type" -> class


def save_tokenizer(tok, path) -> Path:
    """Write ``tok.to_dict()`` to ``path`` as JSON through ``atomic_file`` (a crash never leaves
    half a tokenizer file); returns the path."""
    path = Path(path)
    with atomic_file(path, "w", encoding="utf-8") as f:
        f.write(json.dumps(tok.to_dict()) + "\n")
    return path


def tokenizer_from_dict(d: dict, kind: type | None = None):
    """The tokenizer described by ``d`` (a ``to_dict()`` result), of the class its ``type`` names;
    ``kind``, when given, is the class it must be."""
    if kind is not None:
        return kind.from_dict(d)
    if not isinstance(d, dict) or d.get("type") not in KINDS:
        got = f"type {d.get('type')!r}" if isinstance(d, dict) and "type" in d else (
            f"keys {sorted(d)[:8]}" if isinstance(d, dict) else type(d).__name__)
        raise TokenizerError(f"not a tokenizer: expected a JSON object whose 'type' is one of "
                             f"{sorted(KINDS)}, got {got}; tokenizer files are written by tok.save(path)")
    return KINDS[d["type"]].from_dict(d)


def load_tokenizer(path, kind: type | None = None):
    """Load a tokenizer saved with ``tok.save(path)``, whichever class it is (or, with ``kind``,
    checking it is that class). Errors name the file."""
    path = Path(path)
    try:
        return tokenizer_from_dict(_read_json(path), kind)
    except TokenizerError as e:
        raise TokenizerError(f"{e}" if str(path) in str(e) else f"{path}: {e}") from None


def _read_json(path: Path) -> dict:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise TokenizerError(f"{path} is not a tokenizer file: it is not text (a model checkpoint? "
                             f"load those with minigpt.checkpoint.load_model)") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise TokenizerError(f"{path} is not a tokenizer file: it is not valid JSON ({e}); "
                             f"tokenizer files are written by tok.save(path)") from None
