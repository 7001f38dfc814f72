"""Supervised fine-tuning (SFT): from a language model that continues text to a chat model that answers.

A base model has read plain text. Fine-tuning goes on training it, with a lower learning rate
and for fewer steps, on conversations written in a *chat template*: special tokens that the
tokenizer never builds from typed text mark who speaks and where a turn ends.

    <|system|>Reply with happiness. Ask a question.<|end|><|user|>I got the job!<|end|><|assistant|>
    That's wonderful! When do you start?<|end|>

The loss is taken only on what the assistant writes, its end-of-turn token included (so the model
learns to stop); the system prompt, the user's words and the template tokens are context, their
labels ``-100`` (ignored by ``F.cross_entropy``):

    model, tok = mg.sft.add_chat_tokens(*mg.pretrained.load("dailydialog-base"))
    example = mg.sft.encode_chat(tok, [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}])
    example.ids, example.labels        # [N] token ids; [N] the same id where trained, -100 elsewhere
    train = mg.sft.ChatData([...examples...], pad_id=tok.special_tokens["<|endoftext|>"], packing=True)
    mg.sft.finetune(model, tok, train, dev, mg.TrainConfig(max_iters=500, learning_rate=3e-4))

Batches come from ``ChatData.get_batch`` (``Trainer(get_batch=...)``): *padding* puts one
conversation per row and fills the rest with a pad token whose labels are -100; *packing* lays
conversations end to end in full rows, so no compute goes to padding.
"""

from __future__ import annotations

import dataclasses
import math
import random
from dataclasses import dataclass
from typing import Optional, Sequence

import torch
from torch.nn import functional as F

from .chat import Message, RenderedChat, check_messages

SPECIAL_TOKENS = ("<|system|>", "<|user|>", "<|assistant|>", "<|end|>")
ROLE_TOKENS = {"system": "<|system|>", "user": "<|user|>", "assistant": "<|assistant|>"}
END = "<|end|>"
PAD = "<|endoftext|>"  # the base tokenizer's own special token pads rows; it is never a target
IGNORE = -100  # the label F.cross_entropy(ignore_index=-100) skips


class AllMasked(ValueError):
    """A conversation with no token to learn from (no assistant turn, or cut before it): its loss
    would be 0 / 0 = NaN."""


# ------------------------------------------------------------------ the template

@dataclass(frozen=True)
class RoleTokens:
    """The course's chat template: ``<|role|>content<|end|>`` per message, no line breaks.

    default_system: the system prompt used when a conversation has none (None adds none).
    It has the interface of ``minigpt.chat.ChatML`` (``with_system``, ``render``, ``end``), so
    ``minigpt.chat.Chat`` and the chat widget talk to a model fine-tuned with it.
    """

    default_system: Optional[str] = None
    end: str = END

    def with_system(self, messages: list) -> list:
        if messages[0].role != "system" and self.default_system:
            return [Message("system", self.default_system), *messages]
        return messages

    def render(self, messages, add_generation_prompt: bool = True) -> str:
        """The conversation as the one text the model reads."""
        text = "".join(f"{ROLE_TOKENS[m.role]}{m.content}{END}" for m in self.with_system(check_messages(messages)))
        return text + (ROLE_TOKENS["assistant"] if add_generation_prompt else "")

    def pieces(self, tokenizer, messages, add_generation_prompt: bool = False) -> list:
        """The conversation as (ids, kind, message index) pieces, in order. kind is "template" for
        the role and end tokens, else the role of the message whose words they are; the end token
        of an assistant message is kind "assistant": writing it is part of the answer.
        Typed text is encoded with ``allowed_special="none"``: a user who types "<|end|>" gets ordinary characters."""
        specials = getattr(tokenizer, "special_tokens", {})
        missing = [t for t in SPECIAL_TOKENS if t not in specials]
        if missing:
            raise ValueError(f"the tokenizer lacks the chat tokens {missing}; add them with "
                             f"mg.sft.add_chat_tokens(model, tokenizer), which also grows the model's embeddings")
        out = []
        for i, m in enumerate(self.with_system(check_messages(messages))):
            out.append(([specials[ROLE_TOKENS[m.role]]], "template", i))
            out.append((tokenizer.encode(m.content, allowed_special="none"), m.role, i))
            out.append(([specials[END]], "assistant" if m.role == "assistant" else "template", i))
        if add_generation_prompt:
            out.append(([specials[ROLE_TOKENS["assistant"]]], "template", -1))
        return out

    def render_tokens(self, tokenizer, messages, add_generation_prompt: bool = True) -> RenderedChat:
        """The prompt token by token with ``minigpt.chat``'s display labels (template, system,
        history, question, assistant), as ``minigpt.chat.render_tokens`` gives for ChatML."""
        messages = self.with_system(check_messages(messages))
        last_user = max((i for i, m in enumerate(messages) if m.role == "user"), default=-1)
        ids, labels, owner = [], [], []
        end = [tokenizer.special_tokens[END]]
        for piece, kind, i in self.pieces(tokenizer, messages, add_generation_prompt):
            label = ("template" if kind == "template" or piece == end  # typed text never encodes to <|end|>
                     else "system" if kind == "system" else "question" if i == last_user else "history")
            ids += piece
            labels += [label] * len(piece)
            owner += [i] * len(piece)
        return RenderedChat(ids, labels, owner, messages)


