"""What the encoder–decoder and GRU tests share: special ids, a vocabulary size, and a tokenizer
that writes ids as text (enough for beam search to decode and name tokens)."""

PAD, SOS, EOS = 0, 1, 2
V = 24


class IdTokenizer:
    """Ids as text."""

    def decode(self, ids):
        return " ".join(map(str, ids))

    def token_str(self, i):
        return str(i)
