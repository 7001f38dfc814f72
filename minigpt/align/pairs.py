"""The data of alignment: preference pairs (a prompt, a preferred and a rejected answer) and prompts.

    pairs = align.load_preference_pairs("train")     # 1,100 instructions with a polite and an impolite answer
    prompts = align.dialogue_prompts("validation", n=200, tokenizer=tok, max_prompt_tokens=48)

A *prompt* is a conversation that the assistant answers next (a list of messages, usually one user
message). An *answer* is the assistant's text; as tokens it is the text followed by the template's
end-of-turn token, since deciding to stop is part of answering.

The preference data (``preference-data``, Apache-2.0) are instruction-tuning records whose two
answers were written by Llama 3.1 70B: ``chosen`` in a polite tone, ``rejected`` in an impolite one.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Optional, Sequence

from ..chat import Message, check_messages, render_tokens, template_for

SPLITS = ("train", "dev", "test", "all")


def as_messages(prompt) -> list[Message]:
    """A prompt as a checked list of Messages: a string is one user message."""
    if isinstance(prompt, str):
        prompt = [Message("user", prompt)]
    elif isinstance(prompt, (Message, dict)):
        prompt = [prompt]
    return check_messages(prompt)


@dataclass(frozen=True)
class PreferencePair:
    """One comparison: for ``prompt`` (messages), ``chosen`` is the answer people preferred to ``rejected``."""

    prompt: tuple
    chosen: str
    rejected: str

    def __post_init__(self):
        object.__setattr__(self, "prompt", tuple(as_messages(self.prompt)))
        for name in ("chosen", "rejected"):
            answer = getattr(self, name)
            if not isinstance(answer, str) or not answer.strip():
                raise ValueError(f"the {name} answer of a preference pair is empty ({answer!r}): an empty answer "
                                 f"has nothing to score; leave the pair out")
        if self.chosen.strip() == self.rejected.strip():
            raise ValueError(f"a preference pair has the same chosen and rejected answer ({self.chosen[:60]!r}): "
                             f"it says nothing about which is better and would only add ln 2 to the loss; leave it out")


def instruction_prompt(record: dict) -> list[Message]:
    """An Alpaca-style record's instruction (and its input, after a blank line) as one user message."""
    text = record["instruction"] + (f"\n\n{record['input']}" if record.get("input") else "")
    return [Message("user", text)]


def load_preference_pairs(split: str = "train", seed: int = 0) -> list[PreferencePair]:
    """The preference data as PreferencePairs: 80% train, 10% dev, 10% test of a seeded shuffle
    ("all" keeps every pair). Records whose two answers are the same (6 of 1,100) are left out."""
    from .. import data

    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    pairs = [PreferencePair(instruction_prompt(r), r["chosen"], r["rejected"])
             for r in data.load_json("preference-data") if r["chosen"].strip() != r["rejected"].strip()]
    random.Random(seed).shuffle(pairs)
    n_train, n_dev = int(0.8 * len(pairs)), int(0.1 * len(pairs))
    return {"train": pairs[:n_train], "dev": pairs[n_train:n_train + n_dev],
            "test": pairs[n_train + n_dev:], "all": pairs}[split]


def dialogue_prompts(split: str = "validation", n: Optional[int] = None, tokenizer=None,
                     max_prompt_tokens: Optional[int] = None, seed: int = 0) -> list[list[Message]]:
    """DailyDialog utterances as single-turn prompts for a dialogue policy: every turn spoken to the
    other (all but each dialogue's last), deduplicated, shuffled with ``seed``, the first ``n`` kept.
    With ``tokenizer`` and ``max_prompt_tokens``, only prompts whose rendered form (template and
    generation prompt included) takes at most that many tokens. Returns lists of Messages."""
    from .. import data

    texts, seen = [], set()
    for turns in data.load_dialogues("dailydialog", split):
        for turn in turns[:-1]:
            text = str(turn).strip()
            if text and text not in seen:
                seen.add(text)
                texts.append(text)
    random.Random(seed).shuffle(texts)
    out = []
    for text in texts:
        prompt = [Message("user", text)]
        if (tokenizer is not None and max_prompt_tokens is not None
                and len(prompt_ids(tokenizer, prompt)) > max_prompt_tokens):
            continue
        out.append(prompt)
        if n is not None and len(out) == n:
            break
    return out


# ------------------------------------------------------------------ to token ids

def end_id(tokenizer) -> int:
    """The id of the chat template's end-of-turn token (``<|end|>`` or ``<|im_end|>``)."""
    return tokenizer.special_tokens[template_for(tokenizer).end]


def prompt_ids(tokenizer, prompt) -> list[int]:
    """The prompt rendered with the tokenizer's chat template, up to the opened assistant turn."""
    return render_tokens(tokenizer, as_messages(prompt), add_generation_prompt=True).ids


def answer_ids(tokenizer, answer: str) -> list[int]:
    """The answer's tokens followed by the end-of-turn token. Typed text never becomes a control token."""
    if not isinstance(answer, str) or not answer.strip():
        raise ValueError(f"the answer is empty ({answer!r}): there is nothing to score; give some text")
    return tokenizer.encode(answer, allowed_special="none") + [end_id(tokenizer)]


def prompt_text(prompt) -> str:
    """The last user message of a prompt, for display."""
    messages = as_messages(prompt)
    return next((m.content for m in reversed(messages) if m.role == "user"), messages[-1].content)


def check_pairs(pairs: Sequence, what: str = "pairs") -> list[PreferencePair]:
    """A non-empty list of PreferencePairs (dicts with prompt, chosen, rejected are converted)."""
    out = []
    for p in pairs:
        if isinstance(p, dict):
            p = PreferencePair(p["prompt"], p["chosen"], p["rejected"])
        elif not isinstance(p, PreferencePair):
            raise ValueError(f"{what} must hold PreferencePairs (or dicts with prompt, chosen, rejected), "
                             f"got {type(p).__name__}")
        out.append(p)
    if not out:
        raise ValueError(f"{what} is empty: give at least one preference pair")
    return out
