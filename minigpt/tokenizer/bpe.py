"""``BPETokenizer``: byte-level byte-pair encoding, as in GPT-2 and GPT-4.

It starts from the 256 byte values, so *any* text can be encoded, then learns merges: again and
again, the most frequent adjacent pair of tokens becomes one new token. Text is first cut into
chunks (words, numbers, punctuation, runs of spaces) by a regular expression, so a merge never
crosses a word boundary.

In course order: the split patterns, ``count_pairs`` and ``merge_pair`` (the two steps of one
merge), the two learners (recount every pair before each merge, or keep the counts and fix up
only what a merge changes), then the tokenizer that trains, encodes and decodes with them.

    tok = BPETokenizer.train(text, vocab_size=512)
    ids = tok.encode("To be, or not to be")     # list[int]
"""

from __future__ import annotations

import heapq
import re
import time
import warnings
from collections import Counter, defaultdict

from ..checks import is_int
from .base import (FORMAT_VERSION, Tokenizer, TokenizerError, _bytes_str, _check_special_tokens, _check_text,
                   _special_splitter, _surrogate_error)

# ----------------------------------------------------------------------------- split patterns

# How text is cut into chunks before BPE. These are GPT-2's and GPT-4's (cl100k) patterns,
# rewritten for Python's own ``re``, which lacks ``\p{L}`` (letter) and ``\p{N}`` (number):
#   letter                    -> [^\W\d_]   (a word character that is neither a digit nor '_')
#   not letter and not number -> [^\w] or '_'
# The one difference: numeric symbols that are not decimal digits ('²', '½', 'Ⅻ') count as
# letters here. GPT-4's possessive quantifiers (?+, ++) are dropped: nothing after them can
# backtrack into them, so they match the same chunks.
GPT2_SPLIT_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?[^\W\d_]+| ?\d+| ?(?:[^\s\w]|_)+|\s+(?!\S)|\s+"""
GPT4_SPLIT_PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)"""         # contractions: 's 'd 'm 't 'll 've 're
    r"""|(?:[^\r\n\w]|_)?[^\W\d_]+"""    # a word, with the one space or mark before it
    r"""|\d{1,3}"""                      # numbers, at most three digits to a chunk
    r"""| ?(?:[^\s\w]|_)+[\r\n]*"""      # punctuation, with one space before it
    r"""|\s*[\r\n]"""                    # line breaks, with the spaces before them
    r"""|\s+(?!\S)"""                    # spaces, leaving the last one to the next word
    r"""|\s+"""
)

_ENCODE_CACHE_LIMIT = 100_000  # distinct chunks remembered by BPETokenizer.encode


def _compile_pattern(pattern: str):
    """Compile a split pattern with ``re``; patterns written with ``\\p{L}`` classes need the
    third-party ``regex`` module, used only when present."""
    if not isinstance(pattern, str) or not pattern:
        raise ValueError(f"pattern must be a non-empty regular expression string, got {pattern!r}")
    try:
        return re.compile(pattern)
    except re.error as e:
        try:
            import regex
        except ImportError:
            raise ValueError(f"split pattern {pattern!r} does not compile with Python's re ({e}); "
                             f"patterns with \\p{{L}}-style classes need `pip install regex`") from None
        return regex.compile(pattern)


def split_chunks(compiled, text: str) -> list[str]:
    """Cut text into chunks with the split pattern. The built-in patterns match every character;
    for a custom pattern that skips some, the skipped stretches become chunks too, so no text is lost."""
    if compiled.groups == 0:  # findall gives whole matches only when the pattern has no groups
        chunks = compiled.findall(text)
        if sum(map(len, chunks)) == len(text):
            return chunks
    chunks, pos = [], 0
    for m in compiled.finditer(text):
        if m.start() > pos:
            chunks.append(text[pos:m.start()])
        if m.end() > m.start():
            chunks.append(m.group())
        pos = max(pos, m.end())
    if pos < len(text):
        chunks.append(text[pos:])
    return chunks


# ----------------------------------------------------------------------------- one merge

