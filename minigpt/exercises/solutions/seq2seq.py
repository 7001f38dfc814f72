"""Solutions for notebook 07 (the encoder–decoder chatbot)."""

import math

import torch
from torch.nn import functional as F


def my_padding_mask(src, pad_id):
    """src: [B, S] ids -> [B, 1, 1, S] bool, True at real tokens: it broadcasts over the heads and
    the queries of the scores [B, H, T, S] and hides padding as a key."""
    return (src != pad_id)[:, None, None, :]


def my_general_attention(h, enc, mask, W):
    """h: [B, Hd]; enc: [B, S, Hd]; mask: [B, S] bool; W: [Hd, Hd] -> weights [B, S].
    score(h, e_s) = h · (W e_s); W e_s for every s is enc @ W.T, as nn.Linear applies it."""
    scores = ((enc @ W.T) @ h[:, :, None]).squeeze(-1)            # [B, S]
    return F.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)


def future_leaks(decode, tgt):
    """Positions t < T-1 whose logits change when only the last token of tgt [1, T] changes."""
    other = tgt.clone()
    other[0, -1] = (other[0, -1] + 1) % 16                          # any other token id
    a, b = decode(tgt), decode(other)
    return [t for t in range(tgt.size(1) - 1) if not torch.allclose(a[0, t], b[0, t], atol=1e-5)]


def fixed_self_attention(q, k, v):
    """q, k, v: [B, H, T, D] -> [B, H, T, D]; query i sees keys 0..i."""
    T = q.size(-2)
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))
    allowed = torch.ones(T, T, dtype=torch.bool).tril()
    scores = scores.masked_fill(allowed == 0, float("-inf"))      # the fix: allowed, not allowed.T
    return F.softmax(scores, dim=-1) @ v


def first_look_answer():
    """The explorer's question, answered by reading the picture: the tallest bar of the first answer
    token, in the Transformer's last layer, mean of the heads (computed here as the picture is)."""
    import minigpt as mg
    from minigpt.exercises.seq2seq import EXPLORER_QUESTION
    maps = mg.viz.cross_attention_maps(*mg.pretrained.load("qa-en"), EXPLORER_QUESTION)
    return int(maps.weights(-1, "all")[0].argmax())
