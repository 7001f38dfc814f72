"""Checks for notebook 01 (tokenization): counting pairs, merging a pair, encoding with learned
merges, and a question answered with the TokenizerExplorer."""

from __future__ import annotations

from collections import Counter

from . import Hint, exercise, not_attempted
from ..tokenizer import BPETokenizer


@exercise
def get_pair_counts(fn):
    """Check ``fn(ids) -> {(a, b): count}`` over every adjacent pair."""
    got = fn([1, 2, 3, 1, 2])
    if got is None:
        raise not_attempted("get_pair_counts", "tokenization")
    want = {(1, 2): 2, (2, 3): 1, (3, 1): 1}
    got = dict(got)
    if got == want:
        for ids in ([], [7], [5, 5, 5, 5], [1, 2, 1, 2, 1], list(b"the theatre")):
            if dict(fn(list(ids))) != dict(Counter(zip(ids, ids[1:]))):
                raise Hint(f"almost: for {ids} you return {dict(fn(list(ids)))} (hint: check short lists and "
                           f"repeated ids like [5, 5, 5, 5], which holds 3 pairs (5, 5))")
        return "get_pair_counts counts every overlapping pair"
    if any(not (isinstance(k, tuple) and len(k) == 2) for k in got):
        raise Hint(f"the keys must be pairs (a, b) of neighbouring ids, got keys {list(got)[:4]}")
    if got == dict(Counter(zip([1, 3, 2], [2, 1]))):
        raise Hint("you stepped two at a time, so (2, 3) was skipped (hint: pairs overlap, every id but the "
                   "last starts one; zip(ids, ids[1:]) walks over all of them)")
    if {(b, a) for a, b in got} == set(want):
        raise Hint("your pairs are reversed (hint: (a, b) means 'a followed by b', so [1, 2] holds (1, 2))")
    if set(got) == set(want) and set(got.values()) == {1}:
        raise Hint("you found which pairs occur but not how often: (1, 2) occurs twice (hint: add 1 each "
                   "time you see a pair)")
    if sum(got.values()) == 3:
        raise Hint(f"you counted 3 of the 4 pairs, got {got} (hint: a list of n ids has n - 1 adjacent pairs)")
    raise Hint(f"for [1, 2, 3, 1, 2] the answer is {want}, you returned {got}")


@exercise
def merge(fn):
    """Check ``fn(ids, pair, new_id) -> new list`` with every non-overlapping pair replaced."""
    cases = [  # (ids, pair, new_id, expected, hint when wrong)
        ([1, 2, 3, 1, 2], (1, 2), 4, [4, 3, 4], "replace each (1, 2) by 4 and keep the other ids"),
        ([1, 2, 1], (1, 2), 9, [9, 1], "when no pair starts at the last position, keep that last id"),
        ([3, 1, 2], (1, 2), 4, [3, 4], "a pair at the very end must be merged too"),
        ([1, 1, 1], (1, 1), 5, [5, 1], "after merging a pair, skip both of its ids: in [1, 1, 1] the middle 1 "
                                       "cannot be used twice"),
        ([2, 1, 2, 1], (1, 2), 7, [2, 7, 1], "order matters: (1, 2) is a 1 followed by a 2"),
        ([], (1, 2), 4, [], "an empty list stays empty"),
    ]
    if fn([1, 2, 3, 1, 2], (1, 2), 4) is None:
        raise not_attempted("merge", "tokenization")
    for ids, pair, new_id, want, hint in cases:
        original = list(ids)
        try:
            got = fn(ids, pair, new_id)
        except IndexError as e:
            raise Hint(f"merge({original}, {pair}, {new_id}) raised IndexError ({e}) (hint: look at ids[i + 1] "
                       f"only while i + 1 < len(ids))") from e
        if ids != original:
            raise Hint("merge changed the list it was given (hint: build and return a new list)")
        if list(got) != want:
            if new_id in got and len(got) == len(ids) > 1:
                hint = "you put new_id in but kept the second id of the pair as well: after a merge, skip both (i += 2)"
            raise Hint(f"merge({original}, {pair}, {new_id}) should give {want}, got {list(got)} (hint: {hint})")
    return "merge replaces pairs left to right without overlaps"


