"""``CharTokenizer``: one id per character, the first tokenizer of the course.

The vocabulary is the sorted set of characters of the text it was built from, then any special
tokens. Tiny and transparent, but it cannot encode a character it has never seen.

    tok = CharTokenizer.from_text(text)
    tok.encode("ROMEO:")                        # one id per character
"""

from __future__ import annotations

from .base import FORMAT_VERSION, Tokenizer, TokenizerError, _check_special_tokens, _check_text, _printable

class CharTokenizer(Tokenizer):
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
