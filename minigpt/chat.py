"""Chatting with a language model: messages, the chat template, the context window, a session.

A chat model reads one long text. The *chat template* writes the conversation into it, with
control tokens the model was fine-tuned on; for ChatML (SmolLM2, Qwen, ...):

    <|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n
    <|im_start|>user\\nWhat is the capital of France?<|im_end|>\\n
    <|im_start|>assistant\\n                      <- the model writes from here ...
    The capital of France is Paris.<|im_end|>    <- ... until it writes the end-of-turn token

    chat = mg.chat.Chat(model, tok, system="You are a pirate.")
    reply = chat.ask("Where is the treasure?")          # a Reply: text, tokens, distributions
    for piece in chat.stream("And then?"): print(piece, end="")
    chat.branch(3, other_token_id)                        # the last reply again, another word at 3

Sampling uses the package's sampler pieces (``mg.sampling.Knobs``: the knobs in ``mg.generate``'s
order, and its draw); each token records the top of the distribution it was drawn from. The session keeps the KV cache across turns: a new
turn runs only the tokens the model has not seen yet.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Iterator, Optional

import torch
from torch.nn import functional as F

from .sampling import Knobs, seen_mask

ROLES = ("system", "user", "assistant")
LABELS = ("template", "system", "history", "question", "assistant")  # what each prompt token is


@dataclass(frozen=True)
class Message:
    """One message of a conversation: role is "system", "user" or "assistant"."""

    role: str
    content: str


def check_messages(messages) -> list[Message]:
    """Messages (Message objects or {"role": ..., "content": ...} dicts) -> a checked list.

    Raises ValueError for an unknown role, an empty message, a system message that is not the
    first, or no messages at all.
    """
    if isinstance(messages, (str, dict, Message)) or not hasattr(messages, "__iter__"):
        raise ValueError("messages must be a list of messages, e.g. [{'role': 'user', 'content': 'Hi'}]")
    out = []
    for i, m in enumerate(messages):
        if isinstance(m, dict):
            if set(m) - {"role", "content"} or "role" not in m or "content" not in m:
                raise ValueError(f"message {i} must have the keys 'role' and 'content', got {sorted(m)}")
            m = Message(m["role"], m["content"])
        elif not isinstance(m, Message):
            raise ValueError(f"message {i} must be a dict with 'role' and 'content' or a Message, "
                             f"got {type(m).__name__}")
        if m.role not in ROLES:
            raise ValueError(f"message {i} has the unknown role {m.role!r}; roles are {', '.join(ROLES)}")
        if not isinstance(m.content, str):
            raise ValueError(f"message {i} ({m.role}) must hold a string, got {type(m.content).__name__}")
        if not m.content.strip():
            raise ValueError(f"message {i} ({m.role}) is empty: write something, or leave the message out")
        if m.role == "system" and i != 0:
            raise ValueError(f"message {i} is a system message; the system prompt must come first")
        out.append(m)
    if not out:
        raise ValueError("the conversation is empty: give at least one message")
    return out


# ------------------------------------------------------------------ the template

@dataclass(frozen=True)
class ChatML:
    """The ChatML template: <|im_start|>role\\ncontent<|im_end|>\\n per message.

    default_system: the system prompt used when the conversation has none (SmolLM2's template
    adds "You are a helpful AI assistant named SmolLM, trained by Hugging Face"); None adds none.
    """

    default_system: Optional[str] = None
    start: str = "<|im_start|>"
    end: str = "<|im_end|>"

    def with_system(self, messages: list[Message]) -> list[Message]:
        if messages[0].role != "system" and self.default_system:
            return [Message("system", self.default_system), *messages]
        return messages

    def render(self, messages, add_generation_prompt: bool = True) -> str:
        """The conversation as the one text the model reads."""
        text = ""
        for m in self.with_system(check_messages(messages)):
            text += f"{self.start}{m.role}\n{m.content}{self.end}\n"
        if add_generation_prompt:  # the assistant's turn begins; the model writes the rest
            text += f"{self.start}assistant\n"
        return text


def template_for(tokenizer) -> ChatML:
    """The chat template of a tokenizer: ChatML when it has <|im_start|> and <|im_end|>, with the
    default system prompt read from the model file's own template (``tokenizer.chat_template``)."""
    specials = getattr(tokenizer, "special_tokens", {}) or {}
    if "<|assistant|>" in specials and "<|end|>" in specials:  # the course's own template (minigpt.sft)
        from .sft import TEMPLATE
        return TEMPLATE
    if "<|im_start|>" not in specials or "<|im_end|>" not in specials:
        raise ValueError("this tokenizer has no <|im_start|> / <|im_end|> tokens, so it is not a ChatML chat "
                         "model's; chat needs an instruction-tuned model such as smollm2-135m-instruct")
    jinja = getattr(tokenizer, "chat_template", None) or ""
    found = re.search(r"<\|im_start\|>system\n(.*?)<\|im_end\|>", jinja, re.S)
    return ChatML(default_system=found.group(1) if found else None)


