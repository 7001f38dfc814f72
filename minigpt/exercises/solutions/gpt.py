"""Solutions for notebook 04: among them a whole GPT, written from scratch, whose weights have
the names of ``minigpt.model.GPT`` so that the shipped model loads into it."""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def count_params(V, T, C, L):
    """Parameters of GPTConfig(vocab_size=V, block_size=T, n_embd=C, n_layer=L): biases on, LM head tied."""
    per_block = 4 * C + (3 * C * C + 3 * C) + (C * C + C) + (4 * C * C + 4 * C) + (4 * C * C + C)
    return V * C + T * C + L * per_block + 2 * C


def my_block_forward(x, block):
    """x: [B, T, C] -> [B, T, C], the pre-LN decoder block."""
    x = x + block.attn(block.ln_1(x))[0]
    return x + block.mlp(block.ln_2(x))


def my_layer_norm(x, weight, bias, eps=1e-5):
    """x: [..., C]; weight, bias: [C] -> [..., C], each vector normalised over its C channels."""
    mean = x.mean(dim=-1, keepdim=True)
    var = x.var(dim=-1, keepdim=True, unbiased=False)
    return (x - mean) / torch.sqrt(var + eps) * weight + bias


class Attention(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.n_head = config.n_head
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd)   # q, k, v at once
        self.c_proj = nn.Linear(config.n_embd, config.n_embd)

    def forward(self, x):                                            # [B, T, C] -> [B, T, C]
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        att = q @ k.transpose(-2, -1) / math.sqrt(k.size(-1))       # [B, H, T, T]
        att = att.masked_fill(~torch.tril(torch.ones(T, T, dtype=torch.bool, device=x.device)), float("-inf"))
        y = F.softmax(att, dim=-1) @ v                               # [B, H, T, D]
        return self.c_proj(y.transpose(1, 2).reshape(B, T, C))


class MLP(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd)
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd)

    def forward(self, x):
        return self.c_proj(F.gelu(self.c_fc(x), approximate="tanh"))


class Block(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.ln_1, self.attn = nn.LayerNorm(config.n_embd), Attention(config)
        self.ln_2, self.mlp = nn.LayerNorm(config.n_embd), MLP(config)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class MyGPT(nn.Module):
    """A GPT from scratch: embeddings, n_layer pre-LN blocks, a final LayerNorm, a tied LM head."""

    def __init__(self, config):
        super().__init__()
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(config.vocab_size, config.n_embd),
            wpe=nn.Embedding(config.block_size, config.n_embd),
            h=nn.ModuleList([Block(config) for _ in range(config.n_layer)]),
            ln_f=nn.LayerNorm(config.n_embd),
        ))
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.lm_head.weight = self.transformer.wte.weight            # weight tying

    def forward(self, idx):
        """idx [B, T] token ids -> logits [B, T, V]"""
        pos = torch.arange(idx.size(1), device=idx.device)
        x = self.transformer.wte(idx) + self.transformer.wpe(pos)
        for block in self.transformer.h:
            x = block(x)
        return self.lm_head(self.transformer.ln_f(x))


answer = True   # the widget question: changing the first character changes the next character's distribution
