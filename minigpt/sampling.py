"""Turning next-token scores into text: greedy, temperature, top-k, top-p, repetition penalty,
beam search, and streaming generation with the KV cache.

A language model gives, for a context, one score (logit) per token of the vocabulary. Every way
of writing text is a rule for picking the next token from those scores, applied again and again:

    logits --repetition penalty--> --temperature--> --top-k--> --top-p--> probabilities --> pick

The four knobs are small tensor functions on logits ``[..., V]`` so a notebook can apply them one
at a time; ``next_token_distribution`` shows every stage for one context; ``generate`` and
``stream`` run the loop; ``beam_search`` keeps several candidate texts at once.

Conventions shared by every function here:
- The prompt may be a string or a list / 1-D tensor of token ids. An empty prompt starts from
  ``<|endoftext|>`` when the tokenizer has that special token (GPT-2 saw it between documents,
  so what follows it is the start of a text); otherwise it is a ValueError.
- A context longer than the model's ``block_size`` is cropped to its last ``block_size`` tokens,
  since that is all the model can see. The repetition penalty still counts the whole text.
- ``stop`` is a string, a token id, or a list of them. Generation ends as soon as the new text
  contains a stop string (or a stop token is drawn); the stop text itself is not returned.
- Temperature 0 means greedy: always the most likely token, no randomness.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterator, Optional

import torch
from torch.nn import functional as F

STAGES = ("raw", "after_penalty", "after_temperature", "after_top_k", "after_top_p", "final")
_START_TOKEN = "<|endoftext|>"


# ------------------------------------------------------------------ checking the knobs

def _is_number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _check_temperature(temperature) -> None:
    if not _is_number(temperature) or temperature < 0:
        raise ValueError(f"temperature must be a number >= 0 (0 = greedy, 1 = the model's own "
                         f"probabilities, above 1 flatter), got {temperature!r}")


def _check_top_k(top_k) -> None:
    if top_k is not None and (not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 1):
        raise ValueError(f"top_k must be a positive integer (the number of tokens to keep; "
                         f"None switches it off), got {top_k!r}")


def _check_top_p(top_p) -> None:
    if top_p is not None and (not _is_number(top_p) or not 0 < top_p <= 1):
        raise ValueError(f"top_p must be in (0, 1]: the probability mass to keep (1 keeps every "
                         f"token; None switches it off), got {top_p!r}")


def _check_penalty(penalty) -> None:
    if not _is_number(penalty) or penalty <= 0:
        raise ValueError(f"repetition_penalty must be a number > 0 (1 = off, above 1 discourages "
                         f"tokens already in the text, e.g. 1.2), got {penalty!r}")


def _check_count(name: str, value, minimum: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


# ------------------------------------------------------------------ the knobs, on logits [..., V]

def apply_repetition_penalty(logits: torch.Tensor, previous_ids, penalty: float) -> torch.Tensor:
    """CTRL's repetition penalty: make every token already seen less likely.

    logits:       [..., V] scores.
    previous_ids: ids seen so far: a list or a [N] tensor (the same for every row), or a
                  [..., N] long tensor with one row of ids per row of logits. Repeats are fine.
    penalty:      > 0; 1 leaves the logits alone, above 1 discourages repeats.
    Returns a new [..., V] tensor where each seen token's logit is divided by ``penalty`` if it
    is positive and multiplied by it if negative, so with penalty > 1 it always moves down.
    """
    _check_penalty(penalty)
    if penalty == 1:  # before building a tensor of the whole history: this runs at every step
        return logits
    ids = torch.as_tensor(previous_ids, dtype=torch.long, device=logits.device)
    if ids.numel() == 0:
        return logits
    V = logits.size(-1)
    if int(ids.min()) < 0 or int(ids.max()) >= V:
        raise ValueError(f"previous_ids must be token ids in [0, {V}), got values from "
                         f"{int(ids.min())} to {int(ids.max())}")
    if ids.dim() == 1:
        ids = ids.expand(*logits.shape[:-1], -1)  # the same history for every row
    seen = logits.gather(-1, ids)
    seen = torch.where(seen > 0, seen / penalty, seen * penalty)
    return logits.scatter(-1, ids, seen)


def apply_temperature(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Divide the logits by the temperature: below 1 sharpens the distribution, above 1 flattens it.

    logits: [..., V]. Returns a new [..., V] tensor. Temperature 0 is the limit of ever sharper
    distributions: only the largest logit survives (others become -inf), so sampling is greedy.
    """
    _check_temperature(temperature)
    if temperature == 0:
        best = logits.argmax(dim=-1, keepdim=True)
        return torch.full_like(logits, float("-inf")).scatter(-1, best, logits.gather(-1, best))
    return logits / temperature


