"""Tokenizers: turn text into the integer ids a model reads, and ids back into text.

Two kinds share one interface (``encode``, ``decode``, ``vocab_size``, ``token_str``, ``save``/``load``):

- ``CharTokenizer``: one id per character. The vocabulary is the sorted set of characters of
  the text it was built from, then any special tokens. Tiny and transparent, but it cannot
  encode a character it has never seen.
- ``BPETokenizer``: byte-level byte-pair encoding, as in GPT-2 and GPT-4. It starts from the
  256 byte values, so *any* text can be encoded, then learns merges: again and again, the most
  frequent adjacent pair of tokens becomes one new token. Text is first cut into chunks
  (words, numbers, punctuation, runs of spaces) by a regular expression, so a merge never
  crosses a word boundary.

    tok = BPETokenizer.train(text, vocab_size=512)
    ids = tok.encode("To be, or not to be")     # list[int]
    tok.decode(ids)                             # the text again
    [tok.token_str(i) for i in ids]             # what each id stands for, printable

Files are small JSON objects with a ``type`` field; ``load_tokenizer(path)`` returns the right class.
"""

from __future__ import annotations

import codecs
import heapq
import json
import re
import time
import warnings
from collections import Counter, defaultdict
from functools import lru_cache
from pathlib import Path

from .files import atomic_file

FORMAT_VERSION = 1  # of the JSON files; bump when the layout changes

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


# ----------------------------------------------------------------------------- checks shared by both

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


# ----------------------------------------------------------------------------- files

def _atomic_write_text(path: Path, text: str) -> None:
    """Write through ``atomic_file``: a crash never leaves half a tokenizer file."""
    with atomic_file(path, "w", encoding="utf-8") as f:
        f.write(text)


def _read_json(path) -> dict:
    path = Path(path)
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


_CLASSES = {}  # JSON "type" -> class, filled in below


def tokenizer_from_dict(d: dict):
    """The tokenizer described by ``d`` (a ``to_dict()`` result), of the class its ``type`` names."""
    if not isinstance(d, dict) or d.get("type") not in _CLASSES:
        got = f"type {d.get('type')!r}" if isinstance(d, dict) and "type" in d else (
            f"keys {sorted(d)[:8]}" if isinstance(d, dict) else type(d).__name__)
        raise TokenizerError(f"not a tokenizer: expected a JSON object whose 'type' is one of "
                             f"{sorted(_CLASSES)}, got {got}; tokenizer files are written by tok.save(path)")
    return _CLASSES[d["type"]].from_dict(d)


def load_tokenizer(path):
    """Load a tokenizer saved with ``tok.save(path)``, whichever class it is."""
    try:
        return tokenizer_from_dict(_read_json(path))
    except TokenizerError as e:
        raise TokenizerError(f"{e}" if str(path) in str(e) else f"{path}: {e}") from None


# ----------------------------------------------------------------------------- shared interface

class _Tokenizer:
    """What both tokenizers share: special-token splitting, id checks, save/load."""

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
            if not isinstance(i, int) or isinstance(i, bool) or not 0 <= i < self.vocab_size:
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
        if not isinstance(i, int) or isinstance(i, bool) or not 0 <= i < self.vocab_size:
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
        path = Path(path)
        _atomic_write_text(path, json.dumps(self.to_dict()) + "\n")
        return path

    @classmethod
    def load(cls, path):
        """Load a tokenizer of this class saved with ``save``."""
        try:
            return cls.from_dict(_read_json(path))
        except TokenizerError as e:
            raise TokenizerError(f"{e}" if str(path) in str(e) else f"{path}: {e}") from None


# ----------------------------------------------------------------------------- characters

