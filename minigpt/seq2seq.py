"""The Transformer encoder–decoder: the question goes through an encoder, the reply comes out of a
decoder that attends to it (cross-attention), as in the original Transformer.

    cfg = Seq2SeqConfig(vocab_size=tok.vocab_size, pad_id=..., sos_id=..., eos_id=...)
    model = Seq2Seq(cfg)
    out = model(batch, targets=y)            # batch: a Seq2SeqBatch (src, src_mask, tgt)
    out.cross_attentions[layer]              # [B, H, T_dec, T_enc]: where each reply token looked
    greedy_reply(model, src_ids)             # ids of the reply, with the decoder's KV cache
    beam_reply(model, tok, src_ids, beam_width=5)   # minigpt.beam's search, driven by seq2seq_step

Pieces come from model.py: the decoder's causal self-attention is ``CausalSelfAttention`` itself
(with its KVCache), the MLP, the norms and the weight initialisation are GPT's. The encoder's
self-attention is the same module (same weights layout) with a padding mask instead of the
causal one; cross-attention takes queries from the decoder and keys and values from the
encoder's output, computed once per question (``DecoderState.cross_kv``).

Shapes: B batch, S source (question) length, T target (reply) length, C n_embd, H n_head,
D = C // H, V vocab_size.

Teacher forcing is parallel here: the decoder reads the whole reply at once and the causal mask
keeps each position from seeing the ones after it. ``teacher_forcing_ratio`` < 1 trains with
scheduled sampling in two passes: the first (no gradient) predicts every next token, then each
decoder input after <sos> is replaced by the model's own prediction with probability 1 - ratio,
and the second pass learns from that mix. Evaluation always uses teacher forcing.

The same step-function interface (``start``, ``step``, ``DecoderState.reorder``) is implemented
by ``minigpt.rnn.GRUSeq2Seq``, so ``greedy_reply``, ``seq2seq_step`` and ``beam_reply`` serve both.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Optional

import torch
import torch.nn as nn
from torch.nn import functional as F

from .beam import BeamSearchResult, search
from .checks import check_int, check_number, from_dict, is_int
from .dialogue_pairs import Seq2SeqBatch, encode_context
from .model import GPT, MLP, CausalSelfAttention, GPTConfig, KVCache, attention, make_norm
from .runtime import eval_mode
from .sampling import Knobs, Stops, seen_mask


@dataclass
class Seq2SeqConfig:
    """Hyper-parameters of the encoder–decoder (and the ids of its three special tokens)."""

    vocab_size: int = 256
    block_size: int = 64          # longest decoder input (<sos> + reply), as the Trainer reads it
    src_block_size: int = 128     # longest question
    n_layer: int = 2              # decoder blocks
    n_encoder_layer: Optional[int] = None  # encoder blocks; None = n_layer
    n_head: int = 4
    n_embd: int = 128
    dropout: float = 0.0
    bias: bool = True
    pad_id: int = 0
    sos_id: int = 1
    eos_id: int = 2
    teacher_forcing_ratio: float = 1.0  # < 1: scheduled sampling while training
    decoder_lr_scale: float = 1.0       # the decoder's learning rate = the Trainer's x this (optim_groups)

    def __post_init__(self):
        for name in ("vocab_size", "block_size", "src_block_size", "n_layer", "n_head", "n_embd"):
            check_int(getattr(self, name), f"Seq2SeqConfig.{name}", low=1)
        check_int(self.n_encoder_layer, "Seq2SeqConfig.n_encoder_layer", low=1, allow_none=True)
        for name in ("pad_id", "sos_id", "eos_id"):
            value = getattr(self, name)
            if not is_int(value) or not 0 <= value < self.vocab_size:
                raise ValueError(f"Seq2SeqConfig.{name} must be a token id in [0, {self.vocab_size}), got {value!r}")
        check_number(self.teacher_forcing_ratio, "Seq2SeqConfig.teacher_forcing_ratio", 0, 1)
        check_number(self.decoder_lr_scale, "Seq2SeqConfig.decoder_lr_scale", 0, low_open=True)
        self.gpt_config()  # n_embd divisible by n_head, dropout in [0, 1): GPTConfig says so

    @property
    def encoder_layers(self) -> int:
        return self.n_layer if self.n_encoder_layer is None else self.n_encoder_layer

    def gpt_config(self) -> GPTConfig:
        """The GPTConfig the shared pieces (attention, MLP, norms) are built from."""
        return GPTConfig(vocab_size=self.vocab_size, block_size=max(self.block_size, self.src_block_size),
                         n_layer=self.n_layer, n_head=self.n_head, n_embd=self.n_embd, dropout=self.dropout,
                         bias=self.bias)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Seq2SeqConfig":
        return from_dict(cls, d)


@dataclass
class Seq2SeqOutput:
    """What ``Seq2Seq.forward`` (and ``GRUSeq2Seq.forward``) returns.

    logits:             [B, T, V] next-token scores at every decoder position.
    loss:               mean cross-entropy over targets that are not -100, when targets were given.
    encoder_attentions: one [B, H, S, S] per encoder layer, with ``return_attention=True``.
    decoder_attentions: one [B, H, T, T] per decoder layer (causal self-attention).
    cross_attentions:   one [B, H, T, S] per decoder layer: row t is where reply token t looked
                        in the question (the GRU gives one [B, 1, T, S]: its Luong weights).
    """

    logits: torch.Tensor
    loss: Optional[torch.Tensor] = None
    encoder_attentions: Optional[tuple] = None
    decoder_attentions: Optional[tuple] = None
    cross_attentions: Optional[tuple] = None


def _heads(x: torch.Tensor, H: int) -> torch.Tensor:
    """[B, T, C] -> [B, H, T, C // H]"""
    B, T, C = x.shape
    return x.view(B, T, H, C // H).transpose(1, 2)


def _merge(y: torch.Tensor) -> torch.Tensor:
    """[B, H, T, D] -> [B, T, H * D]"""
    B, H, T, D = y.shape
    return y.transpose(1, 2).reshape(B, T, H * D)


class EncoderSelfAttention(CausalSelfAttention):
    """GPT's attention module (same weights: c_attn, c_proj) where every token sees every real
    token of the question, before and after it: only padding is masked."""

    def forward(self, x, mask=None, return_attention=False):
        """x: [B, S, C]; mask: [B, 1, 1, S] bool (True at real tokens) -> (y [B, S, C], att [B, H, S, S] or None)"""
        q, k, v = (_heads(t, self.n_head) for t in self.c_attn(x).split(x.size(-1), dim=2))
        y, att = attention(q, k, v, mask, return_attention=return_attention,
                           dropout_p=self.dropout if self.training else 0.0)
        return self.resid_dropout(self.c_proj(_merge(y))), att


class CrossAttention(nn.Module):
    """Queries from the decoder, keys and values from the encoder's output (the question)."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.n_head, self.dropout = config.n_head, config.dropout
        self.q_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.kv_proj = nn.Linear(config.n_embd, 2 * config.n_embd, bias=config.bias)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.resid_dropout = nn.Dropout(config.dropout)

    def keys_values(self, memory: torch.Tensor):
        """memory: [B, S, C] encoder output -> (k, v), each [B, H, S, D]; computed once per question."""
        k, v = self.kv_proj(memory).split(memory.size(-1), dim=2)
        return _heads(k, self.n_head), _heads(v, self.n_head)

    def forward(self, x, kv, mask=None, return_attention=False):
        """x: [B, T, C]; kv: from keys_values; mask: [B, 1, 1, S] -> (y [B, T, C], att [B, H, T, S] or None)"""
        y, att = attention(_heads(self.q_proj(x), self.n_head), *kv, mask, return_attention=return_attention,
                           dropout_p=self.dropout if self.training else 0.0)
        return self.resid_dropout(self.c_proj(_merge(y))), att


class EncoderBlock(nn.Module):
    """x + attn(norm(x)) over the whole question, then x + mlp(norm(x)) (pre-norm, as GPT's Block)."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.ln_1, self.attn = make_norm(config), EncoderSelfAttention(config)
        self.ln_2, self.mlp = make_norm(config), MLP(config)

    def forward(self, x, mask=None, return_attention=False):
        a, att = self.attn(self.ln_1(x), mask, return_attention)
        x = x + a
        return x + self.mlp(self.ln_2(x)), att


class DecoderBlock(nn.Module):
    """GPT's block with cross-attention between its two halves: causal self-attention over the
    reply so far, then attention to the question, then the MLP; each adds to the residual stream."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.ln_1, self.attn = make_norm(config), CausalSelfAttention(config)
        self.ln_x, self.cross = make_norm(config), CrossAttention(config)
        self.ln_2, self.mlp = make_norm(config), MLP(config)

    def forward(self, x, kv, mask, cache=None, layer=0, return_attention=False):
        """x: [B, T, C] -> (x [B, T, C], self-attention map or None, cross-attention map or None)"""
        a, self_att = self.attn(self.ln_1(x), None, cache, layer, return_attention)
        x = x + a
        a, cross_att = self.cross(self.ln_x(x), kv, mask, return_attention)
        x = x + a
        return x + self.mlp(self.ln_2(x)), self_att, cross_att


@dataclass
class DecoderState:
    """What decoding one question needs between steps.

    cross_kv: per decoder layer (k, v), each [B, H, S, D]: the question's keys and values.
    mask:     [B, 1, 1, S] bool, True at real question tokens.
    cache:    the decoder's KVCache (its own past keys and values), or None.
    """

    cross_kv: list
    mask: torch.Tensor
    cache: Optional[KVCache] = None

    def reorder(self, rows: torch.Tensor) -> "DecoderState":
        """Row i becomes the old row rows[i] (beam search follows the surviving beams)."""
        if self.cache is not None:
            self.cache.keys = [k.index_select(0, rows) for k in self.cache.keys]
            self.cache.values = [v.index_select(0, rows) for v in self.cache.values]
        self.cross_kv = [(k.index_select(0, rows), v.index_select(0, rows)) for k, v in self.cross_kv]
        self.mask = self.mask.index_select(0, rows)
        return self


def decoder_optim_groups(model: nn.Module, decoder_params, weight_decay: float, lr_scale: float) -> list[dict]:
    """AdamW groups with a learning rate of its own for the decoder, as PyTorch's chatbot tutorial
    (decoder_learning_ratio): the Trainer sets each group's lr to its scheduled lr x ``lr_scale``.

    decoder_params: the decoder's own parameters (not shared ones). Returns up to four groups,
    "encoder" and "decoder", each split as the Trainer's ``param_groups``: weight decay on >= 2-D
    weights, none on biases and norm gains. Each group has "name", "weight_decay", "lr_scale".
    """
    own = {id(p) for p in decoder_params}
    groups = []
    for part, scale in (("encoder", 1.0), ("decoder", float(lr_scale))):
        params = [p for p in model.parameters() if p.requires_grad and (id(p) in own) == (part == "decoder")]
        groups += [{"name": f"{part} weights", "params": [p for p in params if p.dim() >= 2],
                    "weight_decay": weight_decay, "lr_scale": scale},
                   {"name": f"{part} biases and gains", "params": [p for p in params if p.dim() < 2],
                    "weight_decay": 0.0, "lr_scale": scale}]
    return [g for g in groups if g["params"]]


def check_source(src, src_mask, vocab_size: int, max_len: Optional[int], pad_id: int):
    """src [B, S] long ids (a 1-D tensor or list is one question) and its mask [B, S] bool
    (default: src != pad_id), checked; returns (src, src_mask)."""
    if not isinstance(src, torch.Tensor):
        try:
            src = torch.as_tensor(src, dtype=torch.long)
        except (TypeError, ValueError):
            raise ValueError(f"the question must be token ids (a [batch, seq] tensor or a list of ints), "
                             f"got {type(src).__name__}; encode text with the tokenizer first") from None
    if src.dim() == 1:
        src = src[None]
    if src.dim() != 2 or src.dtype != torch.long or src.size(1) == 0:
        raise ValueError(f"the question must be a non-empty [batch, seq] tensor of torch.long ids, got "
                         f"{tuple(src.shape)} {src.dtype}")
    if max_len is not None and src.size(1) > max_len:
        raise ValueError(f"the question has {src.size(1)} tokens but the model takes at most src_block_size="
                         f"{max_len}; crop it (encode_pair keeps the last max_src_len tokens)")
    lo, hi = torch.aminmax(src)
    if lo < 0 or hi >= vocab_size:
        raise ValueError(f"token id {int(lo) if lo < 0 else int(hi)} is outside the vocabulary (0..{vocab_size - 1}); "
                         f"was the question encoded with the model's tokenizer?")
    if src_mask is None:
        src_mask = src != pad_id
    if src_mask.shape != src.shape or src_mask.dtype != torch.bool:
        raise ValueError(f"src_mask must be a bool tensor shaped like src {tuple(src.shape)}, got "
                         f"{tuple(src_mask.shape)} {src_mask.dtype}")
    if not bool(src_mask.any(1).all()):
        raise ValueError("a question in the batch has no real token (all padding): nothing to attend to")
    return src, src_mask


class Seq2Seq(nn.Module):
    """The Transformer encoder–decoder: token + position embeddings, encoder blocks, decoder blocks
    with cross-attention, an LM head. One embedding matrix reads the question, reads the reply
    and scores the next token (tied weights)."""

    # Under CPU bfloat16 autocast the encoder's output collapsed towards one vector at every
    # position (after 600 steps on DailyDialog it varied 3% across the question, 34% in float32)
    # and the decoder learned to ignore the question; so the Trainer's dtype="auto" keeps it in
    # float32 on a CPU.
    cpu_bfloat16 = False

    def __init__(self, config: Seq2SeqConfig):
        super().__init__()
        if not isinstance(config, Seq2SeqConfig):
            raise TypeError(f"Seq2Seq takes a Seq2SeqConfig, got {type(config).__name__}")
        self.config = config
        g = config.gpt_config()
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.wpe_src = nn.Embedding(config.src_block_size, config.n_embd)
        self.wpe_tgt = nn.Embedding(config.block_size, config.n_embd)
        self.drop = nn.Dropout(config.dropout)
        self.encoder = nn.ModuleList([EncoderBlock(g) for _ in range(config.encoder_layers)])
        self.ln_enc = make_norm(g)
        self.decoder = nn.ModuleList([DecoderBlock(g) for _ in range(config.n_layer)])
        self.ln_f = make_norm(g)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.wte.weight = self.lm_head.weight
        self.apply(GPT._init_weights)
        # GPT's 1/sqrt(number of residual additions): 2 per encoder block, 3 per decoder block
        additions = 2 * config.encoder_layers + 3 * config.n_layer
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(additions))

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    @property
    def device(self) -> torch.device:
        return self.lm_head.weight.device

    def optim_groups(self, weight_decay: float) -> list[dict]:
        """AdamW groups for the Trainer: the decoder (its blocks, positions and final norm) learns at
        ``config.decoder_lr_scale`` times the rate of the rest; the shared embedding (= LM head)
        belongs to the rest."""
        decoder = [*self.decoder.parameters(), *self.wpe_tgt.parameters(), *self.ln_f.parameters()]
        return decoder_optim_groups(self, decoder, weight_decay, self.config.decoder_lr_scale)

    def encode(self, src, src_mask=None, return_attention=False):
        """src: [B, S] ids; src_mask: [B, S] bool (default src != pad_id).
        Returns (memory [B, S, C], mask [B, 1, 1, S], encoder attentions or None)."""
        c = self.config
        src, src_mask = check_source(src, src_mask, c.vocab_size, c.src_block_size, c.pad_id)
        src, src_mask = src.to(self.device), src_mask.to(self.device)
        mask = src_mask[:, None, None, :]
        x = self.drop(self.wte(src) + self.wpe_src(torch.arange(src.size(1), device=src.device)))
        maps = []
        for block in self.encoder:
            x, att = block(x, mask, return_attention)
            maps.append(att)
        return self.ln_enc(x), mask, tuple(maps) if return_attention else None

    def start(self, src, src_mask=None, use_cache=True) -> DecoderState:
        """Encode the question(s) once and prepare decoding: the cross-attention keys and values of
        every layer, and an empty KVCache for the decoder (when use_cache)."""
        memory, mask, _ = self.encode(src, src_mask)
        kv = [block.cross.keys_values(memory) for block in self.decoder]
        return DecoderState(kv, mask, KVCache(self.config.block_size) if use_cache else None)

    def decode(self, tgt, state: DecoderState, targets=None, return_attention=False):
        """tgt: [B, T] decoder input ids (after the cached ones, if state has a cache).
        Returns (logits [B, T, V], loss or None, self-attention maps, cross-attention maps)."""
        c = self.config
        if not isinstance(tgt, torch.Tensor) or tgt.dim() != 2 or tgt.dtype != torch.long or tgt.size(1) == 0:
            got = f"{tuple(tgt.shape)} {tgt.dtype}" if isinstance(tgt, torch.Tensor) else type(tgt).__name__
            raise ValueError(f"the decoder input must be a non-empty [batch, seq] tensor of torch.long ids, got {got}")
        if tgt.size(0) != state.mask.size(0):
            raise ValueError(f"the decoder input has {tgt.size(0)} rows but {state.mask.size(0)} questions were encoded")
        cache = state.cache
        start = 0 if cache is None else cache.position
        if start + tgt.size(1) > c.block_size:
            raise ValueError(f"a reply of {start + tgt.size(1)} tokens is longer than the decoder's block_size "
                             f"({c.block_size}); crop the reply (encode_pair's max_tgt_len)")
        if targets is not None and targets.shape != tgt.shape:
            raise ValueError(f"targets must have the shape of the decoder input {tuple(tgt.shape)}, got "
                             f"{tuple(targets.shape)}")
        if cache is not None:
            cache.make_room(tgt.size(1))
        x = self.drop(self.wte(tgt) + self.wpe_tgt(torch.arange(start, start + tgt.size(1), device=tgt.device)))
        self_maps, cross_maps = [], []
        for i, block in enumerate(self.decoder):
            x, sa, ca = block(x, state.cross_kv[i], state.mask, cache, i, return_attention)
            self_maps.append(sa)
            cross_maps.append(ca)
        logits = self.lm_head(self.ln_f(x))
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1), ignore_index=-100)
        maps = (tuple(self_maps), tuple(cross_maps)) if return_attention else (None, None)
        return logits, loss, *maps

    def forward(self, src, tgt=None, targets=None, src_mask=None, return_attention=False) -> Seq2SeqOutput:
        """src: a Seq2SeqBatch (as the Trainer passes it), or [B, S] question ids with tgt [B, T]
        decoder input ids (<sos> reply); targets: optional [B, T] ids (-100 ignored).
        Returns a Seq2SeqOutput (logits [B, T, V], loss, the three kinds of attention maps)."""
        if isinstance(src, Seq2SeqBatch):
            src, src_mask, tgt = src.src, src.src_mask, src.tgt
        if tgt is None:
            raise ValueError("give the decoder input tgt ([batch, seq] ids starting with <sos>), or a Seq2SeqBatch")
        memory, mask, enc_maps = self.encode(src, src_mask, return_attention)
        state = DecoderState([block.cross.keys_values(memory) for block in self.decoder], mask)
        if self.training and targets is not None and self.config.teacher_forcing_ratio < 1:
            tgt = self._scheduled_sampling(tgt, state)
        logits, loss, self_maps, cross_maps = self.decode(tgt, state, targets, return_attention)
        return Seq2SeqOutput(logits, loss, enc_maps, self_maps, cross_maps)

    def _scheduled_sampling(self, tgt, state):
        """The decoder input with each token after <sos> replaced, with probability 1 - ratio, by the
        model's own prediction of it (from a teacher-forced pass without gradient)."""
        with torch.no_grad():
            predicted = self.decode(tgt, state)[0].argmax(-1)  # [B, T]: prediction of tgt[:, t + 1]
        own = torch.rand(tgt.shape, device=tgt.device) >= self.config.teacher_forcing_ratio
        own[:, 0] = False  # <sos> stays
        mixed = tgt.clone()
        mixed[:, 1:] = torch.where(own[:, 1:], predicted[:, :-1], tgt[:, 1:])
        return mixed

    def step(self, tokens, state: DecoderState):
        """tokens: [n, t] the newest decoder inputs (the whole prefix at the first step) ->
        (logits [n, V] of the next token, state with its cache grown)."""
        return self.decode(tokens, state)[0][:, -1], state


# ------------------------------------------------------------------ decoding, for both seq2seq models

def _one_question(model, src):
    src, _ = check_source(src, None, model.config.vocab_size, getattr(model.config, "src_block_size", None),
                          model.config.pad_id)
    if src.size(0) != 1:
        raise ValueError(f"give one question ([seq] or [1, seq] ids), got {src.size(0)}")
    return src


def _check_new_tokens(model, max_new_tokens):
    check_int(max_new_tokens, "max_new_tokens", low=0)
    limit = getattr(model, "max_reply_tokens", model.config.block_size)
    if max_new_tokens > limit:
        raise ValueError(f"max_new_tokens={max_new_tokens} is more than this decoder can place "
                         f"(block_size {model.config.block_size}); use at most {limit}")


def _reply_logits(model, logits: torch.Tensor) -> torch.Tensor:
    """logits [n, V] with -inf at <pad> and <sos>: no reply contains them (training never asks for
    them), but a young model may still give them the highest score."""
    logits[:, [model.config.pad_id, model.config.sos_id]] = float("-inf")
    return logits


@torch.inference_mode()
def sample_reply(model, src, max_new_tokens: int = 32, temperature: float = 1.0, top_k: Optional[int] = None,
                 top_p: Optional[float] = None, repetition_penalty: float = 1.0, seed: Optional[int] = None) -> list[int]:
    """A reply one token at a time, through the package's sampling knobs (``minigpt.sampling.Knobs``:
    repetition penalty, temperature, top-k, top-p; temperature 0 = greedy), until <eos>
    (included) or max_new_tokens. The repetition penalty counts the reply's own tokens (and
    <sos>), not the question's: the question sits in the encoder, not in the text being written.

    model: a Seq2Seq or GRUSeq2Seq; src: one question, [S] or [1, S] ids (or a list);
    seed: a generator of its own (the same seed gives the same reply), None: torch's global one.
    Returns the new ids (without <sos>). Uses the decoder's cache: one new token per step.
    """
    knobs = Knobs(temperature=temperature, top_k=top_k, top_p=top_p, repetition_penalty=repetition_penalty)
    check_int(seed, "seed", allow_none=True)
    _check_new_tokens(model, max_new_tokens)
    src = _one_question(model, src)
    c = model.config
    generator = None if seed is None else torch.Generator(device=model.device).manual_seed(seed)
    seen = None if repetition_penalty == 1 else seen_mask([c.sos_id], (1, c.vocab_size), model.device)
    with eval_mode(model):
        state = model.start(src)
        tokens = torch.tensor([[c.sos_id]], device=model.device)
        out: list[int] = []
        for _ in range(max_new_tokens):
            logits, state = model.step(tokens, state)
            nxt = knobs.pick(_reply_logits(model, logits.float()), seen, generator)  # [1]
            out.append(int(nxt))
            if out[-1] == c.eos_id:
                break
            if seen is not None:
                seen.scatter_(1, nxt[:, None], True)
            tokens = nxt[:, None]
    return out


def greedy_reply(model, src, max_new_tokens: int = 32, repetition_penalty: float = 1.0) -> list[int]:
    """The most likely token at every step (after the repetition penalty, if any), until <eos>
    (included) or max_new_tokens: ``sample_reply`` at temperature 0.

    model: a Seq2Seq or GRUSeq2Seq; src: one question, [S] or [1, S] ids (or a list).
    Returns the new ids (without <sos>). Uses the decoder's cache: one new token per step.
    """
    return sample_reply(model, src, max_new_tokens, temperature=0, repetition_penalty=repetition_penalty)


def seq2seq_step(model, src):
    """The step function of ``minigpt.beam.search`` for a sequence-to-sequence model: at the first
    call the question is encoded once (its state copied to every beam), then each step feeds each
    beam's newest token with the decoder's cache, reordered to follow the surviving beams.

    model: a Seq2Seq or GRUSeq2Seq (anything with start / step); src: [1, S] question ids.
    """
    def step(seqs: torch.Tensor, state, parents):
        if state is None:
            state = model.start(src).reorder(torch.zeros(seqs.size(0), dtype=torch.long, device=seqs.device))
            logits, state = model.step(seqs, state)
        else:
            logits, state = model.step(seqs[:, -1:], state.reorder(parents))
        return _reply_logits(model, logits.float()), state

    return step


def beam_reply(model, tokenizer, src, beam_width: int = 5, max_new_tokens: int = 32, length_penalty: float = 1.0,
               repetition_penalty: float = 1.0, record_tree: bool = False) -> BeamSearchResult:
    """Beam search for a reply to one question (src: [S] or [1, S] ids), through the package's one
    beam search; the beams end at <eos>. Returns a BeamSearchResult (``.text``, ``.beams``; a
    finished beam's ids end with <eos>, its text does not show it)."""
    _check_new_tokens(model, max_new_tokens)
    src = _one_question(model, src).to(model.device)
    with eval_mode(model):
        return search(seq2seq_step(model, src), tokenizer, [model.config.sos_id], beam_width=beam_width,
                      max_new_tokens=max_new_tokens, length_penalty=length_penalty,
                      repetition_penalty=repetition_penalty, stops=Stops(ids=frozenset({model.config.eos_id})),
                      record_tree=record_tree, device=model.device)


def encode_question(model, tokenizer, question) -> list[int]:
    """A question as the model's encoder reads it: question is a str, or the previous turns (a list
    of str, oldest first, joined by the tokenizer's <sep> when it has one); special-token text in
    it is read as plain characters; cropped to its last src_block_size ids, as in training.
    Returns the ids (a list). Raises ValueError for an empty question or a character the
    tokenizer does not know."""
    sep = tokenizer.special_tokens.get("<sep>")
    return encode_context(question, lambda text: tokenizer.encode(text, allowed_special="none"),
                          max_src_len=model.config.src_block_size, sep_ids=[] if sep is None else [sep])


def answer(model, tokenizer, question, beam_width: int = 1, max_new_tokens: Optional[int] = None,
           temperature: float = 0.0, top_k: Optional[int] = None, top_p: Optional[float] = None,
           repetition_penalty: float = 1.0, length_penalty: float = 1.0, seed: Optional[int] = None) -> str:
    """The reply to a question, as text: the whole way from words to words.

    question: a str (or previous turns, a list of str; see ``encode_question``).
    beam_width > 1: ``beam_reply`` (temperature, top-k, top-p unused); else ``sample_reply``
    (temperature 0, the default, is greedy). max_new_tokens: default the decoder's block_size.
    """
    check_int(beam_width, "beam_width", low=1)
    src = encode_question(model, tokenizer, question)
    n = model.config.block_size if max_new_tokens is None else max_new_tokens
    if beam_width > 1:
        return beam_reply(model, tokenizer, src, beam_width=beam_width, max_new_tokens=n, length_penalty=length_penalty,
                          repetition_penalty=repetition_penalty).text
    ids = sample_reply(model, src, n, temperature=temperature, top_k=top_k, top_p=top_p,
                       repetition_penalty=repetition_penalty, seed=seed)
    return tokenizer.decode(ids[:-1] if ids and ids[-1] == model.config.eos_id else ids)

# ------------------------------------------------------------------ saved models, for both seq2seq models

def _architectures() -> dict:
    from .rnn import GRUConfig, GRUSeq2Seq
    return {"Seq2Seq": (Seq2Seq, Seq2SeqConfig), "GRUSeq2Seq": (GRUSeq2Seq, GRUConfig)}


def export_seq2seq(path, model, tokenizer=None, extra: Optional[dict] = None):
    """A weights file (no optimizer state) of a Seq2Seq or GRUSeq2Seq that ``load_seq2seq`` (and
    ``mg.pretrained.load``) reads back: the package's checkpoint format, with the model's class
    name in ``extra["model_class"]``. Returns the path written."""
    from .checkpoint import export_weights
    if type(model).__name__ not in _architectures():
        raise TypeError(f"export_seq2seq saves a Seq2Seq or GRUSeq2Seq, got {type(model).__name__}; "
                        f"a GPT is saved with minigpt.checkpoint.export_weights")
    return export_weights(path, model, tokenizer, extra={**(extra or {}), "model_class": type(model).__name__})


def load_seq2seq(path, device=None):
    """Build the sequence-to-sequence model a checkpoint describes and load its weights.

    path: a weights file from ``export_seq2seq`` or a Trainer checkpoint (a ckpt.pt, or its
    folder) of a Seq2Seq or GRUSeq2Seq. The class is read from ``extra["model_class"]``, or for a
    Trainer checkpoint from the config's fields (``hidden_size``: GRU, else ``src_block_size``: Seq2Seq).
    Returns (model in eval mode on ``device`` (default CPU), tokenizer or None).
    Raises CheckpointError for a GPT checkpoint, an unusable config or weights that do not fit.
    """
    from .checkpoint import CheckpointError, load_checkpoint, resolve_path, restore
    ckpt = load_checkpoint(path)
    config = ckpt.get("model_config") or {}
    name = (ckpt.get("extra") or {}).get("model_class")
    if name is None:
        name = "GRUSeq2Seq" if "hidden_size" in config else "Seq2Seq" if "src_block_size" in config else None
    architectures = _architectures()
    if name not in architectures:
        raise CheckpointError(f"{resolve_path(path)} holds a {name or 'GPT'} model, not a sequence-to-sequence one "
                              f"(Seq2Seq or GRUSeq2Seq); load a GPT with minigpt.checkpoint.load_model(path)")
    model_class, config_class = architectures[name]
    try:
        model = model_class(config_class.from_dict(config))
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{resolve_path(path)} has an unusable {config_class.__name__}: {e}") from e
    try:
        restore(ckpt, model)
    except RuntimeError as e:
        raise CheckpointError(f"{resolve_path(path)}: the weights do not fit the stored config: {e}") from e
    tokenizer = None
    if ckpt.get("tokenizer") is not None:
        from .tokenizer import tokenizer_from_dict
        tokenizer = tokenizer_from_dict(ckpt["tokenizer"])
    return model.to(device or "cpu").eval(), tokenizer