def top_k_filter(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the k largest logits of each row; set the others to -inf (probability 0).

    logits: [..., V]. Returns a new [..., V] tensor with exactly min(k, V) finite entries per row
    (among equal logits, the ones ``torch.topk`` picks are kept).
    """
    _check_top_k(k)
    if k >= logits.size(-1):
        return logits
    values, idx = logits.topk(k, dim=-1)
    return torch.full_like(logits, float("-inf")).scatter(-1, idx, values)


def top_p_filter(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Nucleus filter: keep the smallest set of most likely tokens whose probability reaches p.

    logits: [..., V]. Returns a new [..., V] tensor, the dropped tokens set to -inf. Going from
    the most likely token down, a token is kept while the mass of the tokens before it is still
    below p; so the most likely token is always kept, and p = 1 keeps every token.
    """
    _check_top_p(p)
    if p == 1:
        return logits
    sorted_logits, order = logits.sort(dim=-1, descending=True)
    probs = F.softmax(sorted_logits.float(), dim=-1)
    mass_before = probs.cumsum(dim=-1) - probs  # probability of the tokens ranked above each one
    drop_sorted = mass_before >= p
    drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)  # back to vocabulary order
    return logits.masked_fill(drop, float("-inf"))


def _stages(logits, previous_ids, temperature, top_k, top_p, repetition_penalty) -> dict:
    """The knobs in the order every generator applies them. logits: [..., V] float.
    Returns {"raw", "after_penalty", "after_temperature", "after_top_k", "after_top_p"} logits."""
    s = {"raw": logits}
    s["after_penalty"] = apply_repetition_penalty(s["raw"], previous_ids, repetition_penalty)
    s["after_temperature"] = apply_temperature(s["after_penalty"], temperature)
    s["after_top_k"] = s["after_temperature"] if top_k is None else top_k_filter(s["after_temperature"], top_k)
    s["after_top_p"] = s["after_top_k"] if top_p is None else top_p_filter(s["after_top_k"], top_p)
    return s


