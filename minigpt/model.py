"""The GPT model: token + position embeddings, a stack of pre-LayerNorm decoder blocks, an LM head.

Shapes used throughout:
    B = batch size, T = sequence length (new tokens this call), P = cached (past) length,
    C = n_embd, H = n_head, D = C // H (head size), V = vocab_size.

Everything a learner needs to see is here: attention has a readable path (explicit softmax,
returns the maps) and a fast path (``F.scaled_dot_product_attention``); tests hold them equal.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Optional

import torch
import torch.nn as nn
from torch.nn import functional as F


@dataclass
class GPTConfig:
    """Hyper-parameters of a GPT. The defaults are the course's Shakespeare model."""

    vocab_size: int = 65
    block_size: int = 128  # longest context the model can see (learned positions)
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    dropout: float = 0.0
    bias: bool = True  # biases in Linear layers and LayerNorms, as in GPT-2

    def __post_init__(self):
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"GPTConfig.{name} must be a positive integer, got {value!r}")
        if self.n_embd % self.n_head != 0:
            raise ValueError(
                f"GPTConfig.n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head}) "
                f"so that every head gets n_embd // n_head dimensions"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"GPTConfig.dropout must be in [0, 1), got {self.dropout}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "GPTConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown GPTConfig fields {sorted(unknown)}; known fields are {sorted(known)}")
        return cls(**d)


@dataclass
class GPTOutput:
    """What ``GPT.forward`` returns.

    logits:          [B, T, V] unnormalised next-token scores at every position.
    loss:            scalar mean cross-entropy when targets were given, else None.
    attentions:      one [B, H, T, P+T] tensor per layer (rows: queries, columns: keys),
                     when ``return_attention=True``; else None.
    hidden_states:   n_layer + 1 tensors of [B, T, C]: the embeddings, then each block's
                     output (before the final LayerNorm), when ``return_hidden_states=True``.
    past_key_values: one (k, v) pair per layer, each [B, H, P+T, D], when ``use_cache=True``.
    """

    logits: torch.Tensor
    loss: Optional[torch.Tensor] = None
    attentions: Optional[tuple] = None
    hidden_states: Optional[tuple] = None
    past_key_values: Optional[list] = None


def causal_mask(T: int, P: int = 0, device=None) -> torch.Tensor:
    """[T, P+T] bool mask, True where query i (at position P+i) may look at key j: j <= P+i."""
    return torch.ones(T, P + T, dtype=torch.bool, device=device).tril(diagonal=P)


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention where each position sees only itself and the past."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.n_head = config.n_head
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)  # q, k, v at once
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = config.dropout
        self.attn_dropout = nn.Dropout(config.dropout)
        self.resid_dropout = nn.Dropout(config.dropout)

    def forward(self, x, past_kv=None, return_attention=False):
        """x: [B, T, C]; past_kv: optional (k, v) each [B, H, P, D].

        Returns (y [B, T, C], att [B, H, T, P+T] or None, (k, v) each [B, H, P+T, D]).
        """
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        # [B, T, C] -> [B, H, T, D]: each head works on its own slice of the channels
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        if past_kv is not None:
            k, v = torch.cat((past_kv[0], k), dim=2), torch.cat((past_kv[1], v), dim=2)
        P = k.size(2) - T
        att = None
        if return_attention:
            # The readable path: scores, mask, softmax, weighted sum of values.
            att = (q @ k.transpose(-2, -1)) / math.sqrt(k.size(-1))  # [B, H, T, P+T]
            att = att.masked_fill(~causal_mask(T, P, x.device), float("-inf"))
            att = F.softmax(att, dim=-1)
            y = self.attn_dropout(att) @ v  # [B, H, T, D]
        else:
            # The fast path: one fused kernel, same numbers (tests hold them equal).
            # is_causal aligns the mask top-left, which is right only without a cache;
            # one new query with a cache may see every key, so it needs no mask at all.
            mask = None if P == 0 or T == 1 else causal_mask(T, P, x.device)
            y = F.scaled_dot_product_attention(
                q, k, v, attn_mask=mask, is_causal=(P == 0 and T > 1),
                dropout_p=self.dropout if self.training else 0.0,
            )
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # heads side by side again
        return self.resid_dropout(self.c_proj(y)), att, (k, v)


