"""Checks for notebook 08 (from a language model to a chat model): write the label mask of a
conversation, find the bug in a mask that also trains on the user's words, and pad a batch
without losing the end-of-turn token."""

from __future__ import annotations

import torch

from . import Hint, NotAttempted, exercise, not_attempted
from ..sft import IGNORE

# A small conversation, as ids with the role of the message each token belongs to. Ids 1-4 are the
# template's special tokens; the words are ids 10 and up, so a learner can read every case.
SPECIAL = {"<|system|>": 1, "<|user|>": 2, "<|assistant|>": 3, "<|end|>": 4}
_CONVERSATION = [  # (id, role of the message it belongs to)
    (1, "system"), (10, "system"), (11, "system"), (4, "system"),
    (2, "user"), (20, "user"), (21, "user"), (22, "user"), (4, "user"),
    (3, "assistant"), (30, "assistant"), (31, "assistant"), (4, "assistant"),
    (2, "user"), (23, "user"), (4, "user"),
    (3, "assistant"), (32, "assistant"), (33, "assistant"), (34, "assistant"), (4, "assistant"),
]
IDS = [i for i, _ in _CONVERSATION]
ROLES = [r for _, r in _CONVERSATION]


def reference_labels(ids, roles, special=SPECIAL) -> list:
    """ids where the assistant writes (its words and its <|end|>), IGNORE elsewhere: what
    ``minigpt.sft.encode_chat`` gives."""
    return [i if r == "assistant" and i != special["<|assistant|>"] else IGNORE for i, r in zip(ids, roles)]


def _explain(got, ids, roles, special) -> None:
    want = reference_labels(ids, roles, special)
    if len(got) != len(want):
        raise Hint(f"labels must have one entry per token ({len(want)}), got {len(got)}")
    for t, (g, w, i, r) in enumerate(zip(got, want, ids, roles)):
        if g == w:
            continue
        if g != IGNORE and g != i:
            raise Hint(f"the label at position {t} is {g}; a trained token's label is its own id ({i}), "
                       f"the others' {IGNORE} (the shift to the next token happens later, in the loss)")
        if r == "user" and g != IGNORE:
            raise Hint(f"position {t} is the user's (id {i}) and is trained: the model would learn to write "
                       f"the user's words (hint: only the assistant's tokens get a label)")
        if r == "system" and g != IGNORE:
            raise Hint(f"position {t} is the system prompt's and is trained (hint: the system prompt is "
                       f"context, never a target)")
        if i == special["<|assistant|>"]:
            raise Hint(f"position {t} is the <|assistant|> token that opens the turn; it is part of the "
                       f"prompt the template writes, not something the model must learn to write: -100")
        if i == special["<|end|>"] and g == IGNORE:
            raise Hint(f"position {t} is the assistant's <|end|>, and it is masked: the model would never "
                       f"learn to stop (hint: keep the end token of the assistant's turns)")
        raise Hint(f"position {t} (id {i}, {r}) should be {w}, got {g}")


@exercise
def label_mask(fn):
    """Check ``fn(ids, roles, special) -> labels`` against the reference mask."""
    got = fn(list(IDS), list(ROLES), dict(SPECIAL))
    if got is None:
        raise not_attempted("my_labels", "chat_finetuning")
    got = [int(g) for g in (got.tolist() if hasattr(got, "tolist") else got)]
    _explain(got, IDS, ROLES, SPECIAL)
    # the same on another conversation with other ids, so nothing is hard-wired
    special = {k: v + 100 for k, v in SPECIAL.items()}
    ids = [i + 100 if i < 5 else i for i in IDS[4:]]
    roles = ROLES[4:]
    again = fn(list(ids), list(roles), special)
    _explain([int(g) for g in (again.tolist() if hasattr(again, "tolist") else again)], ids, roles, special)
    n = sum(g != IGNORE for g in got)
    return f"{n} of {len(got)} tokens trained: the assistant's words and its <|end|>, nothing else"


def buggy_labels(ids, roles, special):
    """A mask with a bug: find it (it is the kind of bug that trains happily and quietly)."""
    return [IGNORE if r == "system" or i in (special["<|assistant|>"], special["<|user|>"]) else i
            for i, r in zip(ids, roles)]


@exercise
def find_the_bug(answer):
    """``answer``: which tokens does ``buggy_labels`` train that it should not? One of
    "system", "user", "assistant", "end"."""
    if answer is None:
        raise NotAttempted("not answered yet: answer is None. Compare the two lists above, set answer and run "
                           "the cell again")
    answer = str(answer).strip().lower().strip("'\" <|>")
    if answer in ("user", "the user", "user's words", "users"):
        return ("it trains on the user's words (and the <|end|> of the user's turns): the model learns to "
                "write the user's side too, and the loss looks fine while it does")
    if answer == "end":
        raise Hint("the assistant's <|end|> should be trained; look at which role's words get a label")
    if answer == "system":
        raise Hint("the system prompt is masked (its role is checked); look at the other side of the conversation")
    raise Hint("compare buggy_labels(IDS, ROLES, SPECIAL) with reference_labels(IDS, ROLES) position by position")


@exercise
def pad_batch(fn):
    """Check ``fn(examples, pad_id) -> (x, y)``: examples are (ids, labels) pairs; x [B, T] and y [B, T]."""
    end = SPECIAL["<|end|>"]
    short = (IDS[4:13], reference_labels(IDS[4:13], ROLES[4:13]))
    long = (IDS, reference_labels(IDS, ROLES))
    out = fn([long, short], end)  # padding with the end token itself: the classic trap
    if out is None:
        raise not_attempted("my_pad_batch", "chat_finetuning")
    x, y = (torch.as_tensor(t) for t in out)
    T = len(IDS) - 1
    if tuple(x.shape) != (2, T) or tuple(y.shape) != (2, T):
        raise Hint(f"x and y must be [2, {T}] here (the longest conversation minus one: x = ids[:-1], "
                   f"y = labels[1:]), got {list(x.shape)} and {list(y.shape)}")
    if x[0].tolist() != IDS[:-1]:
        raise Hint("x[b] must be the conversation's ids without the last one (x = ids[:-1])")
    if y[0].tolist() == long[1][:-1]:
        raise Hint("y is not shifted: y must be labels[1:], the label of the *next* token at every position")
    n_short = len(short[0]) - 1
    if (y[1, n_short:] != IGNORE).any():
        raise Hint(f"the padding positions of the short row have targets; they must be {IGNORE}")
    trained_ends = int((y == end).sum())
    want_ends = sum(label == end for _, labels in (long, short) for label in labels[1:])
    if trained_ends < want_ends:
        raise Hint("the assistant's <|end|> targets are gone: the pad token is <|end|> here, and masking "
                   "by id (y[y == pad_id] = -100) also masks the real end of every reply, so the model never "
                   "learns to stop (hint: mask by position, after each conversation's length)")
    if y[0].tolist() != long[1][1:] or y[1, :n_short].tolist() != short[1][1:]:
        raise Hint("y[b] must be labels[1:] followed by -100 for the padding")
    if x[1, n_short:].tolist() != [end] * (T - n_short):
        raise Hint("fill x's padding positions with pad_id")
    return "right-padded, padding never a target, and every reply's <|end|> still trained"