class CharTokenizer(_Tokenizer):
    """One token per character: ids 0..n-1 are the characters in sorted order, then the special tokens.

    stoi: token text -> id;  itos: id -> token text (special tokens included in both).
    """

    def __init__(self, chars, special_tokens=()):
        chars = list(chars)  # a str works: each of its characters becomes a token
        for c in chars:
            if not isinstance(c, str) or len(c) != 1:
                raise ValueError(f"chars must be single characters, got {c!r}")
        if len(set(chars)) != len(chars):
            raise ValueError("chars has duplicates; CharTokenizer.from_text(text) builds the list for you")
        specials = _check_special_tokens(special_tokens)
        clash = [s for s in specials if s in set(chars)]
        if clash:
            raise ValueError(f"special tokens {clash} are also ordinary characters; pick special "
                             f"tokens that cannot occur in the text, e.g. '<|endoftext|>'")
        self.chars = chars
        self.itos = dict(enumerate(chars + specials))
        self.stoi = {s: i for i, s in self.itos.items()}
        self.special_tokens = {s: self.stoi[s] for s in specials}

    @classmethod
    def from_text(cls, text: str, special_tokens=()) -> "CharTokenizer":
        """Vocabulary = the distinct characters of ``text`` in sorted order, then ``special_tokens``."""
        _check_text(text, "CharTokenizer.from_text")
        if not text:
            raise ValueError("text is empty: a CharTokenizer learns its characters from the text it is given")
        return cls(sorted(set(text)), special_tokens)

    @property
    def vocab_size(self) -> int:
        return len(self.itos)

    def encode(self, text: str, allowed_special="all") -> list[int]:
        """text -> one id per character (a special token, where allowed, is one id).

        allowed_special: "all", "none" or a set of special tokens; special tokens that are not
        allowed are encoded character by character. Unknown characters raise TokenizerError.
        """
        _check_text(text)
        stoi, ids = self.stoi, []
        try:
            for piece, special_id in self._split_specials(text, allowed_special):
                if special_id is None:
                    ids.extend([stoi[c] for c in piece])
                else:
                    ids.append(special_id)
        except KeyError:
            raise self._unknown_chars_error(text, allowed_special) from None
        return ids

    def _unknown_chars_error(self, text: str, allowed_special) -> TokenizerError:
        unknown, offset = [], 0
        for piece, special_id in self._split_specials(text, allowed_special):
            if special_id is None:
                unknown += [(offset + j, c) for j, c in enumerate(piece) if c not in self.stoi]
            offset += len(piece)
        shown = ", ".join(f"{c!r} at position {pos}" for pos, c in unknown[:5])
        more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
        return TokenizerError(
            f"text has {len(unknown)} character(s) this tokenizer does not know: {shown}{more}. "
            f"A CharTokenizer knows only the {len(self.chars)} characters it was built from: build it "
            f"from text that contains them (CharTokenizer.from_text), or filter the text first, e.g. "
            f"''.join(c for c in text if c in tok.stoi)")

    def decode(self, ids) -> str:
        """ids (list of ints or 1-D tensor) -> text."""
        ids, itos = self._id_list(ids), self.itos
        try:
            return "".join([itos[i] for i in ids])
        except (KeyError, TypeError):
            raise self._bad_ids_error(ids) from None

    def token_str(self, id: int) -> str:
        """Printable form of one token: '\\n' for a line break, special tokens as they are."""
        self._check_id(id)
        s = self.itos[id]
        return s if s in self.special_tokens else _printable(s)

    def to_dict(self) -> dict:
        return {"type": "CharTokenizer", "version": FORMAT_VERSION,
                "chars": "".join(self.chars), "special_tokens": list(self.special_tokens)}

    @classmethod
    def from_dict(cls, d: dict) -> "CharTokenizer":
        cls._check_header(d)
        try:
            return cls(d["chars"], d.get("special_tokens", ()))
        except (KeyError, TypeError, ValueError) as e:
            raise TokenizerError(f"malformed CharTokenizer file: {e!r}") from None

    def __repr__(self) -> str:
        return f"CharTokenizer(vocab_size={self.vocab_size}, special_tokens={list(self.special_tokens)})"


# ----------------------------------------------------------------------------- byte-pair encoding

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


