"""The GPT model: token embeddings, a stack of pre-norm decoder blocks, an LM head.

One model class covers two families through its configuration:
    GPT-2 (the defaults): LayerNorm, learned position embeddings, GELU MLP, biases, tied head.
    Llama (e.g. SmolLM2):  RMSNorm, rotary position embeddings (RoPE), SwiGLU MLP, grouped-query
                           attention (fewer key-value heads than query heads), no biases.

Shapes used throughout:
    B = batch size, T = sequence length (new tokens this call), P = cached (past) length,
    C = n_embd, H = n_head, K = n_kv_head (key-value heads), D = C // H (head size), V = vocab_size.

Everything a learner needs to see is here: attention has a readable path (explicit softmax,
returns the maps) and a fast path (``F.scaled_dot_product_attention``); tests hold them equal.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Optional

import torch
import torch.nn as nn
from torch.nn import functional as F

from .checks import from_dict, is_int

_CHOICES = {"norm": ("layernorm", "rmsnorm"), "positions": ("learned", "rope"), "mlp": ("gelu", "swiglu")}


@dataclass
class GPTConfig:
    """Hyper-parameters of a GPT. The defaults are the course's Shakespeare model (GPT-2 style)."""

    vocab_size: int = 65
    block_size: int = 128  # longest context the model can see
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    dropout: float = 0.0
    bias: bool = True  # biases in Linear layers and LayerNorms, as in GPT-2
    # --- the Llama family as configuration; the defaults are GPT-2's choices
    n_kv_head: Optional[int] = None  # key-value heads; fewer than n_head = grouped-query attention
    norm: str = "layernorm"  # or "rmsnorm": scale by the root mean square, no centring, no bias
    norm_eps: float = 1e-5
    positions: str = "learned"  # or "rope": rotate queries and keys by their position
    rope_base: float = 10000.0
    mlp: str = "gelu"  # or "swiglu": silu(gate(x)) * up(x)
    mlp_hidden: Optional[int] = None  # width inside the MLP; None = 4 * n_embd
    tie_weights: bool = True  # the LM head reuses the token embedding matrix

    def __post_init__(self):
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
            value = getattr(self, name)
            if not is_int(value) or value < 1:
                raise ValueError(f"GPTConfig.{name} must be a positive integer, got {value!r}")
        if self.n_embd % self.n_head != 0:
            raise ValueError(
                f"GPTConfig.n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head}) "
                f"so that every head gets n_embd // n_head dimensions"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"GPTConfig.dropout must be in [0, 1), got {self.dropout}")
        for name, choices in _CHOICES.items():
            if getattr(self, name) not in choices:
                raise ValueError(f"GPTConfig.{name} must be one of {choices}, got {getattr(self, name)!r}")
        kv = self.kv_heads
        if not is_int(kv) or kv < 1 or self.n_head % kv:
            raise ValueError(f"GPTConfig.n_kv_head must be a positive integer that divides n_head "
                             f"({self.n_head}), so each key-value head serves a whole group; got {kv!r}")
        if self.positions == "rope" and (self.n_embd // self.n_head) % 2:
            raise ValueError(f"RoPE rotates pairs of dimensions: the head size n_embd // n_head "
                             f"({self.n_embd // self.n_head}) must be even")
        if self.mlp_hidden is not None and (not isinstance(self.mlp_hidden, int) or self.mlp_hidden < 1):
            raise ValueError(f"GPTConfig.mlp_hidden must be a positive integer or None, got {self.mlp_hidden!r}")

    @property
    def kv_heads(self) -> int:
        """Number of key-value heads (n_head unless grouped-query attention)."""
        return self.n_head if self.n_kv_head is None else self.n_kv_head

    @property
    def hidden(self) -> int:
        """Width inside the MLP."""
        return 4 * self.n_embd if self.mlp_hidden is None else self.mlp_hidden

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "GPTConfig":
        return from_dict(cls, d)


@dataclass
class GPTOutput:
    """What ``GPT.forward`` returns.

    logits:          [B, T, V] unnormalised next-token scores at every position.
    loss:            scalar mean cross-entropy when targets were given, else None.
    attentions:      one [B, H, T, P+T] tensor per layer (rows: queries, columns: keys),
                     when ``return_attention=True``; else None.
    hidden_states:   n_layer + 1 tensors of [B, T, C]: the embeddings, then each block's
                     output (before the final norm), when ``return_hidden_states=True``.
    past_key_values: a KVCache when ``use_cache=True``: cache[i] is layer i's (k, v), each
                     [B, K, P+T, D]; pass it back in to continue.
    """

    logits: torch.Tensor
    loss: Optional[torch.Tensor] = None
    attentions: Optional[tuple] = None
    hidden_states: Optional[tuple] = None
    past_key_values: Optional["KVCache"] = None


def causal_mask(T: int, P: int = 0, device=None) -> torch.Tensor:
    """[T, P+T] bool mask, True where query i (at position P+i) may look at key j: j <= P+i."""
    return torch.ones(T, P + T, dtype=torch.bool, device=device).tril(diagonal=P)


def attention(q, k, v, mask=None, is_causal=False, return_attention=False, dropout_p=0.0):
    """Scaled dot-product attention: softmax(q k^T / sqrt(D)) v, one implementation for every model.

    q: [B, H, T, D]; k, v: [B, H, S, D]; mask: bool, broadcastable to [B, H, T, S], True where a
    query may look at a key (or None); is_causal: query i sees keys 0..i (top-left aligned square).
    Returns (y [B, H, T, D], att [B, H, T, S] or None): the readable path (explicit scores and
    softmax, returns the map) when return_attention, else one fused kernel; tests hold them equal.
    """
    if return_attention:
        att = (q @ k.transpose(-2, -1)) / math.sqrt(q.size(-1))  # [B, H, T, S]
        if is_causal:
            mask = causal_mask(q.size(-2), k.size(-2) - q.size(-2), q.device)
        if mask is not None:
            att = att.masked_fill(~mask, float("-inf"))
        att = F.softmax(att, dim=-1)
        return F.dropout(att, dropout_p) @ v, att
    if q.dtype == torch.bfloat16 and q.device.type == "cpu":
        # Mixed precision on a CPU: the matmuls around attention gain from bfloat16, but the CPU's
        # fused attention kernel is several times slower backwards in bfloat16 than in float32.
        # (autocast would cast the inputs back to bfloat16, so it is switched off around the kernel)
        with torch.autocast("cpu", enabled=False):
            y = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), attn_mask=mask,
                                               is_causal=is_causal, dropout_p=dropout_p)
        return y.to(q.dtype), None
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=is_causal, dropout_p=dropout_p), None