TEMPLATE = RoleTokens()


# ------------------------------------------------------------------ from messages to ids and labels

@dataclass
class Example:
    """One conversation ready for training.

    ids:    [N] token ids of the rendered conversation.
    labels: [N] ids[i] where token i is one the model must learn to write (the assistant's words
            and its end token), IGNORE (-100) elsewhere. The model reads ids[:-1] and is scored
            on labels[1:]: the prediction at position t is of token t + 1.
    roles:  [N] what each token is ("template", "system", "user", "assistant"), for display.
    """

    ids: list
    labels: list
    roles: list

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def n_trained(self) -> int:
        return sum(label != IGNORE for label in self.labels)


def encode_chat(tokenizer, messages, train_on: str = "all", max_len: Optional[int] = None,
                template: RoleTokens = TEMPLATE) -> Example:
    """Render ``messages`` (dicts or Messages) with the template and mark the tokens to learn.

    train_on: "all" learns every assistant turn; "last" only the last one (the earlier ones are
              context, e.g. when the system prompt describes the last reply alone).
    max_len:  refuse a conversation longer than this many tokens (a model's block_size + 1).
    Raises AllMasked when no token would be learned (no assistant message): such a conversation
    gives a loss of 0 / 0 = NaN, so it is refused rather than trained on.
    """
    if train_on not in ("all", "last"):
        raise ValueError(f"train_on must be 'all' or 'last', got {train_on!r}")
    pieces = template.pieces(tokenizer, messages)
    last = max((i for _, kind, i in pieces if kind == "assistant"), default=None)
    ids, labels, roles = [], [], []
    for piece, kind, i in pieces:
        trained = kind == "assistant" and (train_on == "all" or i == last)
        ids += piece
        labels += piece if trained else [IGNORE] * len(piece)
        roles += [kind] * len(piece)
    example = Example(ids, labels, roles)
    if example.n_trained == 0:
        raise AllMasked("this conversation has no assistant message, so every label is -100 and its loss "
                        "would be 0 / 0 = NaN; give it an assistant reply to learn from, or leave it out")
    if max_len is not None and len(ids) > max_len:
        raise ValueError(f"the conversation takes {len(ids)} tokens, more than max_len={max_len} (the "
                         f"model's block_size + 1); shorten it or use fewer turns")
    return example


def label_mask(roles: Sequence[str]) -> list:
    """[N] True where a token is learned when every assistant turn is (``train_on="all"``): the
    assistant's words and its end token, from ``Example.roles``."""
    return [r == "assistant" for r in roles]


# ------------------------------------------------------------------ batches: padding or packing

def pad_batch(examples: Sequence[Example], pad_id: int, block_size: Optional[int] = None):
    """One conversation per row, right-padded to the longest: returns x [B, T] and y [B, T] long.

    x[b] = ids[:-1] then pad_id; y[b] = labels[1:] then IGNORE (padding is never a target, and
    right padding comes after every real token, so causal attention never lets a real token see it).
    T = the longest conversation - 1, at most block_size.
    """
    T = max(len(e) for e in examples) - 1
    if block_size is not None and T > block_size:
        raise ValueError(f"a conversation of {T + 1} tokens does not fit block_size={block_size}")
    x = torch.full((len(examples), T), pad_id, dtype=torch.long)
    y = torch.full((len(examples), T), IGNORE, dtype=torch.long)
    for b, e in enumerate(examples):
        n = len(e) - 1
        x[b, :n] = torch.tensor(e.ids[:-1])
        y[b, :n] = torch.tensor(e.labels[1:])
    return x, y