def _greedy_by_frequency(s: str, merges: dict) -> list:
    """The typical wrong encoder: merge whichever learned pair is most frequent in this text."""
    ids = list(s.encode("utf-8"))
    while len(ids) > 1:
        counts = {p: c for p, c in Counter(zip(ids, ids[1:])).items() if p in merges}
        if not counts:
            break
        pair = max(counts, key=counts.get)
        out, i = [], 0
        while i < len(ids):
            if i + 1 < len(ids) and (ids[i], ids[i + 1]) == pair:
                out.append(merges[pair])
                i += 2
            else:
                out.append(ids[i])
                i += 1
        ids = out
    return ids


@exercise
def bpe_encode(fn, merges: dict, sample: str = ""):
    """Check ``fn(text, merges) -> ids`` against ``mg.BPETokenizer`` built from the same plain merges."""
    reference = BPETokenizer(list(merges.items()), special_tokens=(), pattern=r"[\s\S]+")
    tests = ["", "a", "the theatre", "To be, or not to be: that is the question.", sample[:300], "你好 🎭"]
    if fn("the", merges) is None:
        raise not_attempted("bpe_encode", "tokenization")
    for s in tests:
        try:
            got = fn(s, merges)
        except KeyError as e:
            raise Hint(f"KeyError {e} on {s!r}: most pairs of a text were never learned (hint: look ranks up with "
                       f"merges.get(pair, float('inf')) and stop when the best pair is not in merges)") from e
        want = reference.encode(s)
        if list(got) == want:
            continue
        if list(got) == list(s.encode("utf-8")):
            raise Hint(f"{s!r}: you returned the raw bytes (hint: apply the merges)")
        if list(got) == _greedy_by_frequency(s, merges):
            raise Hint(f"{s!r}: you merged the most frequent pair of this text (hint: encoding replays the "
                       f"training, so always merge the pair that was learned first, the smallest new id)")
        if reference.decode(list(got)) != s:
            raise Hint(f"{s!r}: your ids do not decode back to the text (hint: did you lose or duplicate ids "
                       f"while merging?)")
        raise Hint(f"{s!r}: expected {want}, got {list(got)} (hint: apply merges until no learned pair is left, "
                   f"each time the one with the smallest new id)")
    return "your encoder gives exactly the package's ids"


@exercise
def token_counts(answer, tokenizers: dict, text: str):
    """Widget question: ``answer`` is {tokenizer name: number of tokens of ``text``}, read off the explorer."""
    if answer is None:
        raise not_attempted("answer", "tokenization")
    if not isinstance(answer, dict):
        raise Hint(f"answer with a dict {{name: number of tokens}}, e.g. {{{next(iter(tokenizers))!r}: 7}}")
    unknown = set(answer) - set(tokenizers)
    if unknown:
        raise Hint(f"{sorted(unknown)} are not names in the explorer (hint: use {sorted(tokenizers)})")
    missing = set(tokenizers) - set(answer)
    if missing:
        raise Hint(f"give a count for every tokenizer in the explorer; missing {sorted(missing)}")
    for name, tok in tokenizers.items():
        n = len(tok.encode(text))
        if answer[name] != n:
            chars, raw = len(text), len(text.encode("utf-8"))
            hint = (f"that is the number of characters, not of tokens" if answer[name] == chars else
                    f"that is the number of UTF-8 bytes; this tokenizer merges some of them" if answer[name] == raw
                    else f"type {text!r} into the box and read the count above the boxes")
            raise Hint(f"{name}: {answer[name]} tokens is not right (hint: {hint})")
    counts = ", ".join(f"{name} {len(t.encode(text))}" for name, t in tokenizers.items())
    return f"{text!r} takes {counts} tokens"