def rope_cos_sin(positions: torch.Tensor, head_size: int, base: float):
    """Rotary position embeddings for the given positions [T]: (cos, sin), each [T, D] float32.

    Dimension pair i (dimensions i and i + D/2 of a head) turns by the angle
    position * base^(-2i/D): the first pairs turn fast, the last ones slowly.
    """
    inv_freq = 1.0 / (base ** (torch.arange(0, head_size, 2, device=positions.device).float() / head_size))
    angles = positions.float()[:, None] * inv_freq[None, :]  # [T, D/2]
    angles = torch.cat((angles, angles), dim=-1)  # [T, D]: both halves of a pair share an angle
    return angles.cos(), angles.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate each pair (x_i, x_{i+D/2}) of x [B, heads, T, D] by its angle; same shape out.

    After this, a query at position m and a key at position n score q·k as a function of
    m - n only: attention sees relative positions.
    """
    x1, x2 = x.chunk(2, dim=-1)
    return x * cos + torch.cat((-x2, x1), dim=-1) * sin


class KVCache:
    """The keys and values of the tokens seen so far: one pair of preallocated tensors per layer.

    Each layer stores k and v as [B, K, capacity, D] (only the K key-value heads) and writes new
    tokens in place, so a step copies nothing of the past (no torch.cat); capacity grows by
    doubling up to max_len. ``cache[i]`` is layer i's filled part (k, v), each [B, K, length, D].
    ``length`` counts the stored tokens, ``position`` every token ever fed. With rotary positions
    a full cache slides: the oldest tokens are dropped and the others keep their keys, since
    RoPE scores depend only on the distance between tokens. Learned positions cannot slide
    (every kept token would move to a new position); there a full cache is an error.
    """

    def __init__(self, max_len: int, can_slide: bool = False):
        self.max_len, self.can_slide = max_len, can_slide
        self.keys: list = []
        self.values: list = []
        self.length = 0    # tokens stored
        self.position = 0  # tokens fed so far (= the position of the next token)

    @classmethod
    def from_pairs(cls, pairs, max_len: int, can_slide: bool = False) -> "KVCache":
        """A cache holding the given (k, v) pairs, one per layer, each [B, K, P, D] (not copied:
        the first write grows them into new tensors)."""
        cache = cls(max_len, can_slide)
        cache.keys, cache.values = [k for k, _ in pairs], [v for _, v in pairs]
        cache.length = cache.position = cache.keys[0].size(2) if cache.keys else 0
        return cache

    def __len__(self) -> int:
        return len(self.keys)

    def __getitem__(self, layer: int):
        return self.keys[layer][:, :, :self.length], self.values[layer][:, :, :self.length]

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def make_room(self, T: int) -> int:
        """Before a forward of T new tokens: slide if needed; returns P, the tokens they will see."""
        if self.length + T > self.max_len:
            if not self.can_slide:
                raise ValueError(f"the cache holds {self.length} tokens; {T} more make a sequence longer "
                                 f"than the model's block_size ({self.max_len}); start a new cache with "
                                 f"the last {self.max_len} tokens (mg.generate does this for you)")
            drop = min(self.length, self.length + T - self.max_len)
            for t in self.keys + self.values:  # shift the kept tokens to the front, in place
                t[:, :, :self.length - drop] = t[:, :, drop:self.length].clone()
            self.length -= drop
        P = self.length
        self.length += T
        self.position += T
        return P

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor):
        """Store one layer's new k, v [B, K, T, D] after the past; return all, each [B, K, P+T, D]."""
        end = self.length
        start = end - k.size(2)
        if layer == len(self.keys):
            self.keys.append(None)
            self.values.append(None)
        if self.keys[layer] is None or self.keys[layer].size(2) < end:  # grow: double, at most max_len
            old = self.keys[layer].size(2) if self.keys[layer] is not None else 0
            capacity = min(self.max_len, max(end, 2 * old))
            for store in (self.keys, self.values):
                new = k.new_empty(k.size(0), k.size(1), capacity, k.size(3))
                if store[layer] is not None:
                    new[:, :, :start] = store[layer][:, :, :start]
                store[layer] = new
        self.keys[layer][:, :, start:end] = k
        self.values[layer][:, :, start:end] = v
        return self.keys[layer][:, :, :end], self.values[layer][:, :, :end]

    def crop(self, length: int) -> None:
        """Forget every token after the first ``length`` stored ones (e.g. to branch off there)."""
        if not 0 <= length <= self.length:
            raise ValueError(f"can crop the cache to 0..{self.length} tokens, not {length}")
        self.position -= self.length - length
        self.length = length


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention where each position sees only itself and the past.

    With n_kv_head < n_head (grouped-query attention) each key-value head is shared by a group
    of n_head // n_kv_head query heads: the cache is that many times smaller.
    """

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.n_head, self.n_kv_head = config.n_head, config.kv_heads
        self.head_size = config.n_embd // config.n_head
        # q for every head, k and v for the key-value heads, in one matmul
        self.c_attn = nn.Linear(config.n_embd, (self.n_head + 2 * self.n_kv_head) * self.head_size, bias=config.bias)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = config.dropout
        self.resid_dropout = nn.Dropout(config.dropout)

    def forward(self, x, rope=None, cache=None, layer=0, return_attention=False):
        """x: [B, T, C]; rope: (cos, sin) each [T, D] or None; cache: a KVCache or None.

        Returns (y [B, T, C], att [B, H, T, P+T] or None).
        """
        B, T, C = x.shape
        H, K, D = self.n_head, self.n_kv_head, self.head_size
        q, k, v = self.c_attn(x).split((H * D, K * D, K * D), dim=2)
        # [B, T, heads * D] -> [B, heads, T, D]: each head works on its own slice of the channels
        q = q.view(B, T, H, D).transpose(1, 2)
        k, v = k.view(B, T, K, D).transpose(1, 2), v.view(B, T, K, D).transpose(1, 2)
        if rope is not None:
            q, k = apply_rope(q, *rope), apply_rope(k, *rope)
        if cache is not None:
            k, v = cache.update(layer, k, v)  # [B, K, P+T, D]
        P = k.size(2) - T
        dropout_p = self.dropout if self.training else 0.0
        G = H // K
        if return_attention:
            if G > 1:  # query head h reads key-value head h // G
                k, v = k.repeat_interleave(G, dim=1), v.repeat_interleave(G, dim=1)
            y, att = attention(q, k, v, mask=causal_mask(T, P, x.device), return_attention=True, dropout_p=dropout_p)
        else:
            # Grouped-query attention: fold each group's G query heads into rows of one head,
            # [B, H, T, D] -> [B, K, G*T, D], so the stored k and v serve them as they are
            # (no copy of the cache per step; far faster on CPU than SDPA's enable_gqa).
            # A prompt without a cache (P = 0) is one causal square: there the shared heads are
            # repeated instead, since is_causal (aligned top-left) beats an explicit mask.
            causal = P == 0 and T > 1
            if causal and G > 1:
                k, v = k.repeat_interleave(G, dim=1), v.repeat_interleave(G, dim=1)
            elif G > 1:
                q = q.reshape(B, K, G * T, D)
            # one new query may see every key, so it needs no mask at all
            mask = None if T == 1 or causal else causal_mask(T, P, x.device).repeat(G, 1)  # [G*T, P+T]
            y, att = attention(q, k, v, mask=mask, is_causal=causal, dropout_p=dropout_p)
            y = y.reshape(B, H, T, D)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # heads side by side again
        return self.resid_dropout(self.c_proj(y)), att


class MLP(nn.Module):
    """Position-wise feed-forward network: widen, a non-linearity, project back.

    GELU (GPT-2): c_proj(gelu(c_fc(x))). SwiGLU (Llama): c_fc computes a gate and a value side
    by side, and c_proj(silu(gate) * value) lets the gate switch each hidden unit on or off.
    """

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.swiglu = config.mlp == "swiglu"
        self.c_fc = nn.Linear(config.n_embd, (2 if self.swiglu else 1) * config.hidden, bias=config.bias)
        self.gelu = nn.GELU(approximate="tanh")  # GPT-2's GELU, so imported weights match exactly
        self.c_proj = nn.Linear(config.hidden, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x):
        """x: [B, T, C] -> [B, T, C]"""
        h = self.c_fc(x)
        if self.swiglu:
            gate, value = h.chunk(2, dim=-1)
            h = F.silu(gate) * value
        else:
            h = self.gelu(h)
        return self.dropout(self.c_proj(h))


def make_norm(config: GPTConfig) -> nn.Module:
    """LayerNorm (centre, scale to unit variance, gain and bias) or RMSNorm (scale by the root
    mean square only, a gain, no bias): Llama's cheaper choice."""
    if config.norm == "rmsnorm":
        return nn.RMSNorm(config.n_embd, eps=config.norm_eps)
    return nn.LayerNorm(config.n_embd, eps=config.norm_eps, bias=config.bias)