def pack_rows(examples: Sequence[Example], block_size: int, pad_id: int):
    """Whole conversations packed into rows of block_size + 1 tokens: x [R, block_size], y [R, block_size].

    First fit, longest first: each conversation goes into the first row with room for it, else
    opens a new row, so rows fill up and no conversation is split. Each conversation starts with a
    template token, whose label is IGNORE, so no prediction is scored across two conversations.
    Attention still sees the earlier conversations of the row: the price of packing this simply.
    """
    width = block_size + 1
    rows = []  # [ids, labels] per row
    for e in sorted(examples, key=len, reverse=True):
        if len(e) > width:
            raise ValueError(f"a conversation of {len(e)} tokens does not fit block_size={block_size}")
        row = next((r for r in rows if len(r[0]) + len(e) <= width), None)
        if row is None:
            rows.append([list(e.ids), list(e.labels)])
        else:
            row[0] += e.ids
            row[1] += e.labels
    x = torch.full((len(rows), block_size), pad_id, dtype=torch.long)
    y = torch.full((len(rows), block_size), IGNORE, dtype=torch.long)
    for r, (ids, labels) in enumerate(rows):
        n = len(ids) - 1
        x[r, :n] = torch.tensor(ids[:-1])
        y[r, :n] = torch.tensor(labels[1:])
    return x, y


class ChatData:
    """Conversations (Examples) to fine-tune on, and the batches the Trainer draws from them.

    examples: Examples from ``encode_chat``.
    pad_id:   the id rows are padded with (never a target).
    packing:  False: one conversation per row, padded to the longest of the batch; True: rows of
              block_size tokens filled with whole conversations end to end (``pack_rows``).
    Pass it as the Trainer's data with ``get_batch=ChatData.get_batch``.
    """

    def __init__(self, examples: Sequence[Example], pad_id: int, packing: bool = False):
        self.examples = list(examples)
        if not self.examples:
            raise ValueError("ChatData needs at least one conversation")
        for e in self.examples:
            if e.n_trained == 0:
                raise AllMasked("a conversation has no token to learn from (all labels -100): its loss is NaN")
        self.pad_id, self.packing = pad_id, packing

    def __len__(self) -> int:
        return len(self.examples)

    @property
    def n_tokens(self) -> int:
        return sum(len(e) for e in self.examples)

    @staticmethod
    def get_batch(data: "ChatData", batch_size: int, block_size: int, generator=None, device=None):
        """A batch for ``Trainer(get_batch=ChatData.get_batch)``: x [B, T], y [B, T] on ``device``.
        Padding: batch_size random conversations. Packing: random conversations for a quarter more
        than batch_size rows, packed (``pack_rows``), the batch_size fullest rows kept."""
        n, width = len(data.examples), block_size + 1
        if data.packing:  # random conversations for a quarter more than batch_size full rows, packed; the fullest rows
            chosen, tokens = [], 0
            while tokens < 1.25 * batch_size * width:
                e = data.examples[int(torch.randint(n, (1,), generator=generator))]
                chosen.append(e)
                tokens += len(e)
            x, y = pack_rows(chosen, block_size, data.pad_id)
            fullest = (x != data.pad_id).sum(1).argsort(descending=True, stable=True)[:batch_size]
            x, y = x[fullest], y[fullest]
        else:
            ix = torch.randint(n, (batch_size,), generator=generator).tolist()
            x, y = pad_batch([data.examples[i] for i in ix], data.pad_id, block_size)
        return (x, y) if device is None else (x.to(device), y.to(device))


# ------------------------------------------------------------------ the base model learns the template