@dataclass
class RenderedChat:
    """A conversation as token ids, each with a label for display.

    ids:     [N] token ids, what the model reads.
    labels:  [N] one of LABELS: "template" (control tokens, role names, line breaks), "system",
             "history" (earlier turns), "question" (the newest user message), "assistant" (reply).
    message: [N] index of the message each token belongs to (into ``messages``; -1 for the
             generation prompt that opens the assistant's turn).
    messages: the messages rendered (the default system prompt included; dropped turns not).
    dropped:  how many of the oldest messages were left out to fit the window.
    """

    ids: list
    labels: list
    message: list
    messages: list
    dropped: int = 0

    def __len__(self) -> int:
        return len(self.ids)

    def tokens(self, tokenizer) -> list[str]:
        """Printable form of every token."""
        return [tokenizer.token_str(i) for i in self.ids]


def render_tokens(tokenizer, messages, template: Optional[ChatML] = None,
                  add_generation_prompt: bool = True) -> RenderedChat:
    """Render the conversation token by token, with a label per token (see RenderedChat).

    Control tokens become their ids; everything a person wrote is encoded as plain text, so a
    message that contains "<|im_end|>" cannot end its turn early. Otherwise the ids equal
    ``tokenizer.encode(template.render(messages), allowed_special="all")`` (a test holds them equal).
    """
    template = template or template_for(tokenizer)
    if hasattr(template, "render_tokens"):  # a template that renders itself (minigpt.sft.RoleTokens)
        return template.render_tokens(tokenizer, messages, add_generation_prompt)
    messages = template.with_system(check_messages(messages))
    start, end = tokenizer.special_tokens[template.start], tokenizer.special_tokens[template.end]
    last_user = max((i for i, m in enumerate(messages) if m.role == "user"), default=-1)
    ids, labels, owner = [], [], []

    def add(new_ids, label, index):
        ids.extend(new_ids)
        labels.extend([label] * len(new_ids))
        owner.extend([index] * len(new_ids))

    for i, m in enumerate(messages):
        label = "system" if m.role == "system" else "question" if i == last_user else "history"
        add([start], "template", i)
        # "role\ncontent" is encoded in one piece, as in the whole rendered text (a token may
        # span the line break and the content's first spaces); a token that starts in "role\n"
        # counts as template, the rest as the content.
        head = len(f"{m.role}\n".encode("utf-8"))
        at = 0
        for t in tokenizer.encode(f"{m.role}\n{m.content}", allowed_special="none"):
            add([t], "template" if at < head else label, i)
            at += len(tokenizer.decode_bytes([t]))
        add([end], "template", i)
        add(tokenizer.encode("\n", allowed_special="none"), "template", i)
    if add_generation_prompt:
        add([start], "template", -1)
        add(tokenizer.encode("assistant\n", allowed_special="none"), "template", -1)
    return RenderedChat(ids, labels, owner, messages)


