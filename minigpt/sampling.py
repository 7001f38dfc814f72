"""Turning next-token scores into text: greedy, temperature, top-k, top-p, repetition penalty,
and streaming generation with the KV cache. (Beam search, which keeps several texts at once,
is in ``beam.py``.)

A language model gives, for a context, one score (logit) per token of the vocabulary. Every way
of writing text is a rule for picking the next token from those scores, applied again and again:

    logits --repetition penalty--> --temperature--> --top-k--> --top-p--> probabilities --> pick

The four knobs are small tensor functions on logits ``[..., V]`` so a notebook can apply them one
at a time; ``next_token_distribution`` shows every stage for one context; ``generate`` and
``stream`` run the loop; ``trace_generation`` runs it and keeps every step's distribution.

Conventions shared by every function here (and by beam search):
- The prompt may be a string or a list / 1-D tensor of token ids. An empty prompt starts from
  ``<|endoftext|>`` when the tokenizer has that special token (GPT-2 saw it between documents,
  so what follows it is the start of a text); otherwise it is a ValueError.
- A context longer than the model's ``block_size`` is cropped to its last ``block_size`` tokens,
  since that is all the model can see. The repetition penalty still counts the whole text.
- ``stop`` is a string, a token id, or a list of them. Generation ends as soon as the new text
  contains a stop string (or a stop token is drawn); the stop text itself is not returned.
- Temperature 0 means greedy: always the most likely token, no randomness.
- Every argument is checked once, when the function is called, never again per token.
"""

from __future__ import annotations

import inspect
import math
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field
from typing import Iterator, NamedTuple, Optional

import torch
from torch.nn import functional as F

from .checks import check_int, is_int
from .runtime import eval_mode

_START_TOKEN = "<|endoftext|>"


class Stage(NamedTuple):
    """One stage of the sampling pipeline: the NextTokenDistribution field that holds it, the
    knob (argument of ``generate``) that makes it, and how a plot titles it."""

    name: str
    knob: Optional[str]
    title: str


# The pipeline in order, spelled here once; plots and widgets read it from here.
PIPELINE = (
    Stage("raw", None, "raw: softmax(logits)"),
    Stage("after_penalty", "repetition_penalty", "after repetition penalty"),
    Stage("after_temperature", "temperature", "after temperature"),
    Stage("after_top_k", "top_k", "after top-k"),
    Stage("after_top_p", "top_p", "after top-p"),
    Stage("final", None, "final: sampled from"),  # the last filter's output, the one a token is drawn from
)
STAGES = tuple(stage.name for stage in PIPELINE)


# ------------------------------------------------------------------ checking the knobs

def _is_number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _check_temperature(temperature) -> None:
    if not _is_number(temperature) or temperature < 0:
        raise ValueError(f"temperature must be a number >= 0 (0 = greedy, 1 = the model's own "
                         f"probabilities, above 1 flatter), got {temperature!r}")


def _check_top_k(top_k) -> None:
    if top_k is not None and (not is_int(top_k) or top_k < 1):
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


# ------------------------------------------------------------------ the knobs, on logits [..., V]
# Each knob is a check and a core; the public functions do both, the generation loop only the
# core, since its settings were checked once at the call.

def _penalise(logits: torch.Tensor, seen: torch.Tensor, penalty: float) -> torch.Tensor:
    """logits [..., V]; seen: bool [..., V], True for the tokens already in the text."""
    return torch.where(seen, torch.where(logits > 0, logits / penalty, logits * penalty), logits)


def seen_mask(previous_ids, shape, device=None) -> torch.Tensor:
    """bool [*shape] (shape = [..., V]): True at every token id in previous_ids, which is a list or
    [N] tensor (the same for every row) or a [..., N] long tensor with one row of ids per row."""
    ids = torch.as_tensor(previous_ids, dtype=torch.long, device=device)
    V = shape[-1]
    if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= V):
        raise ValueError(f"previous_ids must be token ids in [0, {V}), got values from "
                         f"{int(ids.min())} to {int(ids.max())}")
    if ids.dim() == 1:
        ids = ids.expand(*shape[:-1], -1)  # the same history for every row
    return torch.zeros(shape, dtype=torch.bool, device=device).scatter_(-1, ids, True)


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
    if penalty == 1:  # before building a mask of the whole history
        return logits
    return _penalise(logits, seen_mask(previous_ids, logits.shape, logits.device), penalty)


