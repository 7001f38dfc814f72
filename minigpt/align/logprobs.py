"""How likely a model finds an answer: per-token log-probabilities of the answer given the prompt.

Every alignment method reads the same quantity. For one prompt p and answer a = (a_1 ... a_n),

    log pi(a | p) = sum_i log pi(a_i | p, a_<i)

where a_n is the end-of-turn token. The prompt's own tokens are context only: a mask marks the
answer tokens, and only they count.

Layout used throughout ``minigpt.align``: a batch of prompt + answer sequences, RIGHT-padded, so
that with causal attention the padding (after every real token) never changes a real token's
numbers and no attention mask is needed. A per-token tensor lines up with ``ids``: ``x[:, t]``
belongs to token ``ids[:, t]`` (its log-prob comes from the logits at position t - 1).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Optional, Sequence

import torch
from torch.nn import functional as F

from .pairs import answer_ids, end_id, prompt_ids


@dataclass
class AnswerBatch:
    """Prompt + answer sequences, right-padded.

    ids:         [B, T] long token ids (prompt, answer, end token, then padding).
    mask:        [B, T] bool, True exactly on the answer tokens (its end token included).
    last:        [B] long, the index of each row's last answer token (where a reward model reads).
    prompt_lens: [B] long, the number of prompt tokens of each row (the answer starts there).
    """

    ids: torch.Tensor
    mask: torch.Tensor
    last: torch.Tensor
    prompt_lens: torch.Tensor

    def to(self, device) -> "AnswerBatch":
        return AnswerBatch(*(getattr(self, f.name).to(device) for f in fields(self)))

    def __len__(self) -> int:
        return self.ids.size(0)

    def select(self, index) -> "AnswerBatch":
        """The rows ``index`` (a list or tensor of row numbers), trimmed to their longest row."""
        index = torch.as_tensor(index, dtype=torch.long, device=self.ids.device)
        last = self.last[index]
        T = int(last.max()) + 1
        return AnswerBatch(self.ids[index, :T], self.mask[index, :T], last, self.prompt_lens[index])


def pad_sequences(rows: Sequence[tuple[list, list]], pad_id: int) -> AnswerBatch:
    """(prompt ids, answer ids) pairs -> an AnswerBatch, right-padded with ``pad_id``."""
    T = max(len(p) + len(a) for p, a in rows)
    ids = torch.full((len(rows), T), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), T), dtype=torch.bool)
    for b, (p, a) in enumerate(rows):
        ids[b, :len(p) + len(a)] = torch.tensor(p + a)
        mask[b, len(p):len(p) + len(a)] = True
    prompt_lens = torch.tensor([len(p) for p, _ in rows])
    last = torch.tensor([len(p) + len(a) - 1 for p, a in rows])
    return AnswerBatch(ids, mask, last, prompt_lens)


def batch_answers(tokenizer, prompts: Sequence, answers: Sequence[str],
                  block_size: Optional[int] = None) -> AnswerBatch:
    """Encode each prompt (with the chat template) and its answer (+ end token) into one AnswerBatch.

    block_size: refuse a sequence longer than this (the model's context) with a ValueError.
    """
    if len(prompts) != len(answers):
        raise ValueError(f"got {len(prompts)} prompts but {len(answers)} answers; give one answer per prompt")
    if not prompts:
        raise ValueError("no prompts given: give at least one prompt and answer")
    rows = [(prompt_ids(tokenizer, p), answer_ids(tokenizer, a)) for p, a in zip(prompts, answers)]
    if block_size is not None:
        for i, (p, a) in enumerate(rows):
            if len(p) + len(a) > block_size:
                raise ValueError(f"prompt {i} and its answer take {len(p) + len(a)} tokens, more than the model's "
                                 f"block_size ({block_size}); shorten them or leave the pair out")
    return pad_sequences(rows, end_id(tokenizer))


def logprobs_from_logits(logits: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """logits [B, T, V] of a model run on ids [B, T] -> [B, T] float32: out[:, t] = log p(ids[:, t] | ids[:, :t]),
    read from the logits at position t - 1; out[:, 0] = 0 (the first token has no prediction)."""
    logp = F.log_softmax(logits[:, :-1].float(), dim=-1).gather(-1, ids[:, 1:, None]).squeeze(-1)  # [B, T-1]
    return F.pad(logp, (1, 0))


def entropy_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """logits [B, T, V] -> [B, T] float32: the entropy of the distribution each token was drawn from
    (out[:, t] from the logits at t - 1, as in ``logprobs_from_logits``; out[:, 0] = 0), in nats."""
    logp = F.log_softmax(logits[:, :-1].float(), dim=-1)
    return F.pad(-(logp.exp() * logp).sum(-1), (1, 0))


def token_logprobs(model, ids: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Per-token log-probs [B, T] of ``ids`` [B, T] under ``model`` (a GPT), 0 where ``mask`` [B, T] is False.
    Gradients flow when autograd is on (training); wrap in torch.no_grad() for a frozen model."""
    logp = logprobs_from_logits(model(ids).logits, ids)
    return logp if mask is None else logp * mask


def sequence_logprobs(model, batch: AnswerBatch, average: bool = False) -> torch.Tensor:
    """log pi(answer | prompt) of each row [B]: the sum over answer tokens, or with ``average`` their mean
    (the same number per token, whatever the answer's length)."""
    total = token_logprobs(model, batch.ids, batch.mask).sum(-1)
    return total / batch.mask.sum(-1) if average else total