def fit_to_window(tokenizer, messages, max_tokens: int, template: Optional[ChatML] = None) -> RenderedChat:
    """Render the conversation, dropping the oldest turns until it takes at most max_tokens.

    The system prompt and the newest message always stay; the oldest other messages go first
    (a user message with the assistant's answer to it). ``dropped`` says how many went.
    Raises ValueError when the system prompt and the newest message alone are too long.
    """
    template = template or template_for(tokenizer)
    messages = template.with_system(check_messages(messages))
    system, turns = (messages[:1], messages[1:]) if messages[0].role == "system" else ([], messages)
    dropped = 0
    while True:
        rendered = render_tokens(tokenizer, system + turns[dropped:], template)
        if len(rendered) <= max_tokens:
            rendered.dropped = dropped
            return rendered
        if dropped >= len(turns) - 1:
            raise ValueError(f"the system prompt and the newest message take {len(rendered)} tokens, but the "
                             f"window leaves room for {max_tokens} (the model's context minus the tokens kept "
                             f"for the reply); shorten the message or the system prompt, or give fewer "
                             f"max_new_tokens")
        dropped += 2 if turns[dropped].role == "user" and dropped + 2 < len(turns) else 1


# ------------------------------------------------------------------ a reply, token by token

@dataclass
class TokenChoice:
    """One generated token and the distribution it was drawn from.

    top:     the 10 most likely tokens of that distribution (after temperature, top-k, top-p),
             as (printable token, id, probability), best first.
    raw_top: the same for the model's own probabilities (before the knobs).
    """

    token_id: int
    token: str
    prob: float  # probability the chosen token had in the distribution it was drawn from
    top: list
    raw_top: list


@dataclass
class Reply:
    """What ``Chat.ask`` returns: the answer and how it came about.

    text:           the answer (without the end-of-turn token).
    steps:          one TokenChoice per generated token (the end-of-turn token included, when drawn).
    stopped:        "end_of_turn" or "max_new_tokens".
    prompt:         the RenderedChat the model read (its labels say which token is what).
    dropped:        how many old messages were left out to fit the window (0: none).
    reused_tokens:  prompt tokens whose keys and values came from the kept cache.
    prefill_s, generate_s: seconds to read the new prompt tokens / to write the reply.
    """

    text: str
    steps: list
    stopped: str
    prompt: RenderedChat
    dropped: int = 0
    reused_tokens: int = 0
    prefill_s: float = 0.0
    generate_s: float = 0.0

    @property
    def token_ids(self) -> list[int]:
        return [s.token_id for s in self.steps]

    @property
    def tokens_per_s(self) -> float:
        return len(self.steps) / self.generate_s if self.generate_s > 0 else float("nan")


def _top(probs: torch.Tensor, tokenizer, n: int) -> list:
    """The n most likely tokens that have any probability, as (printable token, id, probability)."""
    values, idx = probs.topk(min(n, probs.numel()))
    return [(tokenizer.token_str(i), i, p) for i, p in zip(idx.tolist(), values.tolist()) if p > 0]


