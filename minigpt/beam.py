"""Beam search: keep the beam_width most likely partial texts at each step, not just one.

One search serves every model. It is driven by a step function, which gives the next-token
scores for a batch of prefixes and carries the model's state (its cache) from step to step:

    step(seqs, state, parents) -> (logits [n, V], state)
        seqs:    [n, L] long, each beam's tokens so far (prompt + new tokens)
        state:   what the previous call returned; None at the first call
        parents: [n] long, the row of the previous call each beam extends (None at the first
                 call); the step function reorders its state to follow the surviving beams

``gpt_step(model)`` is that function for a decoder-only GPT (its KV cache, the window cropped
to block_size); an encoder-decoder model gives one whose state also holds the encoder's output.

    result = beam_search(model, tok, "ROMEO:", beam_width=5)
    result.text          # the best new text
    result.beams         # up to beam_width Beam, best first
    beam_search(model, tok, "ROMEO:", record_tree=True).tree   # every candidate of every step
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import torch
from torch.nn import functional as F

from .checks import check_int, check_number
from .model import KVCache
from .runtime import eval_mode
from .sampling import Knobs, Stops, encode_prompt, seen_mask


@dataclass
class Beam:
    """One finished candidate of beam search.

    text:     the new text (ending just before a stop string, if one was hit).
    ids:      the new token ids, a final stop token included.
    score:    logprob / len(ids) ** length_penalty, what beams are ranked by.
    logprob:  sum of the log-probabilities of ids (after the repetition penalty, if any).
    finished: True if it ended on a stop, False if it ran to max_new_tokens.
    """

    text: str
    ids: list[int]
    score: float
    logprob: float
    finished: bool = False


@dataclass
class Candidate:
    """One extension looked at during one step of beam search (a node of the search tree)."""

    parent: int           # the beam it extends: an index into the previous step's ``beams``
    token_id: int
    token: str            # printable form, tokenizer.token_str(token_id)
    logprob: float        # log p(token | parent beam)
    total_logprob: float  # the parent's total plus logprob
    score: float          # total_logprob / length ** length_penalty
    status: str           # "kept" (a beam for the next step), "finished" (hit a stop) or "dropped"


@dataclass
class BeamStep:
    """One step of beam search: each beam's best beam_width extensions (and any other that was
    kept or finished), and which candidates became the beams of the next step, in order."""

    candidates: list[Candidate]
    beams: list[int]  # indices into candidates; the next step's Candidate.parent indexes this


@dataclass
class BeamSearchResult:
    """What beam search found.

    beams: up to beam_width Beam, best first (at least one: max_new_tokens=0 gives one empty beam).
    tree:  one BeamStep per step when ``record_tree=True``, else None.
    """

    beams: list[Beam]
    tree: Optional[list[BeamStep]] = None

    @property
    def best(self) -> Beam:
        return self.beams[0]

    @property
    def text(self) -> str:
        """The best beam's new text."""
        return self.beams[0].text


# ------------------------------------------------------------------ the step function of a GPT

def gpt_step(model) -> Callable:
    """The step function of a decoder-only GPT: all beams at once, the newest token of each with
    the KV cache (reordered to follow the beams that survive); the whole cropped window when the
    cache is full, since past block_size every kept token moves to a new position."""
    block_size = model.config.block_size

    def step(seqs: torch.Tensor, state, parents: Optional[torch.Tensor]):
        cache, cached = state if state is not None else (None, 0)  # cached: positions in the cache
        if cache is not None and cached < block_size:
            cache = _reorder(cache, parents)
            x, cached = seqs[:, -1:], cached + 1
        else:  # the first step, or the window slides: run the (cropped) beams in full
            x, cache = seqs[:, -block_size:], None
            cached = x.size(1)
        out = model(x, past_key_values=cache, use_cache=True)
        return out.logits[:, -1], (out.past_key_values, cached)

    return step


