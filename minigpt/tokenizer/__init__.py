"""Tokenizers: turn text into the integer ids a model reads, and ids back into text.

Two kinds share one interface (``encode``, ``decode``, ``vocab_size``, ``token_str``, ``save``/``load``),
one file per idea, in course order:

    base.py   what every tokenizer shares: TokenizerError, printable token strings, special tokens
    char.py   CharTokenizer: one id per character
    bpe.py    BPETokenizer: split patterns, pair counts and merges, the learners, byte-level BPE
    files.py  save / load: small JSON files with a ``type`` field; ``load_tokenizer(path)`` picks the class

    tok = BPETokenizer.train(text, vocab_size=512)
    ids = tok.encode("To be, or not to be")     # list[int]
    tok.decode(ids)                             # the text again
    [tok.token_str(i) for i in ids]             # what each id stands for, printable
"""

from .base import FORMAT_VERSION, Tokenizer, TokenizerError
from .bpe import GPT2_SPLIT_PATTERN, GPT4_SPLIT_PATTERN, BPETokenizer, count_pairs, merge_pair, split_chunks
from .char import CharTokenizer
from .files import KINDS, load_tokenizer, save_tokenizer, tokenizer_from_dict

__all__ = ["Tokenizer", "TokenizerError", "FORMAT_VERSION", "CharTokenizer", "BPETokenizer",
           "GPT2_SPLIT_PATTERN", "GPT4_SPLIT_PATTERN", "count_pairs", "merge_pair", "split_chunks",
           "KINDS", "load_tokenizer", "save_tokenizer", "tokenizer_from_dict"]