class Block(nn.Module):
    """One decoder block: x + attn(norm(x)), then x + mlp(norm(x)) (pre-norm, as in GPT-2 and Llama)."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.ln_1 = make_norm(config)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = make_norm(config)
        self.mlp = MLP(config)

    def forward(self, x, rope=None, cache=None, layer=0, return_attention=False):
        """x: [B, T, C] -> (x [B, T, C], att or None)"""
        a, att = self.attn(self.ln_1(x), rope, cache, layer, return_attention)
        x = x + a  # the residual stream carries x past the attention...
        x = x + self.mlp(self.ln_2(x))  # ...and past the MLP
        return x, att


class GPT(nn.Module):
    """A decoder-only Transformer language model: GPT-2, or a Llama-family model by configuration."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        if not isinstance(config, GPTConfig):
            raise TypeError(f"GPT takes a GPTConfig, got {type(config).__name__}")
        self.config = config
        learned = config.positions == "learned"  # else rotary: no position parameters at all
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(config.vocab_size, config.n_embd),  # token embeddings
            **(dict(wpe=nn.Embedding(config.block_size, config.n_embd)) if learned else {}),  # positions
            drop=nn.Dropout(config.dropout),
            h=nn.ModuleList([Block(config) for _ in range(config.n_layer)]),
            ln_f=make_norm(config),
        ))
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        if config.tie_weights:  # the same matrix reads tokens in and scores them out
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
        if non_embedding and "wpe" in self.transformer:
            n -= self.transformer.wpe.weight.numel()
        return n

    @property
    def device(self) -> torch.device:
        return self.lm_head.weight.device

    def _check_input(self, idx, targets, cache):
        if not isinstance(idx, torch.Tensor) or idx.dim() != 2 or idx.dtype != torch.long:
            got = f"{tuple(idx.shape)} {idx.dtype}" if isinstance(idx, torch.Tensor) else type(idx).__name__
            raise ValueError(f"idx must be a [batch, seq] tensor of torch.long token ids, got {got}; "
                             f"for one sequence use idx[None]")
        B, T = idx.shape
        if T == 0:
            raise ValueError("idx is empty: give at least one token")
        P = 0 if cache is None or cache.can_slide else cache.length  # a sliding cache makes room itself
        if P + T > self.config.block_size:
            raise ValueError(
                f"sequence of {P + T} tokens is longer than the model's block_size "
                f"({self.config.block_size}); crop it to the last {self.config.block_size} tokens "
                f"(mg.generate does this for you)")
        if cache is not None and len(cache) and cache.keys[0].size(0) != B:
            raise ValueError(f"the cache holds {cache.keys[0].size(0)} sequences but idx has {B}")
        if targets is not None and targets.shape != idx.shape:
            raise ValueError(f"targets must have the shape of idx {tuple(idx.shape)}, got {tuple(targets.shape)}")
        # Checking the id values reads them: cheap on the CPU, but on a GPU a sync every step, so
        # there the callers (generate, encode) check them; compiled graphs cannot branch on them.
        if idx.device.type == "cpu" and not torch.compiler.is_compiling():
            lo, hi = torch.aminmax(idx)
            if lo < 0 or hi >= self.config.vocab_size:
                bad = int(lo) if lo < 0 else int(hi)
                raise ValueError(f"token id {bad} is out of range for vocab_size {self.config.vocab_size}; "
                                 f"was this text encoded with the tokenizer the model was trained with?")

    def new_cache(self) -> KVCache:
        """An empty KVCache for this model (block_size long; slides with rotary positions)."""
        return KVCache(self.config.block_size, can_slide=self.config.positions == "rope")

    def forward(self, idx, targets=None, return_attention=False, return_hidden_states=False,
                past_key_values=None, use_cache=False, last_only=False) -> GPTOutput:
        """Run the model.

        idx:             [B, T] token ids (torch.long); without rotary positions
                         T + cached length <= block_size.
        targets:         optional [B, T] next-token ids; positions set to -100 are ignored.
        past_key_values: optional KVCache from an earlier call with ``use_cache=True`` (updated in
                         place), or a list of (k, v) pairs, each [B, K, P, D].
        last_only:       logits for the last position only ([B, 1, V]): all that generation needs,
                         and it saves the LM head's work for the others (a large share of a prefill).
        Returns a GPTOutput (logits [B, T, V], loss, attentions, hidden_states, past_key_values).
        """
        cache = past_key_values
        if cache is not None and not isinstance(cache, KVCache):
            cache = KVCache.from_pairs(cache, self.config.block_size, self.config.positions == "rope")
        if cache is None and use_cache:
            cache = self.new_cache()
        self._check_input(idx, targets, cache)
        T = idx.size(1)
        start = 0
        if cache is not None:
            start = cache.position  # the position of the first new token
            cache.make_room(T)
        pos = torch.arange(start, start + T, device=idx.device)
        x = self.transformer.wte(idx)  # [B, T, C]
        rope = None
        if self.config.positions == "learned":
            x = x + self.transformer.wpe(pos)
        else:
            cos, sin = rope_cos_sin(pos, self.config.n_embd // self.config.n_head, self.config.rope_base)
            rope = cos.to(x.dtype), sin.to(x.dtype)
        x = self.transformer.drop(x)
        attentions, hidden = [], [x]
        for i, block in enumerate(self.transformer.h):
            x, att = block(x, rope, cache, i, return_attention)
            attentions.append(att)
            hidden.append(x)
        if last_only and targets is None:
            x = x[:, -1:]
        logits = self.lm_head(self.transformer.ln_f(x))  # [B, T, V] ([B, 1, V] with last_only)
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

    # ------------------------------------------------------------------ Llama weights

    @staticmethod
    def config_from_llama(hf_config, block_size: Optional[int] = None) -> GPTConfig:
        """GPTConfig equivalent to a ``transformers.LlamaConfig`` (block_size defaults to its
        max_position_embeddings)."""
        return GPTConfig(
            vocab_size=hf_config.vocab_size, block_size=block_size or hf_config.max_position_embeddings,
            n_layer=hf_config.num_hidden_layers, n_head=hf_config.num_attention_heads,
            n_embd=hf_config.hidden_size, n_kv_head=hf_config.num_key_value_heads, dropout=0.0, bias=False,
            norm="rmsnorm", norm_eps=hf_config.rms_norm_eps, positions="rope",
            rope_base=float((getattr(hf_config, "rope_parameters", None) or {}).get("rope_theta")
                            or hf_config.rope_theta),
            mlp="swiglu", mlp_hidden=hf_config.intermediate_size, tie_weights=hf_config.tie_word_embeddings)

    @classmethod
    def from_llama_state_dict(cls, state_dict: dict, config: GPTConfig) -> "GPT":
        """Build a GPT from a ``transformers`` LlamaForCausalLM state dict (names ``model.layers.
        {i}.self_attn.q_proj.weight`` ...): q, k, v are stacked into c_attn, gate and up into
        c_fc, in that order."""
        sd = {k.removeprefix("module."): v for k, v in state_dict.items()}
        names = {"transformer.wte.weight": ["model.embed_tokens.weight"],
                 "transformer.ln_f.weight": ["model.norm.weight"]}
        if not config.tie_weights:
            names["lm_head.weight"] = ["lm_head.weight"]
        for i in range(config.n_layer):
            hf, ours = f"model.layers.{i}.", f"transformer.h.{i}."
            names[ours + "ln_1.weight"] = [hf + "input_layernorm.weight"]
            names[ours + "attn.c_attn.weight"] = [hf + f"self_attn.{p}_proj.weight" for p in "qkv"]
            names[ours + "attn.c_proj.weight"] = [hf + "self_attn.o_proj.weight"]
            names[ours + "ln_2.weight"] = [hf + "post_attention_layernorm.weight"]
            names[ours + "mlp.c_fc.weight"] = [hf + "mlp.gate_proj.weight", hf + "mlp.up_proj.weight"]
            names[ours + "mlp.c_proj.weight"] = [hf + "mlp.down_proj.weight"]
        missing = [n for parts in names.values() for n in parts if n not in sd]
        if missing:
            raise ValueError(f"Llama state dict lacks {len(missing)} weights, e.g. {missing[:3]}; "
                             f"is it a LlamaForCausalLM state dict?")
        with torch.device("meta"):
            model = cls(config)  # no time spent on a random initialisation we overwrite
        # pop as we go, so each source tensor is freed once copied (a 135M model is 540 MB in float32)
        ours = {k: (sd.pop(parts[0]) if len(parts) == 1 else torch.cat([sd.pop(n) for n in parts])).float()
                for k, parts in names.items()}
        if config.tie_weights:
            ours["lm_head.weight"] = ours["transformer.wte.weight"]
        expected = {k: v.shape for k, v in model.state_dict().items()}
        for k, w in ours.items():
            if w.shape != expected[k]:
                raise ValueError(f"weight {k} has shape {tuple(w.shape)} but the config "
                                 f"needs {tuple(expected[k])}; does the config match the checkpoint?")
        model.load_state_dict(ours, strict=True, assign=True)
        if config.tie_weights:
            model.lm_head.weight = model.transformer.wte.weight
        return model