class Chat:
    """A conversation with a chat model that keeps its KV cache from turn to turn.

    model, tokenizer: a GPT and its tokenizer with a ChatML template (``mg.pretrained.load``).
    system:           the system prompt; None uses the template's default (SmolLM2 has one).
    max_new_tokens:   longest reply; the window keeps this much room for it.
    temperature, top_k, top_p, repetition_penalty: the sampling knobs, as in ``mg.generate``
                      (temperature 0 = greedy).
    seed:             an int makes replies repeatable (a private torch.Generator).
    keep_cache:       False recomputes the whole conversation every turn (to measure the cache).
    context_window:   tokens the model may read; default the model's block_size.
    top_n:            how many alternatives each TokenChoice records.
    """

    def __init__(self, model, tokenizer, system: Optional[str] = None, max_new_tokens: int = 256,
                 temperature: float = 0.7, top_k: Optional[int] = 50, top_p: Optional[float] = 0.9,
                 repetition_penalty: float = 1.0, seed: Optional[int] = None, keep_cache: bool = True,
                 context_window: Optional[int] = None, top_n: int = 10):
        self.model, self.tokenizer = model, tokenizer
        self.template = template_for(tokenizer)
        self.knobs = dict(temperature=temperature, top_k=top_k, top_p=top_p, repetition_penalty=repetition_penalty)
        Knobs(**self.knobs)  # checks them before any work
        if not isinstance(max_new_tokens, int) or max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be a positive integer, got {max_new_tokens!r}")
        self.max_new_tokens, self.keep_cache, self.top_n = max_new_tokens, keep_cache, top_n
        self.context_window = min(context_window or model.config.block_size, model.config.block_size)
        if self.context_window <= max_new_tokens:
            raise ValueError(f"context_window ({self.context_window}) must be larger than max_new_tokens "
                             f"({max_new_tokens}), which it keeps free for the reply")
        self.generator = None if seed is None else torch.Generator(device=model.device).manual_seed(seed)
        self.end_ids = {tokenizer.special_tokens[t] for t in (self.template.end, "<|endoftext|>")
                        if t in tokenizer.special_tokens}
        self.messages: list[Message] = []
        self.system = None
        self.set_system(system)
        self.last_reply: Optional[Reply] = None
        self._cache, self._cache_ids = None, []  # the KV cache and the ids it holds

    # ------------------------------------------------------------------ the conversation

    def set_system(self, system: Optional[str]) -> None:
        """Change the system prompt (None: the template's default); the turns so far stay."""
        if system is not None:
            check_messages([Message("system", system)])
        self.system = system

    def reset(self) -> None:
        """Forget every turn (the system prompt stays) and the cache."""
        self.messages, self.last_reply = [], None
        self._cache, self._cache_ids = None, []

    def conversation(self) -> list[Message]:
        """The messages as the model reads them: the system prompt (if set), then the turns."""
        return ([Message("system", self.system)] if self.system is not None else []) + self.messages

    def render(self, add_generation_prompt: bool = False) -> RenderedChat:
        """The conversation so far, token by token with labels (see ``render_tokens``); before
        the first turn, the system prompt alone (or nothing, when there is none)."""
        messages = self.conversation()
        if not messages:
            default = self.template.default_system
            if not default:
                return RenderedChat([], [], [], [])
            messages = [Message("system", default)]
        return render_tokens(self.tokenizer, messages, self.template, add_generation_prompt)

    def ask(self, text: str, **knobs) -> Reply:
        """Add a user message, generate the assistant's reply to the end, and return it.
        knobs: temperature / top_k / top_p / repetition_penalty / max_new_tokens for this turn."""
        for _ in self.stream(text, **knobs):
            pass
        return self.last_reply

    def stream(self, text: str, **knobs) -> Iterator[str]:
        """Like ``ask``, but yield the reply's text piece by piece as it is written; the Reply is
        ``last_reply`` afterwards. Stops at the end-of-turn token or after max_new_tokens."""
        check_messages([Message("user", text)])
        turn = self.conversation() + [Message("user", text)]
        prompt = self._fit(turn, knobs)  # raises before the turn is added if it cannot fit
        self.messages.append(Message("user", text))
        return self._reply(prompt, [], knobs)

    def branch(self, position: int, token_id: int, **knobs) -> Reply:
        """Write the last reply again, keeping its first ``position`` tokens, putting ``token_id``
        at ``position`` (e.g. another of that step's top alternatives) and sampling the rest."""
        last = self.last_reply
        if last is None:
            raise ValueError("there is no reply to branch from yet: ask something first")
        if not isinstance(position, int) or not 0 <= position < len(last.steps):
            raise ValueError(f"position must be 0..{len(last.steps) - 1} (a token of the last reply), got {position}")
        if not isinstance(token_id, int) or not 0 <= token_id < self.model.config.vocab_size:
            raise ValueError(f"token_id must be a token id in [0, {self.model.config.vocab_size}), got {token_id!r}")
        if self.messages and self.messages[-1].role == "assistant":
            self.messages.pop()  # the assistant's answer; the question stays
        forced = [s.token_id for s in last.steps[:position]] + [token_id]
        for _ in self._reply(last.prompt, forced, knobs, old_steps=last.steps[:position]):
            pass
        return self.last_reply

    def _fit(self, messages, knobs) -> RenderedChat:
        room = self.context_window - knobs.get("max_new_tokens", self.max_new_tokens)
        return fit_to_window(self.tokenizer, messages, room, self.template)

    # ------------------------------------------------------------------ generation

    @torch.inference_mode()
    def _forward_new(self, ids: list[int]):
        """Run the tokens of ``ids`` the cache does not hold yet; return the last logits [V]
        and how many tokens came from the cache."""
        model = self.model
        same = 0
        if self.keep_cache and self._cache is not None:
            for a, b in zip(self._cache_ids, ids):
                if a != b:
                    break
                same += 1
            same = min(same, len(ids) - 1)  # feed at least one token, to get the next logits
            self._cache.crop(same)
        else:
            self._cache = model.new_cache()
        x = torch.tensor([ids[same:]], device=model.device)
        logits = model(x, past_key_values=self._cache, use_cache=True, last_only=True).logits[0, -1]
        self._cache_ids = list(ids)
        return logits, same

    @torch.inference_mode()
    def _step(self, token_id: int):
        logits = self.model(torch.tensor([[token_id]], device=self.model.device),
                            past_key_values=self._cache, use_cache=True).logits[0, -1]
        self._cache_ids.append(token_id)
        return logits

    def _reply(self, prompt: RenderedChat, forced: list, knobs: dict, old_steps=()) -> Iterator[str]:
        knobs = {**self.knobs, **knobs}
        max_new = knobs.pop("max_new_tokens", self.max_new_tokens)
        knobs = Knobs(**knobs)
        was_training = self.model.training
        self.model.eval()
        tok, steps = self.tokenizer, list(old_steps)
        t0 = time.perf_counter()
        logits, reused = self._forward_new(prompt.ids + forced[:len(old_steps)])
        prefill_s = time.perf_counter() - t0
        history = list(prompt.ids) + forced[:len(old_steps)]
        text_so_far, emitted, stopped = "", 0, "max_new_tokens"
        try:
            for i in range(len(old_steps), max_new):
                choice = self._choose(logits.float(), history, knobs, forced[i] if i < len(forced) else None)
                steps.append(choice)
                history.append(choice.token_id)
                if choice.token_id in self.end_ids:
                    stopped = "end_of_turn"
                    break
                text_so_far = tok.decode([s.token_id for s in steps])
                if not text_so_far.endswith("\ufffd"):  # whole characters only
                    yield text_so_far[emitted:]
                    emitted = len(text_so_far)
                if i + 1 < max_new:
                    logits = self._step(choice.token_id)
        finally:
            if was_training:
                self.model.train()
        ids = [s.token_id for s in steps if s.token_id not in self.end_ids]
        text = tok.decode(ids)
        if len(text) > emitted:
            yield text[emitted:]
        if text.strip():  # an empty answer leaves no message (the template has no empty turns)
            self.messages.append(Message("assistant", text))
        self.last_reply = Reply(text, steps, stopped, prompt, prompt.dropped, reused, prefill_s,
                                time.perf_counter() - t0 - prefill_s)

    def _choose(self, logits: torch.Tensor, history: list, knobs: Knobs, forced: Optional[int]) -> TokenChoice:
        """logits [V] -> the knobs in mg.generate's order, then its draw (or the forced token);
        records the top of the distribution drawn from."""
        seen = None if knobs.repetition_penalty == 1 else seen_mask(history, (1, logits.numel()), logits.device)
        final = knobs.stages(logits[None], seen)[-1]  # [1, V] after penalty, temperature, top-k, top-p
        token = forced if forced is not None else int(knobs.draw(final, self.generator))
        probs = F.softmax(final[0], dim=-1)
        n = self.top_n
        return TokenChoice(token, self.tokenizer.token_str(token), float(probs[token]),
                           _top(probs, self.tokenizer, n), _top(F.softmax(logits, dim=-1), self.tokenizer, n))