class BPETokenizer(_Tokenizer):
    """Byte-level BPE: ids 0..255 are the bytes, 256.. the learned merges in order, then the special tokens.

    merges:         [((a, b), new_id), ...] in learning order; new_id = 256 + position.
    vocab:          id -> the bytes it stands for (special tokens: their UTF-8 bytes).
    special_tokens: special token text -> id.
    pattern:        the regular expression that cuts text into chunks before merging.
    Treat these as read-only; build a new tokenizer to change them.
    """

    def __init__(self, merges=(), special_tokens=(), pattern: str = GPT4_SPLIT_PATTERN):
        """merges: ((a, b), new_id) items in learning order (or a dict {(a, b): new_id})."""
        items = sorted(merges.items(), key=lambda kv: kv[1]) if isinstance(merges, dict) else list(merges)
        self.merges, self.vocab = [], {i: bytes([i]) for i in range(256)}
        for k, item in enumerate(items):
            try:
                (a, b), new_id = item
            except (TypeError, ValueError):
                raise ValueError(f"merge #{k} is {item!r}; each merge must be ((a, b), new_id)") from None
            if any(not isinstance(x, int) or isinstance(x, bool) for x in (a, b, new_id)):
                raise ValueError(f"merge #{k} {item!r} must hold integer ids")
            if new_id != 256 + k:
                raise ValueError(f"merge #{k} makes id {new_id}, but merges make ids 256, 257, ... "
                                 f"in learning order, so it must make {256 + k}")
            if not (0 <= a < new_id and 0 <= b < new_id):
                raise ValueError(f"merge #{k} joins ({a}, {b}), but only ids below {new_id} exist when it is learned")
            self.merges.append(((a, b), new_id))
            self.vocab[new_id] = self.vocab[a] + self.vocab[b]
        first_special = 256 + len(self.merges)
        self.special_tokens = {s: first_special + i for i, s in enumerate(_check_special_tokens(special_tokens))}
        for s, i in self.special_tokens.items():
            self.vocab[i] = s.encode("utf-8")
        self.pattern = pattern
        self._compiled = _compile_pattern(pattern)
        self._ranks = dict(self.merges)  # (a, b) -> new id; a smaller id was learned earlier
        self._cache = {}  # chunk -> its ids, so each distinct word is encoded once

    @property
    def vocab_size(self) -> int:
        return 256 + len(self.merges) + len(self.special_tokens)

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
        if not isinstance(vocab_size, int) or isinstance(vocab_size, bool) or vocab_size < n_fixed:
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
            chunk_counts.update(_split_chunks(compiled, piece))
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

    def encode(self, text: str, allowed_special="all") -> list[int]:
        """text -> token ids.

        allowed_special: "all" (default): special tokens in the text become their ids;
        "none": they are encoded as ordinary text; a set: only those become ids, the others
        are encoded as ordinary text.
        """
        _check_text(text)
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

    def _encode_ordinary(self, text: str) -> list[int]:
        """Encode text that holds no special tokens, one chunk at a time, remembering each chunk."""
        ids, cache = [], self._cache
        for chunk in _split_chunks(self._compiled, text):
            chunk_ids = cache.get(chunk)
            if chunk_ids is None:
                if len(cache) >= _ENCODE_CACHE_LIMIT:
                    cache.clear()
                chunk_ids = cache[chunk] = self._encode_chunk(chunk)
            ids.extend(chunk_ids)
        return ids

    def _encode_chunk(self, chunk: str) -> tuple:
        """One chunk's bytes, merged as training would: always apply the earliest-learned merge present."""
        ids = list(chunk.encode("utf-8"))
        ranks = self._ranks
        while len(ids) >= 2:
            pair = min(zip(ids, ids[1:]), key=lambda p: ranks.get(p, float("inf")))
            if pair not in ranks:
                break  # no pair here was ever merged
            ids = merge_pair(ids, pair, ranks[pair])
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
        if id >= 256 + len(self.merges):
            return self.vocab[id].decode("utf-8")
        return _bytes_str(self.vocab[id])

    # ------------------------------------------------------------------ files

    def to_dict(self) -> dict:
        """JSON-ready: merge k (making id 256 + k) is merges[k]; special token k has id 256 + len(merges) + k."""
        return {"type": "BPETokenizer", "version": FORMAT_VERSION, "pattern": self.pattern,
                "merges": [[a, b] for (a, b), _ in self.merges], "special_tokens": list(self.special_tokens)}

    @classmethod
    def from_dict(cls, d: dict) -> "BPETokenizer":
        cls._check_header(d)
        try:
            merges = [((a, b), 256 + k) for k, (a, b) in enumerate(d["merges"])]
            return cls(merges, d.get("special_tokens", ()), d.get("pattern", GPT4_SPLIT_PATTERN))
        except (KeyError, TypeError, ValueError) as e:
            raise TokenizerError(f"malformed BPETokenizer file: {e!r}") from None

    def __repr__(self) -> str:
        return (f"BPETokenizer(vocab_size={self.vocab_size}, merges={len(self.merges)}, "
                f"special_tokens={list(self.special_tokens)})")


def _split_chunks(compiled, text: str) -> list[str]:
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


_CLASSES.update(CharTokenizer=CharTokenizer, BPETokenizer=BPETokenizer)