def add_chat_tokens(model, tokenizer, tokens: Sequence[str] = SPECIAL_TOKENS):
    """A base model and its BPE tokenizer, grown by the chat template's special tokens.

    Returns (new model, new tokenizer): the tokenizer keeps every id and adds ``tokens`` after
    its own special tokens, matched only in the template (``allowed_special="none"``: typed
    text never becomes one); the model gets one embedding row per new token, initialised to
    the mean of the existing rows (so its first predictions are not wild), everything else copied.
    Tokens the tokenizer already has are kept as they are.
    """
    from .model import GPT
    from .tokenizer import BPETokenizer

    if not isinstance(tokenizer, BPETokenizer) or tokenizer.byte_ids != list(range(256)):
        got = "a model file's BPETokenizer" if isinstance(tokenizer, BPETokenizer) else type(tokenizer).__name__
        raise ValueError(f"add_chat_tokens grows a byte-level BPETokenizer trained by minigpt (BPETokenizer.train), "
                         f"got {got}; fine-tune a base model trained with --tokenizer bpe, such as dailydialog-base")
    new = [t for t in tokens if t not in tokenizer.special_tokens]
    tok = BPETokenizer(tokenizer.merges, [*tokenizer.special_tokens, *new], tokenizer.pattern, allowed_special="none")
    old_vocab = model.config.vocab_size
    if tok.vocab_size <= old_vocab:
        return model, tok
    config = dataclasses.replace(model.config, vocab_size=tok.vocab_size)
    state = model.state_dict()
    for key in ("transformer.wte.weight", "lm_head.weight"):
        w = state[key]
        if w.shape[0] == old_vocab:
            state[key] = torch.cat([w, w.mean(0, keepdim=True).expand(tok.vocab_size - old_vocab, -1)])
    grown = GPT(config).to(model.device)
    grown.load_state_dict(state)
    return grown.train(model.training), tok


# ------------------------------------------------------------------ data sets

EMOTION_PROMPTS = {"none": "Reply calmly.", **{e: f"Reply with {e}." for e in
                                                ("anger", "disgust", "fear", "happiness", "sadness", "surprise")}}
ACT_PROMPTS = {"inform": "Give information.", "question": "Ask a question.",
               "directive": "Ask them to do something.", "commissive": "Accept, refuse or promise."}


def system_prompt(emotion: str, act: str) -> str:
    """The system prompt that describes a reply with DailyDialog's labels, e.g.
    system_prompt("happiness", "question") -> "Reply with happiness. Ask a question." """
    return f"{EMOTION_PROMPTS[emotion]} {ACT_PROMPTS[act]}"


def dailydialog_conversations(dialogues, context_turns: int = 3, system_every: int = 1,
                              seed: int = 0) -> list:
    """DailyDialog dialogues -> conversations that each end with an assistant reply.

    Every turn after the first becomes a reply once: the assistant speaks it, after up to
    ``context_turns`` earlier turns (user and assistant alternating, starting with the user).
    The system prompt says the reply's real labels ("Reply with happiness. Ask a question."),
    so it describes the *last* turn only: train these with ``train_on="last"``.
    system_every: keep the system prompt in all but every system_every-th conversation (picked at
    random with ``seed``) when > 1, so the model also learns to reply without one; 1 keeps it always.
    Returns a list of lists of Messages.
    """
    rng = random.Random(seed)
    out = []
    for turns in dialogues:
        for j in range(1, len(turns)):
            start = max(0, j - context_turns)
            start += (j - start + 1) % 2  # the first message is the user's, so j - start is odd
            msgs = [Message("assistant" if (j - k) % 2 == 0 else "user", str(turns[k])) for k in range(start, j + 1)]
            if system_every == 1 or rng.randrange(system_every) != 0:
                msgs.insert(0, Message("system", system_prompt(turns[j].emotion, turns[j].act)))
            out.append(msgs)
    return out


def instruction_conversations(records) -> list:
    """Alpaca-style records ({instruction, input, output}) -> single-turn conversations:
    the instruction (and its input, on a new line) as the user's message, the output as the reply."""
    out = []
    for r in records:
        question = r["instruction"] + (f"\n\n{r['input']}" if r.get("input") else "")
        out.append([Message("user", question), Message("assistant", r["output"])])
    return out


def chinese_conversations(dialogues, context_turns: int = 3) -> list:
    """KdConv dialogues (lists of turns) -> conversations ending in an assistant reply, as for DailyDialog
    but without a system prompt (KdConv has no labels of that kind)."""
    out = []
    for turns in dialogues:
        for j in range(1, len(turns)):
            start = max(0, j - context_turns)
            start += (j - start + 1) % 2
            out.append([Message("assistant" if (j - k) % 2 == 0 else "user", turns[k]) for k in range(start, j + 1)])
    return out


