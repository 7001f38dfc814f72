"""What a question-answer chatbot has learned, measured on held-out (context, reply) pairs.

    pairs = writable_pairs(pairs, tokenizer)       # the pairs a tokenizer can write
    loss = reply_loss(model, tokenizer, pairs)      # mean teacher-forced loss per reply token
    listens = reply_loss(model, tokenizer, shuffled_questions(pairs)) - loss

``listens`` is what the question is worth to the bot, in nats per reply token: the same replies,
each after another pair's question, cost that much more. A bot that ignores its question (a
decoder that learned only the language of replies) scores 0.

The model is a ``Seq2Seq`` or ``GRUSeq2Seq``; pairs are ``make_pairs`` output (a list of context
turns, and the reply), encoded and cropped as the model was trained.
"""

from __future__ import annotations

from typing import Sequence

import torch

from .dialogue_pairs import PairData, pad_pairs
from .runtime import eval_mode


def _writes(tokenizer, text: str) -> bool:
    try:
        tokenizer.encode(text, allowed_special="none")
        return True
    except ValueError:  # a character tokenizer has no id for a character it never saw
        return False


def writable_pairs(pairs: Sequence, *tokenizers) -> list:
    """The pairs that every one of ``tokenizers`` can write (byte-level BPE writes anything)."""
    return [(c, r) for c, r in pairs if all(_writes(t, "".join(c) + r) for t in tokenizers)]


def encode_pairs(pairs: Sequence, model, tokenizer) -> PairData:
    """``pairs`` in a bot's tokens, cropped to its longest question and reply (as it was trained)."""
    ids = tokenizer.special_tokens
    return PairData.from_pairs(pairs, lambda s: tokenizer.encode(s, allowed_special="none"), pad_id=ids["<pad>"],
                               sos_id=ids["<sos>"], eos_id=ids["<eos>"], sep_ids=[ids["<sep>"]],
                               max_src_len=model.config.src_block_size, max_tgt_len=model.config.block_size)


@torch.no_grad()
def reply_loss(model, tokenizer, pairs: Sequence, batch_size: int = 32) -> float:
    """Mean teacher-forced loss per reply token over all of ``pairs`` (nats)."""
    pairs = list(pairs)
    if not pairs:
        raise ValueError("no pairs to measure: give (context, reply) pairs, e.g. from make_pairs")
    unwritable = len(pairs) - len(writable_pairs(pairs, tokenizer))
    if unwritable:
        raise ValueError(f"{unwritable} of the pairs hold text this tokenizer cannot write: "
                         f"keep writable_pairs(pairs, tokenizer)")
    data = encode_pairs(pairs, model, tokenizer)
    total = count = 0
    device = next(model.parameters()).device
    with eval_mode(model):
        for i in range(0, len(data), batch_size):
            batch, targets = pad_pairs(data.examples[i:i + batch_size], data.pad_id)
            n = int((targets != -100).sum())
            total += float(model(batch.to(device), targets=targets.to(device)).loss) * n
            count += n
    return total / count


def shuffled_questions(pairs: Sequence, seed: int = 0) -> list:
    """The same replies, in the same order, each after another pair's question."""
    order = torch.randperm(len(pairs), generator=torch.Generator().manual_seed(seed)).tolist()
    return [(pairs[j][0], reply) for j, (_, reply) in zip(order, pairs)]