def count_pairs(ids, counts: dict | None = None, weight: int = 1) -> dict:
    """Add ``weight`` to counts[(a, b)] for every adjacent pair in ids; returns counts.

    count_pairs([1, 2, 3, 1, 2]) -> {(1, 2): 2, (2, 3): 1, (3, 1): 1}
    """
    counts = {} if counts is None else counts
    for pair in zip(ids, ids[1:]):
        counts[pair] = counts.get(pair, 0) + weight
    return counts


def merge_pair(ids, pair: tuple, new_id: int) -> list:
    """Replace every occurrence of ``pair`` in ids (left to right, no overlaps) by ``new_id``.

    merge_pair([1, 2, 3, 1, 2], (1, 2), 4) -> [4, 3, 4]
    """
    a, b = pair
    out, i, n = [], 0, len(ids)
    while i < n:
        if i + 1 < n and ids[i] == a and ids[i + 1] == b:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


# ----------------------------------------------------------------------------- learners

def _best(item):
    """Sort key for (pair, count): the most frequent first; among equals, the smallest pair."""
    pair, count = item
    return -count, pair


def _merges_by_recount(words: list, freqs: list, num_merges: int):
    """The readable way to learn merges: before each merge, count every pair from scratch.

    words: each distinct chunk as a list of token ids; freqs: how often each chunk occurs.
    Yields (pair, count) for each merge in learning order; merge k makes id 256 + k.
    """
    words = [list(w) for w in words]
    for step in range(num_merges):
        counts = {}
        for w, f in zip(words, freqs):
            count_pairs(w, counts, f)
        if not counts:
            return  # every chunk is a single token: nothing left to merge
        pair, count = min(counts.items(), key=_best)
        words = [merge_pair(w, pair, 256 + step) if len(w) > 1 else w for w in words]
        yield pair, count


def _merges_incremental(words: list, freqs: list, num_merges: int):
    """Learn the same merges as ``_merges_by_recount``, fast.

    A merge changes only the chunks that contain its pair, so we keep the pair counts between
    merges and fix up only those chunks: an index pair -> chunks holding it says which, and a
    heap of (-count, pair) finds the most frequent pair. Counts change as we merge, so heap
    entries go stale; instead of deleting them we push the new count and skip stale entries
    when they surface. Ties go to the smallest pair, as in the recount.
    """
    words = [list(w) for w in words]
    counts = defaultdict(int)  # pair -> occurrences, weighted by chunk frequency
    where = defaultdict(set)   # pair -> indices of the chunks that contain it
    for i, (w, f) in enumerate(zip(words, freqs)):
        for pair in zip(w, w[1:]):
            counts[pair] += f
            where[pair].add(i)
    heap = [(-c, p) for p, c in counts.items()]
    heapq.heapify(heap)
    for step in range(num_merges):
        while heap and counts.get(heap[0][1], 0) != -heap[0][0]:
            heapq.heappop(heap)  # stale: this pair's count has changed since it was pushed
        if not heap:
            return
        neg_count, pair = heapq.heappop(heap)
        delta = defaultdict(int)
        for i in where.pop(pair):
            w, f = words[i], freqs[i]
            merged = merge_pair(w, pair, 256 + step)
            old, new = list(zip(w, w[1:])), list(zip(merged, merged[1:]))
            for p in old:
                delta[p] -= f
            for p in new:
                delta[p] += f
            for p in set(old).difference(new):
                where[p].discard(i)
            for p in set(new).difference(old):
                where[p].add(i)
            words[i] = merged
        for p, d in delta.items():
            if d:
                counts[p] += d
                if counts[p] > 0:
                    heapq.heappush(heap, (-counts[p], p))
                else:
                    del counts[p]
                    where.pop(p, None)
        yield pair, -neg_count


# ----------------------------------------------------------------------------- the tokenizer