def encode_all(tokenizer, conversations, max_len: int, train_on: str = "all") -> list:
    """encode_chat for many conversations, dropping from the front (keeping the system prompt)
    the oldest turns of one too long for ``max_len`` tokens, and leaving out one whose last
    exchange alone is too long. Returns the Examples."""
    examples = []
    for msgs in conversations:
        msgs = list(msgs)
        while True:
            try:
                examples.append(encode_chat(tokenizer, msgs, train_on=train_on, max_len=max_len))
                break
            except AllMasked:
                break
            except ValueError:
                first = 1 if msgs[0].role == "system" else 0
                if len(msgs) - first <= 2:
                    break
                del msgs[first:first + 2]
    return examples


def dedupe_against(dialogues, seen) -> list:
    """Dialogues whose text is not among ``seen`` (DailyDialog repeats some across splits)."""
    seen = {tuple(map(str, d)) for d in seen}
    return [d for d in dialogues if tuple(map(str, d)) not in seen]


# ------------------------------------------------------------------ fine-tuning and its measures

@torch.no_grad()
def assistant_loss(model, data: ChatData, batch_size: int = 32) -> float:
    """Mean cross-entropy per assistant token (words and end tokens) over every conversation of
    ``data``, in nats: the dev loss of a chat model. Exact (all tokens counted once), not sampled."""
    from .runtime import eval_mode

    total, count = 0.0, 0
    with eval_mode(model):
        for i in range(0, len(data.examples), batch_size):
            x, y = pad_batch(data.examples[i:i + batch_size], data.pad_id)
            x, y = x.to(model.device), y.to(model.device)
            logits = model(x).logits
            total += F.cross_entropy(logits.flatten(0, 1).float(), y.flatten(), ignore_index=IGNORE,
                                     reduction="sum").item()
            count += int((y != IGNORE).sum())
    return total / count


def finetune(model, tokenizer, train: ChatData, dev: Optional[ChatData] = None, config=None, callbacks=()):
    """Fine-tune ``model`` (a base GPT with the chat tokens, see ``add_chat_tokens``) on ``train``
    with the package's Trainer; ``dev`` is evaluated with the same batches (its loss is on
    assistant tokens only, as the labels say). config: a TrainConfig (default: learning rate
    3e-4, 500 steps, warm-up 20). Returns the Trainer (``trainer.history``, ``trainer.raw_model``)."""
    from .train import Trainer, TrainConfig

    config = config or TrainConfig(max_iters=500, learning_rate=3e-4, min_lr=3e-5, warmup_iters=20,
                                   batch_size=16, eval_interval=100, eval_iters=20)
    trainer = Trainer(model, train, dev, config, callbacks=callbacks, tokenizer=tokenizer,
                      get_batch=ChatData.get_batch)
    trainer.fit()
    return trainer


def padding_share(data: ChatData, batch_size: int, block_size: int, batches: int = 20, seed: int = 0) -> float:
    """The share of the token positions in ``batches`` batches that are padding (the pad token
    never occurs inside a conversation): the compute spent on nothing."""
    g = torch.Generator().manual_seed(seed)
    pad = total = 0
    for _ in range(batches):
        x, _ = ChatData.get_batch(data, batch_size, block_size, generator=g)
        pad += int((x == data.pad_id).sum())
        total += x.numel()
    return pad / total


# ------------------------------------------------------------------ the data sets by name

CHAT_DATA = ("dailydialog", "instruction-data", "kdconv")


