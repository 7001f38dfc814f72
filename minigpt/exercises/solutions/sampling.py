"""Solutions for notebook 06."""

import torch
import torch.nn.functional as F

import minigpt as mg


def my_top_k(logits, k):
    """logits [..., V] -> [..., V]: the k largest of each row kept, the rest -inf."""
    values, indices = logits.topk(min(k, logits.size(-1)), dim=-1)     # exactly k per row, ties or not
    return torch.full_like(logits, float("-inf")).scatter(-1, indices, values)


def my_top_p(logits, p):
    """logits [..., V] -> [..., V]: each row's nucleus of probability p kept, the rest -inf."""
    sorted_logits, order = logits.sort(dim=-1, descending=True)
    sorted_probs = F.softmax(sorted_logits, dim=-1)
    mass_before = sorted_probs.cumsum(dim=-1) - sorted_probs                  # mass of the tokens above each
    drop = torch.zeros_like(mass_before, dtype=torch.bool).scatter(-1, order, mass_before >= p)
    return logits.masked_fill(drop, float("-inf"))


def next_token_probs(logits, temperature, top_k=None, top_p=None):
    """logits [V] -> [V] probabilities after temperature, top-k and top-p."""
    logits = mg.apply_temperature(logits, temperature)     # temperature 0: only the argmax stays
    if top_k is not None:
        logits = mg.top_k_filter(logits, top_k)
    if top_p is not None:
        logits = mg.top_p_filter(logits, top_p)
    return F.softmax(logits, dim=-1)


class MyKVCache:
    """The keys and values of every layer, for all the tokens fed so far."""

    def __init__(self):
        self.keys, self.values = {}, {}          # layer -> [B, H, P, D]

    def update(self, layer, k, v):
        """k, v: [B, H, T, D] of this step -> all keys and values so far, each [B, H, P + T, D]."""
        if layer in self.keys:
            k = torch.cat((self.keys[layer], k), dim=2)      # dim 2: the positions
            v = torch.cat((self.values[layer], v), dim=2)
        self.keys[layer], self.values[layer] = k, v
        return k, v
