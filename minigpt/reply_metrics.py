"""How good and how varied are a chatbot's replies: corpus BLEU-n and distinct-n.

    bleu(references, replies, max_n=2)     # overlap with the true replies, 0..1
    distinct(replies, n=1), distinct(replies, n=2)   # share of n-grams that are different, 0..1

Texts are split into units by ``units``: words for English (``str.split``, the default), or
characters for Chinese (``units=list``). BLEU-n is Papineni et al.'s corpus BLEU: the geometric
mean of the clipped n-gram precisions for n = 1..max_n (uniform weights), times the brevity
penalty exp(1 - r/c) when the replies (c units) are shorter than the references (r units).
Without smoothing: if some order has no match at all, BLEU is 0. distinct-n (Li et al., 2016)
counts different n-grams over all n-grams of all replies: a bot that always says "I don't know"
scores near 0.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Callable, Sequence

from .checks import check_int


def _ngrams(units: Sequence[str], n: int) -> Counter:
    return Counter(tuple(units[i:i + n]) for i in range(len(units) - n + 1))


def _texts(texts, what: str) -> list[str]:
    if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
        raise ValueError(f"{what} must be a list of str (one text per reply)")
    return list(texts)


def bleu(references: Sequence[str], replies: Sequence[str], max_n: int = 2,
         units: Callable[[str], list] = str.split) -> float:
    """Corpus BLEU-max_n of ``replies`` against one reference each (lists of the same length)."""
    check_int(max_n, "max_n", low=1)
    references, replies = _texts(references, "references"), _texts(replies, "replies")
    if len(references) != len(replies) or not replies:
        raise ValueError(f"give one reference per reply (got {len(references)} references, {len(replies)} replies)")
    matched, total = [0] * max_n, [0] * max_n
    ref_len = hyp_len = 0
    for ref, hyp in zip(references, replies):
        r, h = units(ref), units(hyp)
        ref_len, hyp_len = ref_len + len(r), hyp_len + len(h)
        for n in range(1, max_n + 1):
            ref_counts, hyp_counts = _ngrams(r, n), _ngrams(h, n)
            matched[n - 1] += sum(min(c, ref_counts[g]) for g, c in hyp_counts.items())  # clipped
            total[n - 1] += sum(hyp_counts.values())
    if hyp_len == 0 or min(matched) == 0:
        return 0.0
    log_precision = sum(math.log(m / t) for m, t in zip(matched, total)) / max_n
    brevity = min(0.0, 1.0 - ref_len / hyp_len)
    return math.exp(log_precision + brevity)


def distinct(replies: Sequence[str], n: int = 1, units: Callable[[str], list] = str.split) -> float:
    """Different n-grams / all n-grams over every reply (0.0 when the replies have no n-gram)."""
    check_int(n, "n", low=1)
    counts = Counter()
    for reply in _texts(replies, "replies"):
        counts.update(_ngrams(units(reply), n))
    total = sum(counts.values())
    return len(counts) / total if total else 0.0
