"""Measuring a chat model: does it answer, does it stop, does it follow the system prompt?

    held_out = mg.sft_measure.held_out_messages(100)          # first turns of unseen dialogues
    replies = mg.sft_measure.chat_replies(model, tok, held_out, system="Reply calmly. Ask a question.")
    mg.sft_measure.question_rate(replies)                     # share of replies that ask something
    detector = mg.sft_measure.EmotionDetector.train("happiness")
    detector.rate(replies)                                    # share of replies that read as happy

Two system-prompt instructions are measured, each with a measure that can be checked by eye:
"Ask a question" by whether the reply holds a "?", and "Reply with happiness" by a naive Bayes
detector trained on DailyDialog's own emotion labels (its held-out accuracy is reported with it,
so its errors are known). Both are compared with the same model without a system prompt and
with the opposite instruction, and with the base model given the same text.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass
from typing import Optional, Sequence

from .chat import Chat

_WORD = re.compile(r"[a-z']+|[!?]")


def words(text: str) -> list[str]:
    """Lower-case words (and ! ?) of a text: the detector's features."""
    return _WORD.findall(text.lower())


@dataclass
class EmotionDetector:
    """Naive Bayes over words: does a turn express ``emotion`` (vs any other label)?

    Trained on DailyDialog's training turns with equal priors (so it is not just "never", the
    label most turns carry). ``accuracy`` / ``recall`` / ``false_positive_rate`` are measured on the
    validation turns, with a balanced accuracy in ``accuracy``.
    """

    emotion: str
    log_ratio: dict       # word -> log P(word | emotion) - log P(word | other)
    default: float        # the log ratio of a word never seen in training
    recall: float = math.nan
    false_positive_rate: float = math.nan

    @property
    def accuracy(self) -> float:
        return (self.recall + 1 - self.false_positive_rate) / 2

    @classmethod
    def train(cls, emotion: str = "happiness", smoothing: float = 1.0) -> "EmotionDetector":
        from . import data

        counts = {True: Counter(), False: Counter()}
        for d in data.load_dialogues("dailydialog", "train"):
            for t in d:
                counts[t.emotion == emotion].update(words(t))
        vocab = set(counts[True]) | set(counts[False])
        totals = {k: sum(c.values()) + smoothing * (len(vocab) + 1) for k, c in counts.items()}
        ratio = {w: math.log((counts[True][w] + smoothing) / totals[True])
                 - math.log((counts[False][w] + smoothing) / totals[False]) for w in vocab}
        det = cls(emotion, ratio, math.log(smoothing / totals[True]) - math.log(smoothing / totals[False]))
        val = [t for d in data.load_dialogues("dailydialog", "validation") for t in d]
        yes = [det.detects(t) for t in val if t.emotion == emotion]
        no = [det.detects(t) for t in val if t.emotion != emotion]
        det.recall, det.false_positive_rate = sum(yes) / len(yes), sum(no) / len(no)
        return det

    def score(self, text: str) -> float:
        """Log-odds that ``text`` expresses the emotion (equal priors)."""
        return sum(self.log_ratio.get(w, self.default) for w in words(text))

    def detects(self, text: str) -> bool:
        return bool(words(text)) and self.score(text) > 0

    def rate(self, texts: Sequence[str]) -> float:
        """Share of ``texts`` detected as expressing the emotion."""
        return sum(map(self.detects, texts)) / max(1, len(texts))


def question_rate(texts: Sequence[str]) -> float:
    """Share of texts that ask something (hold a question mark)."""
    return sum("?" in t for t in texts) / max(1, len(texts))


def held_out_messages(n: int = 100, min_words: int = 3) -> list[str]:
    """The first turn of the first ``n`` DailyDialog test dialogues that appear in no other split
    (and have at least ``min_words`` words): messages neither model has seen."""
    from . import data
    from .sft import dedupe_against

    seen = data.load_dialogues("dailydialog", "train") + data.load_dialogues("dailydialog", "validation")
    test = dedupe_against(data.load_dialogues("dailydialog", "test"), seen)
    return [str(d[0]) for d in test if len(words(d[0])) >= min_words][:n]


@dataclass
class ChatReply:
    text: str
    ended: bool  # the model wrote its end-of-turn token (chat) or a line break (base) within the limit


def chat_replies(model, tokenizer, messages: Sequence[str], system: Optional[str] = None,
                 max_new_tokens: int = 48, temperature: float = 0.0, seed: int = 0) -> list[ChatReply]:
    """Replies of a chat model to each message (a fresh conversation each), through
    ``minigpt.chat.Chat``: greedy, or sampled at ``temperature`` with top-k 40 (repeatable with
    ``seed``); ``ended``: it wrote <|end|> within max_new_tokens."""
    chat = Chat(model, tokenizer, system=system, max_new_tokens=max_new_tokens, temperature=temperature,
                top_k=40 if temperature else None, top_p=None, top_n=1, seed=seed)
    out = []
    for m in messages:
        chat.reset()
        r = chat.ask(m)
        out.append(ChatReply(r.text, r.stopped == "end_of_turn"))
    return out


def base_replies(model, tokenizer, messages: Sequence[str], system: Optional[str] = None,
                 max_new_tokens: int = 48, temperature: float = 0.0, seed: int = 0) -> list[ChatReply]:
    """What a base model trained on dialogue text writes after each message: the message on a
    line (after the system text on its own line, when given), then the model's next line (greedy,
    or sampled as in ``chat_replies``); ``ended``: it finished that line within max_new_tokens."""
    from .sampling import generate

    out = []
    for k, m in enumerate(messages):
        prompt = (f"{system}\n" if system else "") + f"{m}\n"
        text = generate(model, tokenizer, prompt, max_new_tokens=max_new_tokens, temperature=temperature,
                        top_k=40 if temperature else None, seed=seed + k)
        line, newline, _ = text.partition("\n")
        out.append(ChatReply(line.strip(), bool(newline)))
    return out


def end_rate(replies: Sequence[ChatReply]) -> float:
    """Share of replies that ended by themselves within the token limit."""
    return sum(r.ended for r in replies) / max(1, len(replies))


SYSTEMS = {  # the instructions measured, and their opposites
    "ask a question": "Reply calmly. Ask a question.",
    "give information": "Reply calmly. Give information.",
    "reply with happiness": "Reply with happiness. Give information.",
}


def adherence(replies_of, detector: EmotionDetector, messages: Sequence[str]) -> dict:
    """The measures for one model: ``replies_of(messages, system)`` gives its replies.

    Returns {condition: {"question": rate, detector.emotion: rate, "ended": rate}} for the
    conditions "no system prompt" and each of SYSTEMS."""
    table = {}
    for name, system in [("no system prompt", None), *SYSTEMS.items()]:
        replies = replies_of(messages, system)
        texts = [r.text for r in replies]
        table[name] = {"question": question_rate(texts), detector.emotion: detector.rate(texts),
                       "ended": end_rate(replies), "examples": texts[:3]}
    return table
