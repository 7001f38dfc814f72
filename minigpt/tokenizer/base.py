"""What every tokenizer shares: the error type, printable token strings, input checks, and the
``Tokenizer`` base class (special-token splitting, id checks, ``save`` / ``load``).

A tokenizer turns text into the integer ids a model reads and ids back into text:

    ids = tok.encode("To be, or not to be")     # list[int]
    tok.decode(ids)                             # the text again
    [tok.token_str(i) for i in ids]             # what each id stands for, printable
"""

from __future__ import annotations

import codecs
import re
from functools import lru_cache
from pathlib import Path

from ..checks import is_int

FORMAT_VERSION = 1  # of the JSON files (tok.to_dict()); bump when the layout changes


class TokenizerError(ValueError):
    """Text a tokenizer cannot encode, ids it cannot decode, or a file that is not a tokenizer."""


# ----------------------------------------------------------------------------- display helpers

_ESCAPES = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}


def _printable(s: str) -> str:
    """``s`` with line breaks, tabs and other invisible characters written as escapes."""
    return "".join(_ESCAPES.get(c) or (c if c.isprintable() else c.encode("unicode_escape").decode("ascii"))
                   for c in s)


def _hex_bytes(err: UnicodeDecodeError):
    """Codec error handler: show each byte that is not valid UTF-8 on its own as <0xE4>."""
    return "".join(f"<0x{b:02X}>" for b in err.object[err.start:err.end]), err.end


codecs.register_error("minigpt.hexbytes", _hex_bytes)


def _bytes_str(b: bytes) -> str:
    """Printable form of a token's bytes: its text where it is valid UTF-8, else <0xE4> per byte."""
    return _printable(b.decode("utf-8", errors="minigpt.hexbytes"))


# ----------------------------------------------------------------------------- input checks

def _check_text(text, what: str = "encode") -> None:
    if not isinstance(text, str):
        hint = "; decode the bytes first, e.g. data.decode('utf-8')" if isinstance(text, (bytes, bytearray)) else ""
        raise TypeError(f"{what} takes a str, got {type(text).__name__}{hint}")


def _surrogate_error(text: str) -> TokenizerError:
    i = next(i for i, c in enumerate(text) if 0xD800 <= ord(c) <= 0xDFFF)
    return TokenizerError(
        f"text holds a lone surrogate {text[i]!r} at position {i}, which is not a character and has "
        f"no UTF-8 bytes; such text usually comes from a bad decode: read the file with encoding='utf-8'")


def _check_special_tokens(special_tokens) -> list[str]:
    if isinstance(special_tokens, str):
        raise ValueError(f"special_tokens must be a list of strings, e.g. ({special_tokens!r},), "
                         f"not a single string")
    specials = list(special_tokens)
    for s in specials:
        if not isinstance(s, str) or not s:
            raise ValueError(f"special tokens must be non-empty strings, got {s!r}")
        try:
            s.encode("utf-8")
        except UnicodeEncodeError:
            raise _surrogate_error(s) from None
    if len(set(specials)) != len(specials):
        raise ValueError(f"special_tokens has duplicates: {specials}")
    return specials


@lru_cache(maxsize=64)
def _special_splitter(specials: tuple):
    """Regex that splits text around the given special tokens, keeping them (longest first, so
    '<|a|>x' wins over '<|a|>' when both are special)."""
    ordered = sorted(specials, key=len, reverse=True)
    return re.compile("(" + "|".join(re.escape(s) for s in ordered) + ")")


# ----------------------------------------------------------------------------- shared interface

class Tokenizer:
    """What every tokenizer shares: special-token splitting, id checks, save/load."""

    special_tokens: dict  # special token text -> id

    @property
    def vocab_size(self) -> int:
        raise NotImplementedError

    def __len__(self) -> int:
        return self.vocab_size

    def _split_specials(self, text: str, allowed_special) -> list:
        """Cut text around the allowed special tokens: [(piece, None) | (special, id), ...].

        allowed_special: "all", "none", or a set of special token strings. Special tokens that
        are not allowed stay in the text and are encoded as ordinary characters.
        """
        if allowed_special == "all":
            allowed = tuple(self.special_tokens)
        elif allowed_special == "none":
            allowed = ()
        elif isinstance(allowed_special, str):
            raise ValueError(f"allowed_special must be 'all', 'none' or a set of special tokens, "
                             f"got {allowed_special!r}")
        else:
            try:
                allowed = tuple(sorted(set(allowed_special)))
            except TypeError:
                raise ValueError(f"allowed_special must be 'all', 'none' or a set of special tokens, "
                                 f"got {allowed_special!r}") from None
            unknown = [s for s in allowed if s not in self.special_tokens]
            if unknown:
                raise ValueError(f"{unknown} are not special tokens of this tokenizer; "
                                 f"it has {list(self.special_tokens)}")
        if not allowed:
            return [(text, None)]
        parts = _special_splitter(allowed).split(text)  # ordinary, special, ordinary, ...
        return [(p, self.special_tokens[p] if i % 2 else None) for i, p in enumerate(parts) if p]

    def _bad_ids_error(self, ids) -> TokenizerError:
        for i in ids:
            if isinstance(i, (list, tuple)):
                return TokenizerError("decode takes a 1-D sequence of token ids, got a nested one; "
                                      "decode each row on its own: [tok.decode(row) for row in ids]")
            if not is_int(i) or not 0 <= i < self.vocab_size:
                return TokenizerError(f"token id {i!r} is out of range: this tokenizer's ids are "
                                      f"0..{self.vocab_size - 1}; were these ids made by another tokenizer?")
        return TokenizerError(f"cannot decode {ids!r}")

    @staticmethod
    def _id_list(ids) -> list:
        """ids (list, tuple, 1-D tensor or array) as a Python list of ints."""
        if hasattr(ids, "tolist"):  # torch tensor or numpy array
            ids = ids.tolist()
        if isinstance(ids, int):
            raise TokenizerError(f"decode takes a sequence of ids, got the single id {ids}; "
                                 f"use decode([id]) or token_str(id)")
        if isinstance(ids, (str, bytes)):
            raise TypeError(f"decode takes a sequence of token ids, got {type(ids).__name__}")
        return ids

    def _check_id(self, i) -> None:
        if not is_int(i) or not 0 <= i < self.vocab_size:
            raise TokenizerError(f"token id {i!r} is out of range: this tokenizer's ids are 0..{self.vocab_size - 1}")

    def to_dict(self) -> dict:
        raise NotImplementedError

    @classmethod
    def _check_header(cls, d) -> None:
        if not isinstance(d, dict):
            raise TokenizerError(f"not a tokenizer: expected a JSON object, got {type(d).__name__}")
        if d.get("type") != cls.__name__:
            raise TokenizerError(f"this is not a {cls.__name__} but {d.get('type')!r}; "
                                 f"load_tokenizer(path) picks the right class")
        version = d.get("version")
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise TokenizerError(f"{cls.__name__} file version {version!r} is not one this minigpt reads "
                                 f"(up to {FORMAT_VERSION}); upgrade minigpt")

    def save(self, path) -> Path:
        """Write the tokenizer as a small JSON file (atomically); returns the path."""
        from .files import save_tokenizer  # files.py knows every class, so it is imported late
        return save_tokenizer(self, path)

    @classmethod
    def load(cls, path):
        """Load a tokenizer of this class saved with ``save``; ``load_tokenizer(path)`` takes any class."""
        from .files import load_tokenizer
        return load_tokenizer(path, kind=cls)
