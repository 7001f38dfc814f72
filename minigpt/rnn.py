"""The classic recurrent chatbot: a bidirectional GRU encoder and a GRU decoder with Luong attention
(as in PyTorch's chatbot tutorial), the baseline the Transformer encoder–decoder is compared with.

    model = GRUSeq2Seq(GRUConfig(vocab_size=tok.vocab_size, attention="general", pad_id=..., sos_id=..., eos_id=...))
    out = model(batch, targets=y)       # the same Seq2SeqBatch and Seq2SeqOutput as minigpt.seq2seq
    out.cross_attentions[0]             # [B, 1, T, S]: the Luong weights of every reply step
    greedy_reply(model, src_ids); beam_reply(model, tok, src_ids)   # minigpt.seq2seq's, shared

The encoder reads the question both ways; at each position the two directions' outputs are
summed, and so are their final hidden states, layer by layer, to start the decoder. The decoder
reads one token per step; its GRU output h_t scores every encoder output e_s (Luong's scores):

    dot:     h_t · e_s
    general: h_t · (W e_s)
    concat:  v · tanh(W [h_t; e_s])

softmax over the real question tokens gives the weights, their mix of encoder outputs the
context c_t, and the next-token scores come from tanh(W_c [h_t; c_t]).

Training runs the decoder step by step. With teacher_forcing_ratio = 1 each step reads the true
previous token; below 1, a coin decides per step (or once per batch, ``teacher_forcing="batch"``,
as the tutorial) whether it reads the true token or the model's own last prediction.
Evaluation always uses teacher forcing (the dev loss is comparable across ratios). As in the
tutorial, the decoder learns faster than the encoder: ``optim_groups`` gives the Trainer a decoder
group at ``decoder_lr_scale`` (5) times the learning rate.

Shapes: B batch, S question length, T reply length, Hd hidden_size, L n_layer, V vocab_size.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
from torch.nn import functional as F
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from .checks import check_int, check_number, from_dict, is_int
from .dialogue_pairs import Seq2SeqBatch
from .seq2seq import Seq2SeqOutput, check_source, decoder_optim_groups

SCORES = ("dot", "general", "concat")


@dataclass
class GRUConfig:
    """Hyper-parameters of the GRU encoder–decoder (and the ids of its three special tokens)."""

    vocab_size: int = 256
    hidden_size: int = 128
    n_layer: int = 1                  # GRU layers, in the encoder and in the decoder
    attention: str = "dot"            # Luong's score: "dot", "general" or "concat"
    dropout: float = 0.0
    block_size: int = 64              # longest decoder input the Trainer feeds (a GRU itself has no limit)
    src_block_size: int = 128         # longest question trained on; encode_question crops to it
    pad_id: int = 0
    sos_id: int = 1
    eos_id: int = 2
    teacher_forcing_ratio: float = 1.0
    teacher_forcing: str = "step"     # the coin is thrown every "step" or once per "batch"
    decoder_lr_scale: float = 5.0     # the decoder's learning rate = the Trainer's x this (the tutorial's 5)

    def __post_init__(self):
        for name in ("vocab_size", "hidden_size", "n_layer", "block_size", "src_block_size"):
            check_int(getattr(self, name), f"GRUConfig.{name}", low=1)
        if self.attention not in SCORES:
            raise ValueError(f"GRUConfig.attention must be one of {SCORES}, got {self.attention!r}")
        if self.teacher_forcing not in ("step", "batch"):
            raise ValueError(f"GRUConfig.teacher_forcing must be 'step' or 'batch', got {self.teacher_forcing!r}")
        for name in ("pad_id", "sos_id", "eos_id"):
            value = getattr(self, name)
            if not is_int(value) or not 0 <= value < self.vocab_size:
                raise ValueError(f"GRUConfig.{name} must be a token id in [0, {self.vocab_size}), got {value!r}")
        check_number(self.dropout, "GRUConfig.dropout", 0, 1, high_open=True)
        check_number(self.teacher_forcing_ratio, "GRUConfig.teacher_forcing_ratio", 0, 1)
        check_number(self.decoder_lr_scale, "GRUConfig.decoder_lr_scale", 0, low_open=True)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "GRUConfig":
        return from_dict(cls, d)


class EncoderRNN(nn.Module):
    """A bidirectional GRU over the question; padding is skipped (packed sequences)."""

    def __init__(self, config: GRUConfig, embedding: nn.Embedding):
        super().__init__()
        self.embedding, self.n_layer, Hd = embedding, config.n_layer, config.hidden_size
        self.gru = nn.GRU(Hd, Hd, config.n_layer, batch_first=True, bidirectional=True,
                          dropout=0.0 if config.n_layer == 1 else config.dropout)

    def forward(self, src, lengths):
        """src: [B, S] ids; lengths: [B] real tokens per row (padding after them).
        Returns (outputs [B, S, Hd]: both directions summed, 0 at padding; hidden [L, B, Hd])."""
        B, S = src.shape
        packed = pack_padded_sequence(self.embedding(src), lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, hidden = self.gru(packed)  # hidden: [L * 2, B, Hd], layer by layer, forward then backward
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=S)  # [B, S, 2 * Hd]
        Hd = out.size(-1) // 2
        return out[..., :Hd] + out[..., Hd:], hidden.view(self.n_layer, 2, B, Hd).sum(1)


class LuongAttention(nn.Module):
    """Scores of a decoder state against every encoder output, softmaxed over the real tokens."""

    def __init__(self, method: str, hidden_size: int):
        super().__init__()
        self.method = method
        if method == "general":
            self.W = nn.Linear(hidden_size, hidden_size, bias=False)
        elif method == "concat":
            self.W = nn.Linear(2 * hidden_size, hidden_size)
            self.v = nn.Parameter(torch.empty(hidden_size).uniform_(-0.1, 0.1))

    def forward(self, h, enc, mask):
        """h: [B, Hd] decoder output; enc: [B, S, Hd]; mask: [B, S] bool -> weights [B, S] (rows sum to 1)."""
        if self.method == "dot":
            scores = (enc @ h[:, :, None]).squeeze(-1)
        elif self.method == "general":
            scores = (self.W(enc) @ h[:, :, None]).squeeze(-1)
        else:
            scores = torch.tanh(self.W(torch.cat((h[:, None].expand_as(enc), enc), dim=-1))) @ self.v
        return F.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)


class LuongDecoder(nn.Module):
    """One step: embed the token, a GRU step, attend to the question, combine, score the next token."""

    def __init__(self, config: GRUConfig, embedding: nn.Embedding):
        super().__init__()
        Hd = config.hidden_size
        self.embedding, self.embedding_dropout = embedding, nn.Dropout(config.dropout)
        self.gru = nn.GRU(Hd, Hd, config.n_layer, batch_first=True,
                          dropout=0.0 if config.n_layer == 1 else config.dropout)
        self.attn = LuongAttention(config.attention, Hd)
        self.concat = nn.Linear(2 * Hd, Hd)
        self.out = nn.Linear(Hd, config.vocab_size)

    def forward(self, tokens, hidden, enc, mask):
        """tokens: [B] ids; hidden: [L, B, Hd]; enc: [B, S, Hd]; mask: [B, S].
        Returns (logits [B, V], hidden [L, B, Hd], attention weights [B, S])."""
        out, hidden = self.gru(self.embedding_dropout(self.embedding(tokens))[:, None], hidden)
        h = out[:, 0]  # [B, Hd]
        weights = self.attn(h, enc, mask)
        context = (weights[:, None] @ enc)[:, 0]  # [B, Hd]: the question, mixed by the weights
        return self.out(torch.tanh(self.concat(torch.cat((h, context), dim=-1)))), hidden, weights


@dataclass
class GRUState:
    """What decoding one question needs between steps: hidden [L, B, Hd], enc [B, S, Hd], mask [B, S]."""

    hidden: torch.Tensor
    enc: torch.Tensor
    mask: torch.Tensor

    def reorder(self, rows: torch.Tensor) -> "GRUState":
        """Row i becomes the old row rows[i] (beam search follows the surviving beams)."""
        self.hidden = self.hidden.index_select(1, rows)
        self.enc, self.mask = self.enc.index_select(0, rows), self.mask.index_select(0, rows)
        return self


class GRUSeq2Seq(nn.Module):
    """Bidirectional GRU encoder + GRU decoder with Luong attention; one embedding for both sides."""

    max_reply_tokens = 10_000  # no position table limits a recurrent decoder; a sanity bound for decoding

    def __init__(self, config: GRUConfig):
        super().__init__()
        if not isinstance(config, GRUConfig):
            raise TypeError(f"GRUSeq2Seq takes a GRUConfig, got {type(config).__name__}")
        self.config = config
        self.embedding = nn.Embedding(config.vocab_size, config.hidden_size)
        self.encoder = EncoderRNN(config, self.embedding)
        self.decoder = LuongDecoder(config, self.embedding)

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    @property
    def device(self) -> torch.device:
        return self.embedding.weight.device

    def optim_groups(self, weight_decay: float) -> list[dict]:
        """AdamW groups for the Trainer: the decoder (its GRU, Luong attention, combining and output
        layers) learns at ``config.decoder_lr_scale`` times the rate of the encoder, as the tutorial's
        decoder_learning_ratio; the embedding both sides share learns at the encoder's rate."""
        shared = {id(p) for p in self.embedding.parameters()}
        decoder = [p for p in self.decoder.parameters() if id(p) not in shared]
        return decoder_optim_groups(self, decoder, weight_decay, self.config.decoder_lr_scale)

    def start(self, src, src_mask=None) -> GRUState:
        """Encode the question(s): src [B, S] ids, src_mask [B, S] bool (default src != pad_id; the
        real tokens must come first, padding after them) -> the decoder's first state."""
        c = self.config
        src, src_mask = check_source(src, src_mask, c.vocab_size, None, c.pad_id)
        src, src_mask = src.to(self.device), src_mask.to(self.device)
        lengths = src_mask.sum(1)
        if not torch.equal(src_mask, torch.arange(src.size(1), device=src.device)[None] < lengths[:, None]):
            raise ValueError("src_mask must mark each question's real tokens first and padding after them "
                             "(padding at the right, as pad_pairs makes it)")
        enc, hidden = self.encoder(src, lengths)
        return GRUState(hidden, enc, src_mask)

    def step(self, tokens, state: GRUState):
        """tokens: [n, t] the newest decoder inputs -> (logits [n, V] of the next token, new state)."""
        for t in range(tokens.size(1)):
            logits, state.hidden, _ = self.decoder(tokens[:, t], state.hidden, state.enc, state.mask)
        return logits, state

    def forward(self, src, tgt=None, targets=None, src_mask=None, return_attention=False) -> Seq2SeqOutput:
        """src: a Seq2SeqBatch (as the Trainer passes it), or [B, S] question ids with tgt [B, T]
        decoder input ids (<sos> reply); targets: optional [B, T] ids (-100 ignored).
        Returns a Seq2SeqOutput: logits [B, T, V], loss, cross_attentions = ([B, 1, T, S],)."""
        if isinstance(src, Seq2SeqBatch):
            src, src_mask, tgt = src.src, src.src_mask, src.tgt
        if not isinstance(tgt, torch.Tensor) or tgt.dim() != 2 or tgt.dtype != torch.long or tgt.size(1) == 0:
            raise ValueError("give the decoder input tgt (a non-empty [batch, seq] torch.long tensor starting "
                             "with <sos>), or a Seq2SeqBatch")
        if targets is not None and targets.shape != tgt.shape:
            raise ValueError(f"targets must have the shape of tgt {tuple(tgt.shape)}, got {tuple(targets.shape)}")
        state = self.start(src, src_mask)
        if tgt.size(0) != state.enc.size(0):
            raise ValueError(f"tgt has {tgt.size(0)} rows but src has {state.enc.size(0)}")
        ratio = self.config.teacher_forcing_ratio if self.training and targets is not None else 1.0
        per_batch = self.config.teacher_forcing == "batch" and bool(torch.rand(()) < ratio)
        logits, weights, tokens = [], [], tgt[:, 0]
        for t in range(tgt.size(1)):
            step_logits, state.hidden, w = self.decoder(tokens, state.hidden, state.enc, state.mask)
            logits.append(step_logits)
            weights.append(w)
            if t + 1 < tgt.size(1):
                truth = ratio == 1.0 or per_batch or (self.config.teacher_forcing == "step" and bool(torch.rand(()) < ratio))
                tokens = tgt[:, t + 1] if truth else step_logits.argmax(-1).detach()
        logits = torch.stack(logits, dim=1)  # [B, T, V]
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1), ignore_index=-100)
        cross = (torch.stack(weights, dim=1)[:, None],) if return_attention else None  # ([B, 1, T, S],)
        return Seq2SeqOutput(logits, loss, cross_attentions=cross)
