"""Argument checks shared by every config and function, so each rule and its message is written once.

    check_int(batch_size, "TrainConfig.batch_size", low=1)
    check_number(top_p, "top_p", 0, 1, low_open=True)
    config = from_dict(TrainConfig, saved)          # a dataclass back from its dict, unknown keys named

Python's ``bool`` is an ``int`` (``True == 1``), so a stray ``True`` would pass as a count of 1:
every check here refuses bools where a number is meant.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import fields

import torch


def is_int(value) -> bool:
    """True for a whole number (an int, or a NumPy integer), False for bools, floats and all else."""
    return type(value) is int or isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_int(value, name: str, low: int | None = None, allow_none: bool = False) -> None:
    """Raise ValueError unless ``value`` is an integer (not a bool) >= ``low`` (or None when allowed)."""
    if value is None and allow_none:
        return
    if not is_int(value) or (low is not None and value < low):
        at_least = f" >= {low}" if low is not None else ""
        none = " (or None)" if allow_none else ""
        raise ValueError(f"{name} must be an integer{at_least}{none}, got {value!r}")


def check_number(value, name: str, low: float = -math.inf, high: float = math.inf, low_open: bool = False,
                 high_open: bool = False, allow_none: bool = False) -> None:
    """Raise ValueError unless ``value`` is a finite int or float (not a bool) in the interval from
    ``low`` to ``high``, each end closed unless ``low_open`` / ``high_open`` (or None when allowed)."""
    if value is None and allow_none:
        return
    ok = (not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
          and (value > low if low_open else value >= low) and (value < high if high_open else value <= high))
    if not ok:
        lo = "(" if low_open or low == -math.inf else "["
        hi = ")" if high_open or high == math.inf else "]"
        raise ValueError(f"{name} must be a number in {lo}{low}, {high}{hi}, got {value!r}")


def check_bool(value, name: str) -> None:
    """Raise ValueError unless ``value`` is True or False (not 0, 1 or "yes")."""
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, got {value!r}")


def from_dict(cls, d: dict):
    """Build the dataclass ``cls`` from a dict of its fields (e.g. ``to_dict()``'s output, read back
    from a checkpoint); a key that is not a field raises ValueError naming it and the known fields."""
    known = {f.name for f in fields(cls)}
    unknown = set(d) - known
    if unknown:
        raise ValueError(f"unknown {cls.__name__} fields {sorted(unknown)}; known fields are {sorted(known)}")
    return cls(**d)


def as_ids(ids, what: str = "ids") -> torch.Tensor:
    """Token ids as a 1-D integer tensor: a list of ints, or a 1-D integer tensor / array (not copied).

    Raises ValueError for text (encode it first), floats, bools, or anything not 1-D.
    """
    if isinstance(ids, str):
        raise ValueError(f"{what} is a str; encode it into token ids first, e.g. tok.encode(text)")
    t = torch.as_tensor(ids)
    if t.dim() != 1 or t.dtype.is_floating_point or t.dtype.is_complex or t.dtype == torch.bool:
        raise ValueError(f"{what} must be a 1-D sequence of integer token ids, got {t.dim()}-D {t.dtype}")
    return t


def check_ids_in_vocab(ids: torch.Tensor, vocab_size: int, what: str = "ids") -> None:
    """Raise ValueError when a token id in ``ids`` falls outside 0..vocab_size-1 (one pass over the ids)."""
    if ids.numel() == 0:
        return
    lo, hi = torch.aminmax(ids)
    lo, hi = int(lo), int(hi)
    if lo < 0 or hi >= vocab_size:
        raise ValueError(f"{what} holds token id {lo if lo < 0 else hi}, outside the model's vocabulary "
                         f"(0..{vocab_size - 1}); build the model with vocab_size=tok.vocab_size of "
                         f"the tokenizer that encoded the text")