def _temperature(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    if temperature == 0:
        best = logits.argmax(dim=-1, keepdim=True)
        return torch.full_like(logits, float("-inf")).scatter(-1, best, logits.gather(-1, best))
    return logits / temperature


def apply_temperature(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Divide the logits by the temperature: below 1 sharpens the distribution, above 1 flattens it.

    logits: [..., V]. Returns a new [..., V] tensor. Temperature 0 is the limit of ever sharper
    distributions: only the largest logit survives (others become -inf), so sampling is greedy.
    """
    _check_temperature(temperature)
    return _temperature(logits, temperature)


def _top_k(logits: torch.Tensor, k: int) -> torch.Tensor:
    if k >= logits.size(-1):
        return logits
    values, idx = logits.topk(k, dim=-1)
    return torch.full_like(logits, float("-inf")).scatter(-1, idx, values)


def top_k_filter(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the k largest logits of each row; set the others to -inf (probability 0).

    logits: [..., V]. Returns a new [..., V] tensor with exactly min(k, V) finite entries per row
    (among equal logits, the ones ``torch.topk`` picks are kept).
    """
    _check_top_k(k)
    return _top_k(logits, k)


def _top_p(logits: torch.Tensor, p: float) -> torch.Tensor:
    if p == 1:
        return logits
    sorted_logits, order = logits.sort(dim=-1, descending=True)
    probs = F.softmax(sorted_logits.float(), dim=-1)
    mass_before = probs.cumsum(dim=-1) - probs  # probability of the tokens ranked above each one
    drop_sorted = mass_before >= p
    drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)  # back to vocabulary order
    return logits.masked_fill(drop, float("-inf"))


def top_p_filter(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Nucleus filter: keep the smallest set of most likely tokens whose probability reaches p.

    logits: [..., V]. Returns a new [..., V] tensor, the dropped tokens set to -inf. Going from
    the most likely token down, a token is kept while the mass of the tokens before it is still
    below p; so the most likely token is always kept, and p = 1 keeps every token.
    """
    _check_top_p(p)
    return _top_p(logits, p)


@dataclass(frozen=True)
class Knobs:
    """The four knobs of one generate / stream / trace call, checked once when made."""

    temperature: float = 1.0
    top_k: Optional[int] = None
    top_p: Optional[float] = None
    repetition_penalty: float = 1.0

    def __post_init__(self):
        _check_temperature(self.temperature)
        _check_top_k(self.top_k)
        _check_top_p(self.top_p)
        _check_penalty(self.repetition_penalty)

    def penalise(self, logits: torch.Tensor, seen: Optional[torch.Tensor]) -> torch.Tensor:
        """logits [B, V] with the repetition penalty applied to the tokens ``seen`` marks (bool
        [B, V], from ``seen_mask``; None when the penalty is off)."""
        return logits if seen is None else _penalise(logits, seen, self.repetition_penalty)

    def stages(self, logits: torch.Tensor, seen: Optional[torch.Tensor]) -> list[torch.Tensor]:
        """logits [B, V] after each knob in turn, in PIPELINE order up to after_top_p (five [B, V]
        tensors; a knob that is off passes its input on). seen: bool [B, V], or None when the
        penalty is off."""
        after_penalty = self.penalise(logits, seen)
        after_temperature = _temperature(after_penalty, self.temperature)
        after_top_k = after_temperature if self.top_k is None else _top_k(after_temperature, self.top_k)
        after_top_p = after_top_k if self.top_p is None else _top_p(after_top_k, self.top_p)
        return [logits, after_penalty, after_temperature, after_top_k, after_top_p]

    def draw(self, final_logits: torch.Tensor, generator) -> torch.Tensor:
        """final_logits [B, V] -> [B] long: the argmax when greedy, else a draw from the softmax."""
        if self.temperature == 0:
            return final_logits.argmax(dim=-1)
        return torch.multinomial(F.softmax(final_logits, dim=-1), 1, generator=generator).squeeze(-1)

    def pick(self, logits: torch.Tensor, seen: Optional[torch.Tensor], generator) -> torch.Tensor:
        """The next token of each row, [B] long, the same one ``draw(stages(...)[-1])`` picks but
        without stages nobody looks at: greedy is just the argmax of the penalised logits."""
        if self.temperature == 0:
            return self.penalise(logits, seen).argmax(dim=-1)
        return self.draw(self.stages(logits, seen)[-1], generator)


# ------------------------------------------------------------------ prompts, stops, the model

def encode_prompt(tokenizer, prompt, vocab_size: int) -> list[int]:
    """The prompt (a string or token ids) as a non-empty list of ids below vocab_size; an empty
    prompt is ``<|endoftext|>`` when the tokenizer has it, else a ValueError."""
    if isinstance(prompt, str):
        ids = tokenizer.encode(prompt) if prompt else []
    elif isinstance(prompt, torch.Tensor) and prompt.dim() <= 1 and not prompt.is_floating_point():
        ids = prompt.reshape(-1).tolist()
    elif isinstance(prompt, (list, tuple)) and all(is_int(i) for i in prompt):
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
    bad = [i for i in ids if not 0 <= i < vocab_size]
    if bad:
        raise ValueError(f"prompt token id {bad[0]} is out of range for the model's vocab_size {vocab_size}; "
                         f"was the model trained with this tokenizer?")
    return ids


@dataclass(frozen=True)
class Stops:
    """Where generation ends: stop strings and stop token ids (``stop`` of ``generate``, parsed once)."""

    texts: tuple = ()
    ids: frozenset = frozenset()

    @classmethod
    def parse(cls, stop, vocab_size: int) -> "Stops":
        """stop: None, a string, a token id, or a list of them."""
        if stop is None:
            return cls()
        items = [stop] if isinstance(stop, (str, int)) else stop
        if not isinstance(items, (list, tuple, set)):
            raise ValueError(f"stop must be a string, a token id, or a list of them, got {type(stop).__name__}")
        texts, ids = [], set()
        for s in items:
            if isinstance(s, str) and s:
                texts.append(s)
            elif is_int(s) and 0 <= s < vocab_size:
                ids.add(s)
            else:
                raise ValueError(f"each stop must be a non-empty string or a token id in [0, {vocab_size}), "
                                 f"got {s!r}")
        return cls(tuple(texts), frozenset(ids))

    def find(self, text: str, start: int = 0) -> Optional[int]:
        """Index where the earliest stop string begins in text[start:] (None if there is none)."""
        hits = [i for s in self.texts if (i := text.find(s, start)) != -1]
        return min(hits) if hits else None

    def held_back(self, text: str) -> int:
        """How many characters at the end of text might be the start of a stop string."""
        longest = 0
        for s in self.texts:
            for n in range(min(len(s) - 1, len(text)), longest, -1):
                if text.endswith(s[:n]):
                    longest = n
                    break
        return longest


@contextmanager
def generating(model):
    """The state every generator runs in: eval mode, no autograd. (A model already in eval mode is
    left alone: switching modes walks every module, which ``stream`` would pay at every token.)"""
    with torch.inference_mode(), (eval_mode(model) if model.training else nullcontext()):
        yield


def _one_step_at_a_time(model, steps: Iterator) -> Iterator:
    """Run each step of a generator in ``generating(model)`` but yield outside it, so the
    caller's code between steps keeps its own autograd state and model mode."""
    while True:
        with generating(model):
            item = next(steps, _DONE)
        if item is _DONE:
            return
        yield item


_DONE = object()


def _generator(seed, device) -> Optional[torch.Generator]:
    """A generator of our own: the same seed gives the same text and the global RNG is untouched.
    Without a seed, draws come from torch's global RNG (so torch.manual_seed works too)."""
    check_int(seed, "seed", allow_none=True)
    return None if seed is None else torch.Generator(device=device).manual_seed(seed)


# ------------------------------------------------------------------ the sampling loop

def _new_tokens(model, ids: list[int], *, max_new_tokens: int, knobs: Knobs, generator, use_cache: bool,
                keep_stages: bool = False) -> Iterator[tuple[int, Optional[list]]]:
    """Yield (token id, the five stage logits of that step or None) for each new token; ids grows
    in place. Runs inside ``generating(model)``.

    With the cache, the prompt is run once (prefill) and then only the newest token each step.
    Past block_size the window slides. With learned positions every kept token then moves one
    position left, so the cached keys and values are no longer right: each step recomputes the
    window, and the tokens stay exactly those of recomputing the cropped context every step (a
    test holds them equal). A rotary cache slides itself (scores depend only on distances).

    Per token: one forward, the knobs' tensor work, and one read of the token id (the only
    device sync); the next input is the drawn token's tensor itself.
    """
    block_size, device = model.config.block_size, model.device
    slides = getattr(model.config, "positions", "learned") == "rope"  # a rotary cache slides itself: no recompute
    seen = None  # bool [1, V]: the tokens the repetition penalty pushes down
    if knobs.repetition_penalty != 1:
        seen = seen_mask(ids, (1, model.config.vocab_size), device)
    x = torch.tensor([ids[-block_size:]], device=device)  # [1, T]: the prompt, then one token at a time
    # The prompt's other positions need keys and values, not logits (models that can skip them say so)
    last_only = {"last_only": True} if "last_only" in inspect.signature(model.forward).parameters else {}
    cache, cached = None, 0  # cached: positions in the cache
    for _ in range(max_new_tokens):
        cached += x.size(1)
        out = model(x, past_key_values=cache, use_cache=use_cache and (cached < block_size or slides),  # a full cache is no use
                    **last_only)
        cache = out.past_key_values
        logits = out.logits[:, -1].float()  # [1, V]
        if keep_stages:
            stages = knobs.stages(logits, seen)
            token = knobs.draw(stages[-1], generator)
        else:
            stages, token = None, knobs.pick(logits, seen, generator)
        if seen is not None:
            seen.scatter_(1, token[:, None], True)
        ids.append(int(token))
        yield ids[-1], stages
        if use_cache and (cached < block_size or slides):
            x = token[:, None]  # [1, 1]
        else:  # no cache, or the window slides: recompute the cropped context
            x, cache, cached = torch.tensor([ids[-block_size:]], device=device), None, 0


def _text_pieces(tokenizer, steps, stops: Stops) -> Iterator[str]:
    """Decoded new text, piece by piece: held back while not whole characters or maybe a stop."""
    text = ""      # the new text so far, whole characters only
    pending = []   # ids whose bytes do not form whole characters yet
    emitted = 0    # how much of text has been yielded
    longest_stop = max((len(s) for s in stops.texts), default=0)
    for token, _ in steps:
        if token in stops.ids:
            break
        pending.append(token)
        piece = tokenizer.decode(pending)
        if piece.endswith("\ufffd"):  # an incomplete UTF-8 character: wait for its other bytes
            continue
        checked, text, pending = len(text), text + piece, []
        if stops.texts:
            cut = stops.find(text, max(0, checked - longest_stop + 1))
            if cut is not None:
                if cut > emitted:
                    yield text[emitted:cut]
                return
        safe = len(text) - stops.held_back(text)
        if safe > emitted:
            yield text[emitted:safe]
            emitted = safe
    if pending:  # bytes that never became a character are shown as U+FFFD
        text += tokenizer.decode(pending)
    cut = stops.find(text)
    end = len(text) if cut is None else cut
    if end > emitted:
        yield text[emitted:end]


def _pieces(model, tokenizer, prompt, *, max_new_tokens, temperature, top_k, top_p, repetition_penalty,
            stop, seed, use_cache) -> Iterator[str]:
    """Check every argument now; return the (not yet started) generator of text pieces."""
    knobs = Knobs(temperature=temperature, top_k=top_k, top_p=top_p, repetition_penalty=repetition_penalty)
    check_int(max_new_tokens, "max_new_tokens", low=0)
    generator = _generator(seed, model.device)
    ids = encode_prompt(tokenizer, prompt, model.config.vocab_size)
    stops = Stops.parse(stop, model.config.vocab_size)
    steps = _new_tokens(model, ids, max_new_tokens=max_new_tokens, knobs=knobs, generator=generator,
                        use_cache=use_cache)
    return _text_pieces(tokenizer, steps, stops)


def stream(model, tokenizer, prompt, max_new_tokens: int = 100, temperature: float = 1.0,
           top_k: Optional[int] = None, top_p: Optional[float] = None, repetition_penalty: float = 1.0,
           stop=None, seed: Optional[int] = None, use_cache: bool = True) -> Iterator[str]:
    """Generate text and yield it as it comes: one decoded piece per new token.

    Arguments are those of ``generate``, checked at once (before the first piece). A piece is
    held back while it is not yet a whole character (byte-level BPE can split one character over
    several tokens) or while it might be the start of a stop string, and comes out with a later
    piece; so some steps yield nothing, and ``"".join(stream(...)) == generate(...)``.
    """
    pieces = _pieces(model, tokenizer, prompt, max_new_tokens=max_new_tokens, temperature=temperature,
                     top_k=top_k, top_p=top_p, repetition_penalty=repetition_penalty, stop=stop, seed=seed,
                     use_cache=use_cache)
    return _one_step_at_a_time(model, pieces)


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
    pieces = _pieces(model, tokenizer, prompt, max_new_tokens=max_new_tokens, temperature=temperature,
                     top_k=top_k, top_p=top_p, repetition_penalty=repetition_penalty, stop=stop, seed=seed,
                     use_cache=use_cache)
    with generating(model):  # once for the whole text
        return "".join(pieces)


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

    @classmethod
    def from_stages(cls, stages: list, tokenizer, knobs: Knobs) -> "NextTokenDistribution":
        """From ``Knobs.stages`` of one context (five [1, V] or [V] logits)."""
        probs = {stage.name: F.softmax(logits.reshape(-1), dim=-1).cpu() for stage, logits in zip(PIPELINE, stages)}
        return cls(logits=stages[0].reshape(-1).cpu(), tokenizer=tokenizer, settings=asdict(knobs), **probs)

    @property
    def final(self) -> torch.Tensor:
        """The distribution a token is drawn from: the last stage."""
        return self.after_top_p

    def top(self, n: int = 10, stage: str = "final") -> list[tuple[str, int, float]]:
        """The n most likely tokens at a stage, as (printable token, id, probability), best first."""
        check_int(n, "n", low=1)
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
    knobs = Knobs(temperature=temperature, top_k=top_k, top_p=top_p, repetition_penalty=repetition_penalty)
    V = model.config.vocab_size
    ids = encode_prompt(tokenizer, prompt_or_ids, V)
    with generating(model):
        out = model(torch.tensor([ids[-model.config.block_size:]], device=model.device))
        seen = None if repetition_penalty == 1 else seen_mask(ids, (1, V), model.device)
        stages = knobs.stages(out.logits[:, -1].float(), seen)
    return NextTokenDistribution.from_stages(stages, tokenizer, knobs)


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
    knobs = Knobs(temperature=temperature, top_k=top_k, top_p=top_p, repetition_penalty=repetition_penalty)
    check_int(max_new_tokens, "max_new_tokens", low=0)
    generator = _generator(seed, model.device)
    ids = encode_prompt(tokenizer, prompt, model.config.vocab_size)
    with generating(model):
        return [GenerationStep(token, tokenizer.token_str(token), NextTokenDistribution.from_stages(stages, tokenizer, knobs))
                for token, stages in _new_tokens(model, ids, max_new_tokens=max_new_tokens, knobs=knobs,
                                                 generator=generator, use_cache=use_cache, keep_stages=True)]