def load_chat_data(name: str, tokenizer, block_size: int, packing: bool = False, dev_dialogues: int = 200,
                   seed: int = 0, max_dialogues: Optional[int] = None):
    """A named data set as (train ChatData, dev ChatData) for a model with ``block_size``.

    "dailydialog":      training dialogues, every reply once after up to 3 turns of context, the
                        system prompt from the reply's labels in 4 of 5 conversations (the model also
                        learns to answer without one), loss on the last reply; dev: the first
                        ``dev_dialogues`` validation dialogues that are not also in the training split.
    "instruction-data": the 1,100 Alpaca-style records as single-turn conversations; the last 10% are dev.
    "kdconv":           Chinese dialogues (the dev split trains, the test split's first
                        ``dev_dialogues`` are dev); a Chinese base model is needed to make sense of them.
    Conversations too long for block_size + 1 tokens lose their oldest turns or are left out.
    max_dialogues: use only the first this many training dialogues (records), e.g. for a quick run.
    """
    from . import data

    if name == "dailydialog":
        train_d = data.load_dialogues("dailydialog", "train")
        dev_d = dedupe_against(data.load_dialogues("dailydialog", "validation"), train_d)[:dev_dialogues]
        train_c = dailydialog_conversations(train_d[:max_dialogues], system_every=5, seed=seed)
        dev_c = dailydialog_conversations(dev_d)
        train_on = "last"
    elif name == "instruction-data":
        convs = instruction_conversations(data.load_json("instruction-data"))
        n = len(convs) - len(convs) // 10
        train_c, dev_c, train_on = convs[:n][:max_dialogues], convs[n:], "all"
    elif name == "kdconv":
        train_c = chinese_conversations(data.load_dialogues("kdconv", "dev")[:max_dialogues])
        dev_c = chinese_conversations(data.load_dialogues("kdconv", "test")[:dev_dialogues])
        train_on = "last"
    else:
        raise ValueError(f"unknown chat data set {name!r}; known ones are {', '.join(CHAT_DATA)}")
    pad = tokenizer.special_tokens[PAD]
    train = ChatData(encode_all(tokenizer, train_c, block_size + 1, train_on), pad, packing)
    dev = ChatData(encode_all(tokenizer, dev_c, block_size + 1, train_on), pad, packing=False)
    return train, dev


def finetune_command(base, data: str = "dailydialog", export=None, packing: bool = True, max_iters: int = 600,
                     batch_size: int = 16, learning_rate: float = 5e-4, min_lr: float = 5e-5,
                     warmup_iters: int = 30, eval_interval: int = 100, eval_iters: int = 20,
                     out_dir=None, device: str = "auto", seed: int = 1337, progress: bool = True,
                     resume: bool = False):
    """What ``python -m minigpt finetune`` does: load the base model (a shipped name or a
    checkpoint path), add the chat tokens, fine-tune on ``data`` and export the chat model with
    its history and its assistant-token dev loss before and after. Returns the Trainer."""
    from pathlib import Path

    from . import pretrained
    from .checkpoint import export_weights, load_model
    from .runtime import is_fast
    from .train import TrainConfig

    if base in pretrained.available():
        model, tok = pretrained.load(base)
    elif Path(base).exists():
        model, tok = load_model(base)
    else:
        raise ValueError(f"--base {base!r} is neither a shipped model ({', '.join(pretrained.available())}) "
                         f"nor a checkpoint file")
    if tok is None:
        raise ValueError(f"{base} holds no tokenizer; fine-tuning needs the one the base model was trained with")
    model, tok = add_chat_tokens(model, tok)
    block = model.config.block_size
    train, dev = load_chat_data(data, tok, block, packing=packing, seed=seed)
    if is_fast():  # a smoke test
        train.examples, dev.examples = train.examples[:2000], dev.examples[:100]
        max_iters, eval_interval, eval_iters = min(max_iters, 20), 10, 2
        warmup_iters = min(warmup_iters, 5)
    print(f"fine-tuning {model.num_params():,} parameters on {len(train):,} conversations "
          f"({train.n_tokens:,} tokens, {'packed' if packing else 'padded'}); dev: {len(dev):,} conversations")
    dev_before = assistant_loss(model, dev)
    print(f"assistant-token dev loss before fine-tuning: {dev_before:.4f}")
    config = TrainConfig(max_iters=max_iters, batch_size=batch_size, learning_rate=learning_rate, min_lr=min_lr,
                         warmup_iters=warmup_iters, eval_interval=eval_interval, eval_iters=eval_iters,
                         out_dir=out_dir, device=device, seed=seed, progress=progress)
    from .train import Trainer
    trainer = Trainer(model, train, dev, config, tokenizer=tok, get_batch=ChatData.get_batch)
    trainer.fit(resume=resume)
    dev_after = assistant_loss(trainer.raw_model, dev)
    print(f"assistant-token dev loss after fine-tuning: {dev_after:.4f}")
    if export is not None and trainer.is_main_process:
        export_weights(export, trainer.raw_model, tokenizer=tok,
                       extra={"history": trainer.history, "train_config": config.to_dict(), "chat_data": data,
                              "dev_loss_before": dev_before, "dev_loss_after": dev_after})
        print(f"wrote {export}")
    return trainer