def _reorder(cache, rows: torch.Tensor):
    """Make row i of every layer's keys and values the old row rows[i]: each beam's cache follows
    the beam it extends (a row may go to several beams, or none). A KVCache is reordered in place,
    keeping its room for later tokens; a list of (k, v) pairs gives a new list."""
    if isinstance(cache, KVCache):
        cache.keys = [k.index_select(0, rows) for k in cache.keys]
        cache.values = [v.index_select(0, rows) for v in cache.values]
        return cache
    return [(k.index_select(0, rows), v.index_select(0, rows)) for k, v in cache]


# ------------------------------------------------------------------ the search

def beam_search(model, tokenizer, prompt, beam_width: int = 5, max_new_tokens: int = 50,
                length_penalty: float = 1.0, repetition_penalty: float = 1.0, stop=None,
                record_tree: bool = False) -> BeamSearchResult:
    """Search a GPT for a likely continuation of the prompt, keeping the beam_width best partial
    texts at each step; ``search`` with ``gpt_step(model)``, in eval mode without autograd.

    prompt, stop and repetition_penalty are as in ``generate`` (greedy: no temperature, top-k
    or top-p); the other arguments are those of ``search``. Returns a BeamSearchResult:
    ``.text`` the best new text, ``.beams`` up to beam_width Beam best first, ``.tree`` the
    search tree when ``record_tree``.
    """
    V = model.config.vocab_size
    ids = encode_prompt(tokenizer, prompt, V)
    stops = Stops.parse(stop, V)
    with eval_mode(model):
        return search(gpt_step(model), tokenizer, ids, beam_width=beam_width, max_new_tokens=max_new_tokens,
                      length_penalty=length_penalty, repetition_penalty=repetition_penalty, stops=stops,
                      record_tree=record_tree, device=model.device)


