"""Tokens and their vectors, from the shipped model: characters, UTF-8 bytes, BPE merges, embeddings."""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path

import torch

import minigpt as mg
from minigpt.tokenizer import merge_pair
from shipped_model import cache_dir, check_same, encode, floats, model_and_tokenizer

CORPUS = "tinyshakespeare"


# ------------------------------------------------------------------ characters and bytes


def char_ids(text: str) -> dict:
    """``text`` through the shipped model's character tokenizer: {"tokens": [str], "ids": [int], "vocab_size"}."""
    _, tok = model_and_tokenizer()
    ids = tok.encode(text)
    return {"tokens": [tok.token_str(i) for i in ids], "ids": ids, "vocab_size": tok.vocab_size}


def utf8_bytes(text: str) -> list:
    """Each character of ``text`` with its UTF-8 bytes: [{"char", "bytes": [int], "hex": ["E4", ...]}]."""
    return [{"char": c, "bytes": list(c.encode("utf-8")), "hex": [f"{b:02X}" for b in c.encode("utf-8")]}
            for c in text]


# ------------------------------------------------------------------ byte-pair encoding


@functools.lru_cache(maxsize=4)
def bpe_tokenizer(vocab_size: int = 512, train_chars: int = 1_000_000) -> mg.BPETokenizer:
    """A byte-level ``mg.BPETokenizer`` trained on the first ``train_chars`` characters of Tiny
    Shakespeare. Training takes seconds, so the result is kept on disk, keyed by what it depends
    on: the training text, the vocabulary size and the source of minigpt's BPE."""
    text = mg.data.load_text(CORPUS)[:train_chars]
    key = hashlib.sha256(json.dumps([hashlib.sha256(text.encode()).hexdigest(), vocab_size,
                                     Path(mg.tokenizer.bpe.__file__).read_text()]).encode()).hexdigest()[:20]
    path = cache_dir() / f"bpe-{vocab_size}-{key}.json"
    try:
        return mg.tokenizer.load_tokenizer(path, kind=mg.BPETokenizer)
    except (OSError, mg.TokenizerError):  # not there yet, or unreadable: train it
        tok = mg.BPETokenizer.train(text, vocab_size=vocab_size)
    try:
        tok.save(path)
    except OSError:
        pass  # a read-only home still renders, just trains again next time
    return tok


def bpe_merges(sentence: str, vocab_size: int = 512, train_chars: int = 1_000_000, n: int = 0) -> dict:
    """Encode ``sentence`` with a BPE learned on Tiny Shakespeare, one merge at a time.

    The sentence is cut into chunks (the tokenizer's split pattern), each chunk into its UTF-8
    bytes; then, as the encoder does, the earliest-learned merge that applies anywhere is
    applied everywhere, again and again. ``n`` > 0 keeps only the first n steps.

    Returns {"sentence", "chunks": [str], "vocab_size", "num_merges" (learned),
    "start": {"tokens": [[str] per chunk], "ids": [[int] per chunk]},
    "steps": [{"pair": [a, b], "pair_tokens": [str, str], "new_id", "token", "rank" (learning
    order, 0 = first), "tokens", "ids"}], "final_ids" (= tokenizer.encode(sentence)), "final_tokens",
    "final_lengths" (bytes per final token)}.
    """
    tok = bpe_tokenizer(vocab_size, train_chars)
    chunks = tok.split(sentence)
    ids = [list(c.encode("utf-8")) for c in chunks]
    ranks = dict(tok.merges)  # (a, b) -> new id, smaller = learned earlier

    def strs(rows):
        return [[tok.token_str(i) for i in row] for row in rows]

    start = {"tokens": strs(ids), "ids": [list(r) for r in ids]}
    steps = []
    while True:
        present = {p for row in ids for p in zip(row, row[1:]) if p in ranks}
        if not present:
            break
        pair = min(present, key=ranks.get)
        new_id = ranks[pair]
        ids = [merge_pair(row, pair, new_id) for row in ids]
        steps.append({"pair": list(pair), "pair_tokens": [tok.token_str(pair[0]), tok.token_str(pair[1])],
                      "new_id": new_id, "token": tok.token_str(new_id), "rank": new_id - 256,
                      "tokens": strs(ids), "ids": [list(r) for r in ids]})
    final = [i for row in ids for i in row]
    if final != tok.encode(sentence):
        raise RuntimeError("merging step by step did not reproduce BPETokenizer.encode")
    return {"sentence": sentence, "chunks": chunks, "vocab_size": tok.vocab_size, "num_merges": len(tok.merges),
            "start": start, "steps": steps[:n] if n > 0 else steps, "final_ids": final,
            "final_tokens": [tok.token_str(i) for i in final], "final_lengths": [len(tok.vocab[i]) for i in final]}


# ------------------------------------------------------------------ embeddings


def embeddings(text: str) -> dict:
    """Token and position embeddings of ``text`` and their sum (the input of block 0).

    Returns {"tokens": [str], "ids": [int], "n_embd", "vocab_size", "block_size",
    "wte": [T][C] (row ids[t] of the token table), "wpe": [T][C] (row t of the position table),
    "sum": [T][C]}.
    """
    model, tok, ids, idx = encode(text)
    with torch.no_grad():
        wte = model.transformer.wte.weight[ids]
        wpe = model.transformer.wpe.weight[: len(ids)]
        x = model(idx, return_hidden_states=True).hidden_states[0][0]
    check_same(wte + wpe, x, "token + position embeddings, the model's first hidden state", atol=1e-5)
    c = model.config
    return {"tokens": [tok.token_str(i) for i in ids], "ids": ids, "n_embd": c.n_embd, "vocab_size": c.vocab_size,
            "block_size": c.block_size, "wte": floats(wte), "wpe": floats(wpe), "sum": floats(x)}


def embedding_table(which: str = "wte") -> dict:
    """A whole embedding table: "wte" (token embeddings, [vocab_size][n_embd]) or "wpe" (position
    embeddings, [block_size][n_embd]). Returns {"which", "rows": [[float]], "tokens" (wte: each
    row's token, printable; wpe: the positions as strings)}."""
    model, tok = model_and_tokenizer()
    if which not in ("wte", "wpe"):
        raise ValueError(f"which must be 'wte' (token embeddings) or 'wpe' (position embeddings), got {which!r}")
    table = getattr(model.transformer, which).weight
    names = [tok.token_str(i) for i in range(table.size(0))] if which == "wte" else [str(i) for i in range(table.size(0))]
    return {"which": which, "rows": floats(table, 4), "tokens": names}