class BPETokenizer(Tokenizer):
    """Byte-level BPE: ids 0..255 are the bytes, 256.. the learned merges in order, then the special tokens.

    merges:         [((a, b), new_id), ...] in learning order; new_id = 256 + position.
    vocab:          id -> the bytes it stands for (special tokens: their UTF-8 bytes).
    special_tokens: special token text -> id.
    pattern:        the regular expression that cuts text into chunks before merging.
    Treat these as read-only; build a new tokenizer to change them.

    A tokenizer for an existing model (``BPETokenizer.from_gguf``) keeps that model's ids instead:
    ``byte_ids`` says which id each byte has, merges make whatever ids the model gave them, and
    special tokens have their own ids; encoding works the same way.
    """

    def __init__(self, merges=(), special_tokens=(), pattern: str = GPT4_SPLIT_PATTERN,
                 byte_ids=None, unknown_id=None, allowed_special="all"):
        """merges: ((a, b), new_id) items in learning order (or a dict {(a, b): new_id}).

        byte_ids:        None (bytes are ids 0..255), or 256 ids, byte_ids[b] the id of byte b
                         (None where the vocabulary lacks that byte; it encodes as unknown_id,
                         or is dropped when unknown_id is None).
                         Then merges may make any new ids and special_tokens is a dict {text: id}.
        allowed_special: what ``encode`` does with special-token text by default ("all", "none"
                         or a set); a chat model's tokenizer uses "none", so typed text never
                         becomes a control token.
        """
        items = sorted(merges.items(), key=lambda kv: kv[1]) if isinstance(merges, dict) else list(merges)
        custom = byte_ids is not None
        if custom and (len(byte_ids) != 256 or not isinstance(special_tokens, dict)):
            raise ValueError("with byte_ids, give 256 byte ids and special_tokens as a dict {text: id}")
        self.byte_ids = list(byte_ids) if custom else list(range(256))
        self.unknown_id, self.allowed_special = unknown_id, allowed_special
        self.merges = []
        self.vocab = {i: bytes([b]) for b, i in enumerate(self.byte_ids) if i is not None}
        for k, item in enumerate(items):
            try:
                (a, b), new_id = item
            except (TypeError, ValueError):
                raise ValueError(f"merge #{k} is {item!r}; each merge must be ((a, b), new_id)") from None
            if not all(is_int(x) for x in (a, b, new_id)):
                raise ValueError(f"merge #{k} {item!r} must hold integer ids")
            if custom:
                if a not in self.vocab or b not in self.vocab or new_id in self.vocab or new_id < 0:
                    raise ValueError(f"merge #{k} {item!r} joins an id not made yet or makes one that exists")
            elif new_id != 256 + k:
                raise ValueError(f"merge #{k} makes id {new_id}, but merges make ids 256, 257, ... "
                                 f"in learning order, so it must make {256 + k}")
            elif not (0 <= a < new_id and 0 <= b < new_id):
                raise ValueError(f"merge #{k} joins ({a}, {b}), but only ids below {new_id} exist when it is learned")
            self.merges.append(((a, b), new_id))
            self.vocab[new_id] = self.vocab[a] + self.vocab[b]
        if custom:
            self.special_tokens = dict(zip(_check_special_tokens(special_tokens), special_tokens.values()))
            taken = [i for i in self.special_tokens.values() if i in self.vocab]
            if taken:
                raise ValueError(f"special token ids {taken[:3]} are already ids of other tokens")
        else:
            first_special = 256 + len(self.merges)
            self.special_tokens = {s: first_special + i for i, s in enumerate(_check_special_tokens(special_tokens))}
        for s, i in self.special_tokens.items():
            self.vocab[i] = s.encode("utf-8")
        self.pattern = pattern
        self._compiled = _compile_pattern(pattern)
        self._ranks = {pair: k for k, (pair, _) in enumerate(self.merges)}  # (a, b) -> rank; lower = learned earlier
        self._merge_ids = dict(self.merges)  # (a, b) -> the id it makes
        self._special_ids = set(self.special_tokens.values())
        self._vocab_size = max(self.vocab) + 1
        self._cache = {}  # chunk -> its ids, so each distinct word is encoded once

    @property
    def vocab_size(self) -> int:
        return self._vocab_size

    # ------------------------------------------------------------------ training

    @classmethod
    def train(cls, text: str, vocab_size: int, special_tokens=("<|endoftext|>",),
              pattern: str = GPT4_SPLIT_PATTERN, verbose: bool = False, on_merge=None,
              incremental: bool = True) -> "BPETokenizer":
        """Learn ``vocab_size - 256 - len(special_tokens)`` merges from ``text``.

        Each merge joins the most frequent adjacent pair of tokens (within a chunk; special
        tokens in the text are cut out first); ties go to the smallest pair (a, b).
        on_merge:    optional ``on_merge(step, pair, new_id, token_bytes, count)``, called after
                     each merge (step 0 makes id 256), e.g. to watch the vocabulary grow.
        incremental: False recounts every pair before each merge (slow, same merges).
        Stops early, with a warning, when the text has no pair left to merge.
        """
        _check_text(text, "train")
        specials = _check_special_tokens(special_tokens)
        n_fixed = 256 + len(specials)
        if not is_int(vocab_size) or vocab_size < n_fixed:
            raise ValueError(f"vocab_size={vocab_size!r} is too small: a byte-level BPE has 256 byte "
                             f"tokens and {len(specials)} special token(s) before it learns any merge, so "
                             f"vocab_size must be at least {n_fixed} (e.g. 512)")
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise _surrogate_error(text) from None
        compiled = _compile_pattern(pattern)
        # Count each distinct chunk once: Tiny Shakespeare's ~260k chunks are ~15k distinct ones.
        chunk_counts = Counter()
        pieces = _special_splitter(tuple(specials)).split(text)[::2] if specials else [text]
        for piece in pieces:
            chunk_counts.update(split_chunks(compiled, piece))
        words = [list(chunk.encode("utf-8")) for chunk in chunk_counts]
        freqs = list(chunk_counts.values())

        num_merges = vocab_size - n_fixed
        learn = _merges_incremental if incremental else _merges_by_recount
        vocab = {i: bytes([i]) for i in range(256)}
        merges, t0 = [], time.perf_counter()
        report_every = max(1, num_merges // 20)
        for step, (pair, count) in enumerate(learn(words, freqs, num_merges)):
            new_id = 256 + step
            vocab[new_id] = vocab[pair[0]] + vocab[pair[1]]
            merges.append((pair, new_id))
            if on_merge is not None:
                on_merge(step, pair, new_id, vocab[new_id], count)
            if verbose and (step < 10 or (step + 1) % report_every == 0 or step + 1 == num_merges):
                print(f"merge {step + 1}/{num_merges}: {pair} -> {new_id} "
                      f"'{_bytes_str(vocab[new_id])}' ({count} occurrences)")
        if len(merges) < num_merges:
            warnings.warn(f"the text has no pair left to merge after {len(merges)} merges, so the "
                          f"vocabulary has {n_fixed + len(merges)} ids, not the {vocab_size} asked for; "
                          f"train on more text", stacklevel=2)
        if verbose:
            print(f"learned {len(merges)} merges from {len(text):,} characters in {time.perf_counter() - t0:.2f} s")
        return cls(merges, specials, pattern)

    # ------------------------------------------------------------------ encoding

    def encode(self, text: str, allowed_special=None) -> list[int]:
        """text -> token ids.

        allowed_special: "all": special tokens in the text become their ids; "none": they are
        encoded as ordinary text; a set: only those become ids, the others are encoded as
        ordinary text. None (default): the tokenizer's own default, ``self.allowed_special``
        ("all" for a tokenizer trained here, "none" for a chat model's from ``from_gguf``).
        """
        _check_text(text)
        if allowed_special is None:
            allowed_special = self.allowed_special
        ids = []
        try:
            for piece, special_id in self._split_specials(text, allowed_special):
                if special_id is None:
                    ids.extend(self._encode_ordinary(piece))
                else:
                    ids.append(special_id)
        except UnicodeEncodeError:
            raise _surrogate_error(text) from None
        return ids

    def split(self, text: str) -> list[str]:
        """The chunks the split pattern cuts ``text`` into; merges never cross from one to the next."""
        _check_text(text, "split")
        return split_chunks(self._compiled, text)

    def _encode_ordinary(self, text: str) -> list[int]:
        """Encode text that holds no special tokens, one chunk at a time, remembering each chunk."""
        ids, cache = [], self._cache
        for chunk in split_chunks(self._compiled, text):
            chunk_ids = cache.get(chunk)
            if chunk_ids is None:
                if len(cache) >= _ENCODE_CACHE_LIMIT:
                    cache.clear()
                chunk_ids = cache[chunk] = self._encode_chunk(chunk)
            ids.extend(chunk_ids)
        return ids

    def _encode_chunk(self, chunk: str) -> tuple:
        """One chunk's bytes, merged as training would: always apply the earliest-learned merge present."""
        byte_ids = self.byte_ids
        ids = [byte_ids[b] for b in chunk.encode("utf-8")]
        if None in ids:  # a byte the vocabulary lacks (a model's may): unknown_id, or dropped if None
            ids = [self.unknown_id if i is None else i for i in ids if i is not None or self.unknown_id is not None]
        ranks = self._ranks
        while len(ids) >= 2:
            pair = min(zip(ids, ids[1:]), key=lambda p: ranks.get(p, float("inf")))
            if pair not in ranks:
                break  # no pair here was ever merged
            ids = merge_pair(ids, pair, self._merge_ids[pair])
        return tuple(ids)

    # ------------------------------------------------------------------ decoding

    def decode_bytes(self, ids) -> bytes:
        """ids (list of ints or 1-D tensor) -> the exact bytes they stand for."""
        ids, vocab = self._id_list(ids), self.vocab
        try:
            return b"".join([vocab[i] for i in ids])
        except (KeyError, TypeError):
            raise self._bad_ids_error(ids) from None

    def decode(self, ids) -> str:
        """ids -> text. Bytes that do not form valid UTF-8 (e.g. half a character, when a model
        generates a bad sequence) become the replacement character '\ufffd'."""
        return self.decode_bytes(ids).decode("utf-8", errors="replace")

    def token_str(self, id: int) -> str:
        """Printable form of one token: its text ('\\n' for a line break), with bytes that are
        not valid UTF-8 on their own shown as <0xE4>; special tokens as they are."""
        self._check_id(id)
        if id in self._special_ids:
            return self.vocab[id].decode("utf-8")
        return _bytes_str(self.vocab[id])

    # ------------------------------------------------------------------ files

    def to_dict(self) -> dict:
        """JSON-ready: merge k (making id 256 + k) is merges[k]; special token k has id 256 + len(merges) + k.
        A model's tokenizer (own ids) also stores byte_ids, the id each merge makes, and special ids."""
        d = {"type": "BPETokenizer", "version": FORMAT_VERSION, "pattern": self.pattern,
             "merges": [[a, b] for (a, b), _ in self.merges], "special_tokens": list(self.special_tokens)}
        if self.byte_ids != list(range(256)) or self.allowed_special != "all":
            d.update(byte_ids=self.byte_ids, merge_ids=[i for _, i in self.merges],
                     special_ids=list(self.special_tokens.values()), unknown_id=self.unknown_id,
                     allowed_special=self.allowed_special if isinstance(self.allowed_special, str)
                     else sorted(self.allowed_special))
        return d

    @classmethod
    def from_gguf(cls, path) -> "BPETokenizer":
        """The tokenizer stored in a GGUF model file (a path or ``mg.gguf.read(path)``), with the
        model's ids, its split pattern and special tokens (matched only when ``allowed_special``
        asks); see ``minigpt.gguf.load_tokenizer``."""
        from ..gguf import load_tokenizer
        return load_tokenizer(path)

    @classmethod
    def from_dict(cls, d: dict) -> "BPETokenizer":
        cls._check_header(d)
        try:
            if "byte_ids" in d:
                merges = [((a, b), i) for (a, b), i in zip(d["merges"], d["merge_ids"], strict=True)]
                specials = dict(zip(d["special_tokens"], d["special_ids"], strict=True))
                return cls(merges, specials, d["pattern"], d["byte_ids"], d.get("unknown_id"),
                           d.get("allowed_special", "all"))
            merges = [((a, b), 256 + k) for k, (a, b) in enumerate(d["merges"])]
            return cls(merges, d.get("special_tokens", ()), d.get("pattern", GPT4_SPLIT_PATTERN))
        except (KeyError, TypeError, ValueError) as e:
            raise TokenizerError(f"malformed BPETokenizer file: {e!r}") from None

    def __repr__(self) -> str:
        return (f"BPETokenizer(vocab_size={self.vocab_size}, merges={len(self.merges)}, "
                f"special_tokens={list(self.special_tokens)})")