class MLP(nn.Module):
    """Position-wise feed-forward network: widen 4x, GELU, project back."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.gelu = nn.GELU(approximate="tanh")  # GPT-2's GELU, so imported weights match exactly
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x):
        """x: [B, T, C] -> [B, T, C]"""
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))


class Block(nn.Module):
    """One decoder block: x + attn(LN(x)), then x + mlp(LN(x)) (pre-LayerNorm, as in GPT-2)."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x, past_kv=None, return_attention=False):
        """x: [B, T, C] -> (x [B, T, C], att or None, (k, v))"""
        a, att, kv = self.attn(self.ln_1(x), past_kv, return_attention)
        x = x + a  # the residual stream carries x past the attention...
        x = x + self.mlp(self.ln_2(x))  # ...and past the MLP
        return x, att, kv


class GPT(nn.Module):
    """A decoder-only Transformer language model (GPT-2 architecture)."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        if not isinstance(config, GPTConfig):
            raise TypeError(f"GPT takes a GPTConfig, got {type(config).__name__}")
        self.config = config
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(config.vocab_size, config.n_embd),  # token embeddings
            wpe=nn.Embedding(config.block_size, config.n_embd),  # learned position embeddings
            drop=nn.Dropout(config.dropout),
            h=nn.ModuleList([Block(config) for _ in range(config.n_layer)]),
            ln_f=nn.LayerNorm(config.n_embd, bias=config.bias),
        ))
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        # Weight tying: the same matrix reads tokens in and scores them out.
        self.transformer.wte.weight = self.lm_head.weight
        self.apply(self._init_weights)
        # GPT-2: scale the projections into the residual stream by 1/sqrt(2 * n_layer),
        # so the stream's variance does not grow with depth.
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    @staticmethod
    def _init_weights(module):
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def num_params(self, non_embedding: bool = False) -> int:
        """Number of parameters (tied weights counted once); optionally without position embeddings."""
        n = sum(p.numel() for p in self.parameters())
        return n - self.transformer.wpe.weight.numel() if non_embedding else n

    @property
    def device(self) -> torch.device:
        return self.lm_head.weight.device

    def _check_input(self, idx, targets, P):
        if not isinstance(idx, torch.Tensor) or idx.dim() != 2 or idx.dtype != torch.long:
            got = f"{tuple(idx.shape)} {idx.dtype}" if isinstance(idx, torch.Tensor) else type(idx).__name__
            raise ValueError(f"idx must be a [batch, seq] tensor of torch.long token ids, got {got}; "
                             f"for one sequence use idx[None]")
        B, T = idx.shape
        if T == 0:
            raise ValueError("idx is empty: give at least one token")
        if P + T > self.config.block_size:
            raise ValueError(
                f"sequence of {P + T} tokens is longer than the model's block_size "
                f"({self.config.block_size}); crop it to the last {self.config.block_size} tokens "
                f"(mg.generate does this for you)")
        if torch.compiler.is_compiling():
            return  # value checks would break the compiled graph; eager runs have checked them
        lo, hi = int(idx.min()), int(idx.max())
        if lo < 0 or hi >= self.config.vocab_size:
            bad = lo if lo < 0 else hi
            raise ValueError(f"token id {bad} is out of range for vocab_size {self.config.vocab_size}; "
                             f"was this text encoded with the tokenizer the model was trained with?")
        if targets is not None and targets.shape != idx.shape:
            raise ValueError(f"targets must have the shape of idx {tuple(idx.shape)}, got {tuple(targets.shape)}")

    def forward(self, idx, targets=None, return_attention=False, return_hidden_states=False,
                past_key_values=None, use_cache=False) -> GPTOutput:
        """Run the model.

        idx:             [B, T] token ids (torch.long), T + cached length <= block_size.
        targets:         optional [B, T] next-token ids; positions set to -100 are ignored.
        past_key_values: optional cache from an earlier call with ``use_cache=True``.
        Returns a GPTOutput (logits [B, T, V], loss, attentions, hidden_states, past_key_values).
        """
        P = 0 if past_key_values is None else past_key_values[0][0].size(2)
        self._check_input(idx, targets, P)
        T = idx.size(1)
        pos = torch.arange(P, P + T, device=idx.device)
        x = self.transformer.drop(self.transformer.wte(idx) + self.transformer.wpe(pos))  # [B, T, C]
        attentions, hidden, cache = [], [x], []
        for i, block in enumerate(self.transformer.h):
            x, att, kv = block(x, None if past_key_values is None else past_key_values[i], return_attention)
            attentions.append(att)
            hidden.append(x)
            cache.append(kv)
        logits = self.lm_head(self.transformer.ln_f(x))  # [B, T, V]
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1), ignore_index=-100)
        return GPTOutput(
            logits=logits,
            loss=loss,
            attentions=tuple(attentions) if return_attention else None,
            hidden_states=tuple(hidden) if return_hidden_states else None,
            past_key_values=cache if use_cache else None,
        )

    # ------------------------------------------------------------------ GPT-2 weights

    @classmethod
    def from_gpt2_state_dict(cls, state_dict: dict, config: GPTConfig) -> "GPT":
        """Build a GPT from a ``transformers`` GPT2LMHeadModel state dict.

        GPT-2 stores its Linear layers as ``Conv1D`` with the weight transposed ([in, out]);
        we transpose those four matrices and copy everything else as it is.
        """
        model = cls(config)
        ours = model.state_dict()
        theirs = {k.removeprefix("module."): v for k, v in state_dict.items()
                  if not k.endswith((".attn.bias", ".attn.masked_bias"))}  # causal-mask buffers
        transposed = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
        missing = [k for k in ours if k not in theirs]
        if missing:
            raise ValueError(f"GPT-2 state dict lacks {len(missing)} weights, e.g. {missing[:3]}; "
                             f"is it a GPT2LMHeadModel state dict?")
        with torch.no_grad():
            for k in ours:
                w = theirs[k].t() if k.endswith(transposed) else theirs[k]
                if w.shape != ours[k].shape:
                    raise ValueError(f"weight {k} has shape {tuple(w.shape)} but the config "
                                     f"needs {tuple(ours[k].shape)}; does the config match the checkpoint?")
                ours[k].copy_(w)
        return model

    @staticmethod
    def config_from_gpt2(hf_config) -> GPTConfig:
        """GPTConfig equivalent to a ``transformers.GPT2Config``."""
        return GPTConfig(vocab_size=hf_config.vocab_size, block_size=hf_config.n_positions,
                         n_layer=hf_config.n_layer, n_head=hf_config.n_head, n_embd=hf_config.n_embd,
                         dropout=0.0, bias=True)

    @classmethod
    def from_gpt2(cls, name: str = "gpt2") -> "GPT":
        """Load real GPT-2 weights (``gpt2``, ``gpt2-medium``, ``gpt2-large``, ``gpt2-xl``, or a
        local folder) through ``transformers``; downloads from the Hugging Face Hub where online."""
        try:
            from transformers import GPT2LMHeadModel
        except ImportError as e:
            raise ImportError("GPT.from_gpt2 needs the transformers package: pip install transformers") from e
        try:
            hf = GPT2LMHeadModel.from_pretrained(name)
        except OSError as e:
            raise OSError(f"could not load GPT-2 weights {name!r}: {e}. Offline, pass the path of a "
                          f"folder saved with GPT2LMHeadModel.save_pretrained instead.") from e
        return cls.from_gpt2_state_dict(hf.state_dict(), cls.config_from_gpt2(hf.config))
