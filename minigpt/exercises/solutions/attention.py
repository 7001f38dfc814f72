"""Solutions for notebook 03."""

import math

import torch


def my_causal_mask(T):
    """[T, T] bool: True where query i may look at key j."""
    return torch.tril(torch.ones(T, T, dtype=torch.bool))


def my_attention_weights(q, k):
    """q, k: [T, D] -> [T, T] causal attention weights (each row sums to 1)."""
    T, D = q.shape
    scores = q @ k.T / math.sqrt(D)
    return torch.softmax(scores.masked_fill(~my_causal_mask(T), float("-inf")), dim=-1)


def split_heads(x, n_head):
    """x: [B, T, C] -> [B, H, T, D] with D = C // n_head."""
    B, T, C = x.shape
    return x.view(B, T, n_head, C // n_head).transpose(1, 2)


def local_mask(T, w):
    """[T, T] bool: query i may look at keys i - w + 1 ... i (itself and the w - 1 before it)."""
    causal = torch.ones(T, T, dtype=torch.bool).tril()            # j <= i
    too_old = torch.ones(T, T, dtype=torch.bool).tril(diagonal=-w)  # j <= i - w
    return causal & ~too_old


answer = (1, 0)   # the widget question: the head that looks back to the line break (shipped model)