@torch.inference_mode()
def search(step: Callable, tokenizer, prompt_ids: list[int], *, beam_width: int = 5, max_new_tokens: int = 50,
           length_penalty: float = 1.0, repetition_penalty: float = 1.0, stops: Stops = Stops(),
           record_tree: bool = False, device=None) -> BeamSearchResult:
    """Beam search driven by a step function (see the module docstring), without autograd.

    Each step scores every extension of every beam by its total log-probability and keeps the
    best beam_width that have not hit a stop; those that hit a stop are set aside as finished.
    Beams are ranked at the end by
        score = total log-probability / (number of new tokens) ** length_penalty
    (0 compares totals, which favours short texts; 1 compares the mean log-probability per
    token). The search ends after max_new_tokens, when no beam is left, or when no running beam
    can beat the beam_width-th finished one any more.

    tokenizer:  decodes the beams' texts (and names the tree's tokens); prompt_ids: a non-empty
    list of ids; stops: a parsed ``Stops``; device: where the step function wants its inputs
    (the model's). Returns a BeamSearchResult.
    """
    check_int(beam_width, "beam_width", low=1)
    check_int(max_new_tokens, "max_new_tokens", low=0)
    check_number(length_penalty, "length_penalty (0 ranks by total log-probability, 1 by the mean per token)")
    knobs = Knobs(temperature=0, repetition_penalty=repetition_penalty)  # checks the penalty

    def new_text(ids, decode=True):  # -> (text, hit a stop?); decodes only when it must
        if ids and ids[-1] in stops.ids:
            return tokenizer.decode(ids[:-1]), True
        if not (decode or stops.texts):
            return "", False
        text = tokenizer.decode(ids)
        cut = stops.find(text)
        return (text, False) if cut is None else (text[:cut], True)

    alive = [[]]  # new ids of each running beam
    finished: list[Beam] = []
    tree: Optional[list[BeamStep]] = [] if record_tree else None
    seqs = torch.tensor([prompt_ids], device=device)  # [n, L]: each running beam's whole sequence
    alive_logprob = torch.zeros(1, device=device)  # [n]: their totals
    state, parents, seen = None, None, None
    for t in range(max_new_tokens):
        logits, state = step(seqs, state, parents)
        if t == 0 and repetition_penalty != 1:  # bool [n, V]: the tokens each beam has seen
            seen = seen_mask(prompt_ids, (1, logits.size(-1)), device)
        logprobs = F.log_softmax(knobs.penalise(logits.float(), seen), dim=-1)  # [n, V]
        total = alive_logprob[:, None] + logprobs  # [n, V]
        V = total.size(-1)
        # 2 * beam_width candidates, so beam_width remain even if some of them finish
        best_totals, flat = total.view(-1).topk(min(2 * beam_width, total.numel()))
        next_alive, next_logprob, next_parents, status = [], [], [], {}
        for value, f in zip(best_totals.tolist(), flat.tolist()):
            parent, token = divmod(f, V)
            ids = alive[parent] + [token]
            text, hit = new_text(ids, decode=False)
            if hit:
                finished.append(Beam(text, ids, _length_normalised(value, len(ids), length_penalty), value, True))
                status[(parent, token)] = "finished"
            else:
                status[(parent, token)] = len(next_alive)  # its place among the next beams
                next_alive.append(ids)
                next_logprob.append(value)
                next_parents.append(parent)
                if len(next_alive) == beam_width:
                    break
        if tree is not None:
            tree.append(_record_step(tokenizer, total, logprobs, status, beam_width, t + 1, length_penalty))
        if not next_alive:
            alive = []
            break
        alive = next_alive
        parents = torch.tensor(next_parents, dtype=torch.long, device=seqs.device)
        tokens = torch.tensor([a[-1] for a in alive], dtype=torch.long, device=seqs.device)
        seqs = torch.cat((seqs.index_select(0, parents), tokens[:, None]), dim=1)
        if seen is not None:
            seen = seen.index_select(0, parents).scatter_(1, tokens[:, None], True)
        alive_logprob = torch.tensor(next_logprob, device=seqs.device)
        if len(finished) >= beam_width:
            # Log-probabilities only fall as a beam grows, so a running beam can at best keep its
            # total to the end, divided by the largest length it may reach (smallest if
            # length_penalty <= 0). If even that loses to the finished beams, stop searching.
            worst_kept = sorted(b.score for b in finished)[-beam_width]
            longest = max_new_tokens if length_penalty > 0 else t + 1
            if next_logprob[0] / longest ** length_penalty <= worst_kept:
                alive = []
                break
    for ids, lp in zip(alive, alive_logprob.tolist()):  # max_new_tokens == 0: one empty beam
        finished.append(Beam(new_text(ids)[0], ids, _length_normalised(lp, len(ids), length_penalty), lp, False))
    beams = sorted(finished, key=lambda b: b.score, reverse=True)[:beam_width]
    return BeamSearchResult(beams, tree)


def _length_normalised(logprob: float, length: int, length_penalty: float) -> float:
    return logprob / length ** length_penalty if length > 0 else 0.0


# ------------------------------------------------------------------ the tree recorder

def _record_step(tokenizer, total, logprobs, status, beam_width, length, length_penalty) -> BeamStep:
    """Record one step of beam search. total, logprobs: [n, V]; status: (parent, token) ->
    "finished" or the candidate's index among the next beams."""
    shown = set(status)
    _, top = total.topk(min(beam_width, total.size(-1)), dim=-1)  # each beam's best extensions
    shown.update((parent, token) for parent, row in enumerate(top.tolist()) for token in row)
    total_cpu, logprobs_cpu = total.cpu(), logprobs.cpu()
    candidates, beams = [], {}
    for parent, token in sorted(shown, key=lambda pt: (pt[0], -float(total_cpu[pt]))):
        s = status.get((parent, token), "dropped")
        if isinstance(s, int):
            beams[s] = len(candidates)
            s = "kept"
        t = float(total_cpu[parent, token])
        candidates.append(Candidate(parent, token, tokenizer.token_str(token), float(logprobs_cpu[parent, token]),
                                    t, _length_normalised(t, length, length_penalty), s))
    return BeamStep(candidates, [beams[i] for i in sorted(beams)])