def _pick(final_logits: torch.Tensor, temperature: float, generator) -> torch.Tensor:
    """final_logits: [B, V] -> [B] long: the argmax when greedy, else a draw from the softmax."""
    if temperature == 0:
        return final_logits.argmax(dim=-1)
    probs = F.softmax(final_logits, dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


# ------------------------------------------------------------------ prompts, stops, the model call

def _prompt_ids(model, tokenizer, prompt) -> list[int]:
    """The prompt as a non-empty list of token ids (see the module docstring for empty prompts)."""
    if isinstance(prompt, str):
        ids = tokenizer.encode(prompt) if prompt else []
    elif isinstance(prompt, torch.Tensor) and prompt.dim() <= 1 and not prompt.is_floating_point():
        ids = prompt.reshape(-1).tolist()
    elif isinstance(prompt, (list, tuple)) and all(isinstance(i, int) and not isinstance(i, bool) for i in prompt):
        ids = list(prompt)
    else:
        raise ValueError(f"prompt must be a string or a list / 1-D tensor of token ids, "
                         f"got {type(prompt).__name__}")
    if not ids:
        start = (getattr(tokenizer, "special_tokens", None) or {}).get(_START_TOKEN)
        if start is None:
            raise ValueError("the prompt is empty: give at least one character; to start from "
                             "nothing, use a newline or a special token")
        ids = [start]
    V = model.config.vocab_size
    bad = [i for i in ids if not 0 <= i < V]
    if bad:
        raise ValueError(f"prompt token id {bad[0]} is out of range for the model's vocab_size {V}; "
                         f"was the model trained with this tokenizer?")
    return ids


def _parse_stop(stop, vocab_size: int) -> tuple[list[str], set[int]]:
    """stop: None, a string, a token id, or a list of them -> (stop strings, stop token ids)."""
    if stop is None:
        return [], set()
    items = [stop] if isinstance(stop, (str, int)) else stop
    if not isinstance(items, (list, tuple, set)):
        raise ValueError(f"stop must be a string, a token id, or a list of them, got {type(stop).__name__}")
    texts, ids = [], set()
    for s in items:
        if isinstance(s, str) and s:
            texts.append(s)
        elif isinstance(s, int) and not isinstance(s, bool) and 0 <= s < vocab_size:
            ids.add(s)
        else:
            raise ValueError(f"each stop must be a non-empty string or a token id in [0, {vocab_size}), "
                             f"got {s!r}")
    return texts, ids


def _find_stop(text: str, stop_texts: list[str], start: int = 0) -> Optional[int]:
    """Index where the earliest stop string begins in text[start:] (None if there is none)."""
    hits = [i for s in stop_texts if (i := text.find(s, start)) != -1]
    return min(hits) if hits else None


def _held_back(text: str, stop_texts: list[str]) -> int:
    """How many characters at the end of text might be the start of a stop string."""
    longest = 0
    for s in stop_texts:
        for n in range(min(len(s) - 1, len(text)), longest, -1):
            if text.endswith(s[:n]):
                longest = n
                break
    return longest


@torch.inference_mode()
def _forward(model, idx: torch.Tensor, past_key_values=None, use_cache: bool = True):
    """model(idx) in eval mode (dropout off) without autograd; a training model is put back."""
    was_training = model.training
    if was_training:
        model.eval()
    try:
        return model(idx, past_key_values=past_key_values, use_cache=use_cache)
    finally:
        if was_training:
            model.train()


def _cache_len(cache) -> int:
    return 0 if cache is None else cache[0][0].size(2)


# ------------------------------------------------------------------ the sampling loop

def _sample_steps(model, ids: list[int], max_new_tokens, temperature, top_k, top_p,
                  repetition_penalty, generator, use_cache) -> Iterator[tuple[int, dict]]:
    """Yield (token id, stage logits of that step) for each new token; ids grows in place.

    With the cache, the prompt is run once (prefill) and then only the newest token each step.
    Past block_size, the window slides and every kept token moves one position left; positions
    are learned embeddings, so the cached keys and values are no longer right. Then each step
    recomputes the window: the cache saves nothing there, but the tokens stay exactly those of
    recomputing the cropped context every step (a test holds them equal).
    """
    block_size, device = model.config.block_size, model.device
    cache = None
    for _ in range(max_new_tokens):
        # a rotary-position cache slides by itself (KVCache.can_slide): no recompute there
        if use_cache and cache is not None and (_cache_len(cache) < block_size or getattr(cache, "can_slide", False)):
            out = _forward(model, torch.tensor([[ids[-1]]], device=device), cache)
        else:
            out = _forward(model, torch.tensor([ids[-block_size:]], device=device), use_cache=use_cache)
        cache = out.past_key_values
        stages = _stages(out.logits[:, -1].float(), ids, temperature, top_k, top_p, repetition_penalty)
        token = int(_pick(stages["after_top_p"], temperature, generator))
        ids.append(token)
        yield token, stages


def _prepare(model, tokenizer, prompt, max_new_tokens, temperature, top_k, top_p,
             repetition_penalty, stop, seed):
    """Check every argument before any work; return (prompt ids, stop texts, stop ids, generator)."""
    _check_temperature(temperature)
    _check_top_k(top_k)
    _check_top_p(top_p)
    _check_penalty(repetition_penalty)
    _check_count("max_new_tokens", max_new_tokens, 0)
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
        raise ValueError(f"seed must be an integer or None, got {seed!r}")
    ids = _prompt_ids(model, tokenizer, prompt)
    stop_texts, stop_ids = _parse_stop(stop, model.config.vocab_size)
    # A generator of our own: the same seed gives the same text and the global RNG is untouched.
    # Without a seed, draws come from torch's global RNG (so torch.manual_seed works too).
    generator = None if seed is None else torch.Generator(device=model.device).manual_seed(seed)
    return ids, stop_texts, stop_ids, generator


def stream(model, tokenizer, prompt, max_new_tokens: int = 100, temperature: float = 1.0,
           top_k: Optional[int] = None, top_p: Optional[float] = None, repetition_penalty: float = 1.0,
           stop=None, seed: Optional[int] = None, use_cache: bool = True) -> Iterator[str]:
    """Generate text and yield it as it comes: one decoded piece per new token.

    Arguments are those of ``generate``, checked at once (before the first piece). A piece is
    held back while it is not yet a whole character (byte-level BPE can split one character over
    several tokens) or while it might be the start of a stop string, and comes out with a later
    piece; so some steps yield nothing, and ``"".join(stream(...)) == generate(...)``.
    """
    ids, stop_texts, stop_ids, generator = _prepare(model, tokenizer, prompt, max_new_tokens, temperature,
                                                    top_k, top_p, repetition_penalty, stop, seed)
    steps = _sample_steps(model, ids, max_new_tokens, temperature, top_k, top_p,
                          repetition_penalty, generator, use_cache)
    return _text_pieces(tokenizer, steps, stop_texts, stop_ids)


def _text_pieces(tokenizer, steps, stop_texts, stop_ids) -> Iterator[str]:
    text = ""      # the new text so far, whole characters only
    pending = []   # ids whose bytes do not form whole characters yet
    emitted = 0    # how much of text has been yielded
    longest_stop = max((len(s) for s in stop_texts), default=0)
    for token, _ in steps:
        if token in stop_ids:
            break
        pending.append(token)
        piece = tokenizer.decode(pending)
        if piece.endswith("\ufffd"):  # an incomplete UTF-8 character: wait for its other bytes
            continue
        checked, text, pending = len(text), text + piece, []
        cut = _find_stop(text, stop_texts, max(0, checked - longest_stop + 1))
        if cut is not None:
            if cut > emitted:
                yield text[emitted:cut]
            return
        safe = len(text) - _held_back(text, stop_texts)
        if safe > emitted:
            yield text[emitted:safe]
            emitted = safe
    if pending:  # bytes that never became a character are shown as U+FFFD
        text += tokenizer.decode(pending)
    cut = _find_stop(text, stop_texts)
    end = len(text) if cut is None else cut
    if end > emitted:
        yield text[emitted:end]


def generate(model, tokenizer, prompt, max_new_tokens: int = 100, temperature: float = 1.0,
             top_k: Optional[int] = None, top_p: Optional[float] = None, repetition_penalty: float = 1.0,
             stop=None, seed: Optional[int] = None, use_cache: bool = True) -> str:
    """Continue the prompt and return the new text only.

    model:              a GPT; runs on ``model.device`` in eval mode without autograd (a model in
                        training mode is put back in training mode afterwards).
    tokenizer:          has ``encode(str) -> list[int]`` and ``decode(ids) -> str``.
    prompt:             a string or token ids; cropped to the last block_size tokens; empty:
                        ``<|endoftext|>`` if the tokenizer has it, else ValueError.
    max_new_tokens:     how many tokens to generate at most (>= 0).
    temperature:        >= 0; 0 = greedy (argmax), 1 = the model's probabilities.
    top_k, top_p:       keep only the k most likely tokens / the nucleus of mass p (None = off).
    repetition_penalty: > 0; above 1 discourages tokens already in the prompt or the new text.
    stop:               a string, a token id, or a list of them; generation ends when the new
                        text contains a stop string (or a stop token is drawn); the returned
                        text ends just before it.
    seed:               an int gives the same text each time through a private torch.Generator
                        (global RNG untouched); None draws from torch's global RNG.
    use_cache:          reuse keys and values of earlier tokens (same tokens, faster).
    """
    return "".join(stream(model, tokenizer, prompt, max_new_tokens, temperature, top_k, top_p,
                          repetition_penalty, stop, seed, use_cache))


# ------------------------------------------------------------------ looking at one step

@dataclass
class NextTokenDistribution:
    """The next-token distribution for one context, after each knob in turn.

    Every stage is a [V] float tensor of probabilities on the CPU that sums to 1; a knob that is
    off leaves its stage equal to the one before. ``logits`` are the model's raw [V] scores.
    """

    logits: torch.Tensor
    raw: torch.Tensor
    after_penalty: torch.Tensor
    after_temperature: torch.Tensor
    after_top_k: torch.Tensor
    after_top_p: torch.Tensor
    tokenizer: object = field(default=None, repr=False)
    settings: dict = field(default_factory=dict, repr=False)  # the knobs: temperature, top_k, top_p, ...

    @property
    def final(self) -> torch.Tensor:
        """The distribution a token is drawn from: the last stage."""
        return self.after_top_p

    def top(self, n: int = 10, stage: str = "final") -> list[tuple[str, int, float]]:
        """The n most likely tokens at a stage, as (printable token, id, probability), best first."""
        _check_count("n", n, 1)
        if stage not in STAGES:
            raise ValueError(f"stage must be one of {', '.join(STAGES)}; got {stage!r}")
        probs = getattr(self, stage)
        values, idx = probs.topk(min(n, probs.numel()))
        show = self.tokenizer.token_str if self.tokenizer is not None else str
        return [(show(i), i, p) for i, p in zip(idx.tolist(), values.tolist())]

    def __repr__(self) -> str:  # a summary, not 6 x V numbers
        top = ", ".join(f"{s!r}: {p:.3f}" for s, _, p in self.top(5))
        kept = int((self.final > 0).sum())
        return f"NextTokenDistribution(V={self.final.numel()}, {kept} tokens possible, top {top})"


def next_token_distribution(model, tokenizer, prompt_or_ids, temperature: float = 1.0,
                            top_k: Optional[int] = None, top_p: Optional[float] = None,
                            repetition_penalty: float = 1.0) -> NextTokenDistribution:
    """What the model would draw the next token from, after the prompt, stage by stage.

    prompt_or_ids: a string or token ids (cropped to the last block_size tokens); the other
    arguments are those of ``generate``. Returns a NextTokenDistribution of [V] probabilities.
    Temperature 0 makes every stage from ``after_temperature`` on one-hot on the argmax.
    """
    ids, _, _, _ = _prepare(model, tokenizer, prompt_or_ids, 0, temperature, top_k, top_p,
                            repetition_penalty, None, None)
    out = _forward(model, torch.tensor([ids[-model.config.block_size:]], device=model.device), use_cache=False)
    logits = out.logits[0, -1].float()
    stages = _stages(logits, ids, temperature, top_k, top_p, repetition_penalty)
    probs = {name: F.softmax(value, dim=-1).cpu() for name, value in stages.items()}
    settings = dict(repetition_penalty=repetition_penalty, temperature=temperature, top_k=top_k, top_p=top_p)
    return NextTokenDistribution(logits=logits.cpu(), tokenizer=tokenizer, settings=settings, **probs)


@dataclass
class GenerationStep:
    """One step of sampling: the token drawn and the distribution it was drawn from."""

    token_id: int
    token: str
    distribution: NextTokenDistribution


def trace_generation(model, tokenizer, prompt, max_new_tokens: int = 10, temperature: float = 1.0,
                     top_k: Optional[int] = None, top_p: Optional[float] = None,
                     repetition_penalty: float = 1.0, seed: Optional[int] = None,
                     use_cache: bool = True) -> list[GenerationStep]:
    """Sample like ``generate`` (same arguments, same seed -> same tokens) and keep every step.

    Returns one GenerationStep per new token: the token and the full NextTokenDistribution of
    that step, e.g. to draw greedy or sampling as a path through a tree of candidates.
    """
    ids, _, _, generator = _prepare(model, tokenizer, prompt, max_new_tokens, temperature, top_k,
                                    top_p, repetition_penalty, None, seed)
    settings = dict(repetition_penalty=repetition_penalty, temperature=temperature, top_k=top_k, top_p=top_p)
    trace = []
    for token, stages in _sample_steps(model, ids, max_new_tokens, temperature, top_k, top_p,
                                       repetition_penalty, generator, use_cache):
        probs = {name: F.softmax(value[0], dim=-1).cpu() for name, value in stages.items()}
        dist = NextTokenDistribution(logits=stages["raw"][0].cpu(), tokenizer=tokenizer, settings=settings, **probs)
        trace.append(GenerationStep(token, tokenizer.token_str(token), dist))
    return trace


# ------------------------------------------------------------------ beam search

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


def _length_normalised(logprob: float, length: int, length_penalty: float) -> float:
    return logprob / length ** length_penalty if length > 0 else 0.0


def _reorder_cache(cache, beam_idx: torch.Tensor):
    """Each cached (k, v) [n, H, P, D] -> [len(beam_idx), H, P, D]: row i is old row beam_idx[i]."""
    return [(k.index_select(0, beam_idx), v.index_select(0, beam_idx)) for k, v in cache]


def beam_search(model, tokenizer, prompt, beam_width: int = 5, max_new_tokens: int = 50,
                length_penalty: float = 1.0, repetition_penalty: float = 1.0, stop=None,
                return_beams: bool = False, return_tree: bool = False):
    """Search for a likely continuation, keeping the beam_width best partial texts at each step.

    Each step runs all beams through the model at once ([n, 1] with the KV cache, reordered to
    follow the beams that survive), scores every extension of every beam by its total
    log-probability, and keeps the best beam_width that have not hit a stop; those that hit a
    stop are set aside as finished. Beams are ranked at the end by
        score = total log-probability / (number of new tokens) ** length_penalty
    (0 compares totals, which favours short texts; 1 compares the mean log-probability per
    token). The search ends after max_new_tokens, when no beam is left, or when no running beam
    can beat the beam_width-th finished one any more.

    prompt, stop and repetition_penalty are as in ``generate`` (greedy: no temperature, top-k
    or top-p). Returns the best new text; with ``return_beams`` a list of up to beam_width
    Beam, best first; with ``return_tree`` a pair (that result, list of BeamStep).
    """
    _check_count("beam_width", beam_width, 1)
    if not _is_number(length_penalty):
        raise ValueError(f"length_penalty must be a number (0 = rank by total log-probability, "
                         f"1 = by mean log-probability per token), got {length_penalty!r}")
    prompt_ids, stop_texts, stop_ids, _ = _prepare(model, tokenizer, prompt, max_new_tokens, 0, None, None,
                                                   repetition_penalty, stop, None)
    block_size, device, V = model.config.block_size, model.device, model.config.vocab_size

    def new_text(ids, decode=True):  # -> (text, hit a stop?); decodes only when it must
        if ids and ids[-1] in stop_ids:
            return tokenizer.decode(ids[:-1]), True
        if not (decode or stop_texts):
            return "", False
        text = tokenizer.decode(ids)
        cut = _find_stop(text, stop_texts)
        return (text, False) if cut is None else (text[:cut], True)

    alive = [[]]  # new ids of each running beam
    alive_logprob = torch.zeros(1, device=device)
    finished: list[Beam] = []
    tree: list[BeamStep] = []
    cache, parents = None, None
    for step in range(max_new_tokens):
        seqs = torch.tensor([prompt_ids + a for a in alive], device=device)  # [n, L]
        if cache is not None and _cache_len(cache) < block_size:
            cache = _reorder_cache(cache, parents)
            out = _forward(model, seqs[:, -1:], cache)
        else:  # the first step, or the window slides: run the (cropped) beams in full
            out = _forward(model, seqs[:, -block_size:])
        cache = out.past_key_values
        logits = apply_repetition_penalty(out.logits[:, -1].float(), seqs, repetition_penalty)
        logprobs = F.log_softmax(logits, dim=-1)  # [n, V]
        total = alive_logprob[:, None] + logprobs  # [n, V]
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
        if return_tree:
            tree.append(_tree_step(tokenizer, total, logprobs, status, beam_width, step + 1, length_penalty))
        alive, parents = next_alive, torch.tensor(next_parents, dtype=torch.long, device=device)
        alive_logprob = torch.tensor(next_logprob, device=device)
        if not alive:
            break
        if len(finished) >= beam_width:
            # Log-probabilities only fall as a beam grows, so a running beam can at best keep its
            # total to the end, divided by the largest length it may reach (smallest if
            # length_penalty <= 0). If even that loses to the finished beams, stop searching.
            worst_kept = sorted(b.score for b in finished)[-beam_width]
            longest = max_new_tokens if length_penalty > 0 else step + 1
            if next_logprob[0] / longest ** length_penalty <= worst_kept:
                alive = []
                break
    for ids, lp in zip(alive, alive_logprob.tolist()):
        finished.append(Beam(new_text(ids)[0], ids, _length_normalised(lp, len(ids), length_penalty), lp, False))
    if not finished:  # max_new_tokens == 0
        finished.append(Beam("", [], 0.0, 0.0, False))
    beams = sorted(finished, key=lambda b: b.score, reverse=True)[:beam_width]
    result = beams if return_beams else beams[0].text
    return (result, tree) if return_tree else result


def _tree_step(tokenizer, total, logprobs, status, beam_width, length, length_penalty) -> BeamStep:
    """Record one step of beam search. total, logprobs: [n, V]; status: (parent, token) ->
    "finished" or the candidate's index among the next beams."""
    shown = set(status)
    _, top = total.topk(min(beam_width, total.size(-1)), dim=-1)  # each beam's best extensions
    shown.update((parent, token) for parent, row in enumerate(top.tolist()) for token in row)
    candidates, beams = [], {}
    for parent, token in sorted(shown, key=lambda pt: (pt[0], -float(total[pt]))):
        s = status.get((parent, token), "dropped")
        if isinstance(s, int):
            beams[s] = len(candidates)
            s = "kept"
        t = float(total[parent, token])
        candidates.append(Candidate(parent, token, tokenizer.token_str(token), float(logprobs[parent, token]),
                                    t, _length_normalised(t, length, length_penalty), s))
    return BeamStep(candidates, [beams[i] for i in sorted(beams)])
