"""Question-answer pairs for sequence-to-sequence chatbots: (context, reply) from dialogues, and batches.

    dialogues = mg.data.load_dialogues("dailydialog", "train")
    pairs = make_pairs(dialogues, context_turns=1)          # [(["How are you?"], "Fine, thanks.")...]
    data = PairData.from_pairs(pairs, tok, pad_id=..., sos_id=..., eos_id=..., max_src_len=64, max_tgt_len=32)
    trainer = mg.Trainer(model, data, dev_data, config, get_batch=PairData.get_batch)

A pair's source is its context: the previous k turns joined by a separator (one token, e.g.
``<sep>``), cropped from the left when too long (the latest words, closest to the reply, are
kept). Its target is ``<sos> reply <eos>``; the decoder reads ``<sos> reply`` and learns to
predict ``reply <eos>`` (shifted by one). A reply longer than max_tgt_len is cropped at the
right and then has no ``<eos>``: the model is never taught to stop in the middle of a sentence.

A batch (``Seq2SeqBatch``) is padded to its longest source and longest target; ``src_mask``
marks real source tokens, and targets are -100 at padding so the loss ignores them. Pairs are
bucketed by length (a batch draws from neighbours in length order), so little of it is padding.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import torch

from .checks import check_int, is_int


def make_pairs(dialogues: Sequence[Sequence[str]], context_turns: int = 1) -> list[tuple[list[str], str]]:
    """(context, reply) pairs: every turn after the first is a reply to the up-to-``context_turns``
    turns before it.

    dialogues:     lists of turns (str), e.g. ``mg.data.load_dialogues("dailydialog", "train")``.
    Returns [(context: list of 1..context_turns str, reply: str)], in dialogue order.
    Edge cases: a one-turn dialogue gives no pair (nothing replies to it); an empty (or blank)
    turn is skipped as if it were not there, so it is neither a reply nor part of a context.
    """
    check_int(context_turns, "context_turns", low=1)
    if isinstance(dialogues, str) or not isinstance(dialogues, Sequence):
        raise ValueError("dialogues must be a list of dialogues, each a list of turns (str); "
                         f"got {type(dialogues).__name__}")
    pairs = []
    for n, dialogue in enumerate(dialogues):
        if isinstance(dialogue, str) or not isinstance(dialogue, Sequence):
            raise ValueError(f"dialogue {n} must be a list of turns (str), got {type(dialogue).__name__}; "
                             f"for one dialogue pass [turns]")
        bad = [t for t in dialogue if not isinstance(t, str)]
        if bad:
            raise ValueError(f"dialogue {n} has a turn that is not a str: {bad[0]!r}")
        turns = [t.strip() for t in dialogue if t.strip()]
        for i in range(1, len(turns)):
            pairs.append((turns[max(0, i - context_turns):i], turns[i]))
    return pairs


@dataclass
class Seq2SeqBatch:
    """The inputs of a sequence-to-sequence model for one batch (targets travel beside it).

    src:      [B, S] long, source (question) ids, padded at the right with pad_id.
    src_mask: [B, S] bool, True at real source tokens, False at padding.
    tgt:      [B, T] long, decoder input: <sos> and the reply, padded at the right.
    """

    src: torch.Tensor
    src_mask: torch.Tensor
    tgt: torch.Tensor

    def to(self, device) -> "Seq2SeqBatch":
        return Seq2SeqBatch(self.src.to(device), self.src_mask.to(device), self.tgt.to(device))


def pad_pairs(examples: Sequence[tuple[Sequence[int], Sequence[int]]], pad_id: int):
    """Pad encoded pairs into one batch.

    examples: [(src ids, tgt ids)] where tgt is <sos> reply [<eos>] (at least 2 ids).
    Returns (Seq2SeqBatch, targets [B, T]): targets[b, t] = tgt[b, t + 1], -100 at padding.
    """
    if not examples:
        raise ValueError("pad_pairs needs at least one (src, tgt) pair")
    B = len(examples)
    S = max(len(s) for s, _ in examples)
    T = max(len(t) for _, t in examples) - 1
    if min(len(s) for s, _ in examples) < 1 or min(len(t) for _, t in examples) < 2:
        raise ValueError("every pair needs a non-empty source and a target of <sos> and at least one more id")
    src = torch.full((B, S), pad_id, dtype=torch.long)
    tgt = torch.full((B, T), pad_id, dtype=torch.long)
    targets = torch.full((B, T), -100, dtype=torch.long)
    for b, (s, t) in enumerate(examples):
        src[b, :len(s)] = torch.as_tensor(s, dtype=torch.long)
        tgt[b, :len(t) - 1] = torch.as_tensor(t[:-1], dtype=torch.long)
        targets[b, :len(t) - 1] = torch.as_tensor(t[1:], dtype=torch.long)
    src_mask = torch.arange(S)[None, :] < torch.tensor([len(s) for s, _ in examples])[:, None]
    return Seq2SeqBatch(src, src_mask, tgt), targets


class PairData:
    """Encoded (source, target) pairs and the length-bucketed batches the Trainer draws from them.

    examples:    [(src ids, tgt ids)], tgt = <sos> reply [<eos>] (see ``encode_pair``).
    pad_id:      the id batches are padded with (a target never).
    bucket_size: a batch draws batch_size pairs at random from a run of this many neighbours in
                 order of length (None: 8 batches' worth), so lengths in a batch are close.
    Pass it as the Trainer's data with ``get_batch=PairData.get_batch``.
    """

    def __init__(self, examples, pad_id: int, bucket_size: Optional[int] = None):
        self.examples = [(list(s), list(t)) for s, t in examples]
        if not self.examples:
            raise ValueError("PairData needs at least one pair; are the dialogues empty or all one turn long?")
        check_int(pad_id, "pad_id", low=0)
        check_int(bucket_size, "bucket_size", low=1, allow_none=True)
        self.pad_id, self.bucket_size = pad_id, bucket_size
        lengths = torch.tensor([[len(s), len(t)] for s, t in self.examples])
        self.order = torch.as_tensor(sorted(range(len(self.examples)), key=lambda i: tuple(lengths[i].tolist())))

    @classmethod
    def from_pairs(cls, pairs, encode: Callable[[str], list[int]] | object, *, pad_id: int, sos_id: int,
                   eos_id: int, max_src_len: int, max_tgt_len: int, sep_ids: Sequence[int] = (),
                   bucket_size: Optional[int] = None) -> "PairData":
        """Encode ``make_pairs`` output: ``encode`` is a tokenizer (its ``.encode``) or a function
        text -> ids; see ``encode_pair`` for the rest."""
        fn = encode.encode if hasattr(encode, "encode") else encode
        if not callable(fn):
            raise ValueError("encode must be a tokenizer or a function text -> list of ids")
        examples = [encode_pair(c, r, fn, sos_id=sos_id, eos_id=eos_id, max_src_len=max_src_len,
                                max_tgt_len=max_tgt_len, sep_ids=sep_ids) for c, r in pairs]
        return cls(examples, pad_id, bucket_size)

    def __len__(self) -> int:
        return len(self.examples)

    @property
    def n_target_tokens(self) -> int:
        """Tokens the decoder learns to predict, over all pairs."""
        return sum(len(t) - 1 for _, t in self.examples)

    @staticmethod
    def get_batch(data: "PairData", batch_size: int, block_size: int, generator=None, device=None):
        """A batch for ``Trainer(get_batch=PairData.get_batch)``: (Seq2SeqBatch, targets [B, T]) on
        ``device``; batch_size pairs from one random bucket of pairs of similar length.
        block_size is the Trainer's (the longest target the model takes); longer targets are refused."""
        n = len(data.examples)
        bucket = min(n, data.bucket_size or 8 * batch_size)
        start = int(torch.randint(n - bucket + 1, (1,), generator=generator))
        pick = torch.randint(bucket, (batch_size,), generator=generator) + start
        chosen = [data.examples[i] for i in data.order[pick].tolist()]
        longest = max(len(t) - 1 for _, t in chosen)
        if longest > block_size:
            raise ValueError(f"a target has {longest} tokens but the model's block_size is {block_size}; "
                             f"encode the pairs with max_tgt_len <= {block_size}")
        x, y = pad_pairs(chosen, data.pad_id)
        return (x, y) if device is None else (x.to(device), y.to(device))


def encode_pair(context, reply: str, encode: Callable[[str], list[int]], *, sos_id: int, eos_id: int,
                max_src_len: int, max_tgt_len: int, sep_ids: Sequence[int] = ()) -> tuple[list[int], list[int]]:
    """One (context, reply) pair as ids.

    context:     the previous turns (a str, or a list of str, oldest first), joined by sep_ids.
    Returns (src: at most max_src_len ids, the end of the context when cropped;
             tgt: [sos_id] + reply ids + [eos_id], at most max_tgt_len + 1 ids (max_tgt_len
             predicted); a cropped reply loses its end and its eos).
    Raises ValueError for an empty context or reply (nothing to read or to learn).
    """
    check_int(max_src_len, "max_src_len", low=1)
    check_int(max_tgt_len, "max_tgt_len", low=1)
    for name, value in (("sos_id", sos_id), ("eos_id", eos_id)):
        if not is_int(value) or value < 0:
            raise ValueError(f"{name} must be a token id (an integer >= 0), got {value!r}")
    if not isinstance(reply, str):
        raise ValueError("context must be a str or a list of str, and reply a str")
    src = encode_context(context, encode, max_src_len=max_src_len, sep_ids=sep_ids)
    reply_ids = list(encode(reply)) if reply.strip() else []
    if not reply_ids:
        raise ValueError(f"the reply to {context!r} is empty: nothing to learn")
    tgt = ([sos_id] + reply_ids + [eos_id])[:max_tgt_len + 1]
    return src, tgt


def encode_context(context, encode: Callable[[str], list[int]], *, max_src_len: int,
                   sep_ids: Sequence[int] = ()) -> list[int]:
    """A question (or the previous turns) as the encoder reads it: the non-blank turns, oldest
    first, encoded and joined by sep_ids, cropped to the last max_src_len ids.

    context: a str, or a list of str. Raises ValueError when nothing is left to read.
    """
    check_int(max_src_len, "max_src_len", low=1)
    turns = [context] if isinstance(context, str) else list(context)
    if not all(isinstance(t, str) for t in turns):
        raise ValueError("context must be a str or a list of str")
    src: list[int] = []
    for i, turn in enumerate(t for t in turns if t.strip()):
        src += (list(sep_ids) if i else []) + list(encode(turn))
    if not src:
        raise ValueError(f"the context {context!r} is empty: a question needs at least one token")
    return src[-max_src_len:]
