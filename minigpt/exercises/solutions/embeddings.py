"""Solutions for notebook 02."""

import torch
import torch.nn.functional as F


def sinusoidal(T, C):
    """[T, C] fixed position encodings: each pair of channels is a sine and a cosine of pos * freq."""
    pos = torch.arange(T, dtype=torch.float32)[:, None]                  # [T, 1]
    freq = 10000 ** (-torch.arange(0, C, 2, dtype=torch.float32) / C)    # [C/2]: fast ... slow
    pe = torch.zeros(T, C)
    pe[:, 0::2] = torch.sin(pos * freq)                                   # [T, C/2] by broadcasting
    pe[:, 1::2] = torch.cos(pos * freq)
    return pe


def nearest(W, i, k=8):
    """Ids of the k rows most similar to W[i] by cosine similarity, most similar first, i left out."""
    unit = F.normalize(W.float(), dim=1)      # every row scaled to length 1
    cosine = unit @ unit[i]                   # [V]: cosine of the angle between each row and row i
    cosine[i] = -float("inf")                 # not itself
    return cosine.topk(k).indices.tolist()


def embed(idx, wte, wpe):
    """idx [B, T] long -> [B, T, C]: the row of each token plus the row of its position."""
    pos = torch.arange(idx.shape[1], device=idx.device)   # [T]
    return wte[idx] + wpe[pos]                             # [B, T, C] + [T, C] broadcasts over the batch
