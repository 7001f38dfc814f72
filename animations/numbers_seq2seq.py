"""Numbers for the sequence-to-sequence scenes, from the shipped question-answering models run
through ``minigpt``: the Transformer encoder–decoder ("qa-en") and, beside it, the GRU with
Luong attention ("gru-en"), both trained on DailyDialog. Their tokens are byte-level BPE word
pieces (" going", " you", "?"); the same functions serve a model whose tokens are characters
(the Chinese bots), and ``token_unit`` says which kind a model reads, for the captions.

    cross_attention_numbers()   the question through the encoder, the reply decoded greedily,
                                each reply token's cross-attention row over the question
    teacher_forcing_numbers()   the true reply fed (teacher forcing) against the model's own
                                words fed back (free running): per-step probability of the right token
    scheduled_sampling_numbers()  one decoder input mixed by a teacher-forcing ratio, as training does
    exposure_bias()             the same comparison averaged over held-out questions

The question is a real one from DailyDialog's test split, which no model saw while training.
Like the other numbers files, each function checks what it computes against a second way of
computing it through the package (the step-by-step cached decoder against one parallel pass)
and raises RuntimeError if they differ; each returns plain JSON-ready dicts and lists, in
milliseconds (the exposure-bias average: about a second).

Environment variables (a weights file or a Trainer checkpoint, e.g. of a training still running):
    MINIGPT_ANIMATION_SEQ2SEQ_WEIGHTS       render with another encoder–decoder (default: the shipped "qa-en")
    MINIGPT_ANIMATION_SEQ2SEQ_GRU_WEIGHTS   and another GRU baseline (default: the shipped "gru-en")
"""

from __future__ import annotations

import functools
import itertools
import math
import os
from pathlib import Path

import torch

import minigpt as mg
from minigpt.dialogue_pairs import make_pairs
from minigpt.seq2seq import encode_question, greedy_reply, load_seq2seq

MODEL_NAME = "qa-en"     # the Transformer encoder–decoder
GRU_NAME = "gru-en"      # the GRU + Luong-attention baseline
HELD_OUT = ("dailydialog", "test")
# From the test split (its true reply is looked up there). Chosen for the shipped qa-en: a sensible
# greedy reply ("I'm not sure."), a cross-attention head that looks hard at one word piece, and a true
# reply ("No, he doesn’t.") short enough to show whole, token by token.
QUESTION = "Does he have a temperature, doctor?"


# ------------------------------------------------------------------ the models


OVERRIDES = {MODEL_NAME: "MINIGPT_ANIMATION_SEQ2SEQ_WEIGHTS", GRU_NAME: "MINIGPT_ANIMATION_SEQ2SEQ_GRU_WEIGHTS"}


def _override(name: str = MODEL_NAME) -> Path | None:
    """The file the environment asks to use instead of the shipped ``name`` (None: the shipped one)."""
    variable = OVERRIDES.get(name)
    value = os.environ.get(variable) if variable else None
    if not value:
        return None
    p = Path(value).expanduser()
    if not p.is_file():
        raise FileNotFoundError(f"{variable} points to {p}, which is not a file; "
                                f"unset it to use the shipped {name!r} model")
    return p


def _load_file(path: Path):
    """(model, tokenizer) from a sequence-to-sequence weights file or Trainer checkpoint."""
    model, tok = load_seq2seq(path)
    if tok is None:
        raise ValueError(f"{path} holds no tokenizer; the scenes need one to show the question's tokens")
    return model, tok


@functools.lru_cache(maxsize=4)
def model_and_tokenizer(name: str = MODEL_NAME):
    """(model in eval mode on the CPU, its tokenizer) for a shipped seq2seq model (or the file its
    environment variable names, see OVERRIDES), loaded once."""
    torch.set_num_threads(1)  # tiny models: a second thread only spins on a busy machine
    override = _override(name)
    model, tok = _load_file(override) if override else mg.pretrained.load(name)
    model.requires_grad_(False)  # numbers only: no autograd graph, without touching global state
    return model, tok


def provenance(*names: str) -> str:
    """A footnote: where the numbers come from (the models ``names``, default the Transformer)."""
    parts = []
    for name in names or (MODEL_NAME,):
        override = _override(name)
        model, _ = model_and_tokenizer(name)
        what = f"{override.parent.name}/{override.name} ({name})" if override else f"the shipped {name!r}"
        parts.append(f"{what}, {model.num_params() / 1e6:.2f}M parameters")
    return f"numbers: {'; '.join(parts)}; DailyDialog test questions"


def token_unit(name: str = MODEL_NAME) -> str:
    """What one token of model ``name`` is, for the captions: "character" when its tokenizer cuts
    text into characters, else "token" (byte-level BPE: words and word pieces)."""
    return "character" if isinstance(model_and_tokenizer(name)[1], mg.CharTokenizer) else "token"


def readable(tok, text: str) -> bool:
    """True when ``tok`` can encode ``text`` (a character tokenizer lacks characters it never saw;
    byte-level BPE reads anything)."""
    try:
        tok.encode(text, allowed_special="none")
    except ValueError:  # TokenizerError: a character it has no id for
        return False
    return True


# ------------------------------------------------------------------ the held-out question


@functools.lru_cache(maxsize=1)
def held_out_pairs() -> tuple:
    """((question, true reply), ...): every one-turn pair of DailyDialog's test split."""
    return tuple((context[-1], reply) for context, reply in make_pairs(mg.data.load_dialogues(*HELD_OUT)))


def true_reply(question: str = QUESTION) -> str:
    """The reply that follows ``question`` in the test split (ValueError if it is not there)."""
    for q, r in held_out_pairs():
        if q == question:
            return r
    raise ValueError(f"{question!r} is not a turn of DailyDialog's test split that has a reply; "
                     f"pick one from numbers_seq2seq.held_out_pairs()")


def _reply_ids(tok, model, reply: str, max_steps: int) -> list[int]:
    """The true reply as the decoder learns it: its tokens (characters or word pieces, whatever the
    tokenizer cuts) then <eos>, at most max_steps ids."""
    return (tok.encode(reply, allowed_special="none") + [model.config.eos_id])[:max_steps]


def _show(tok, model, i: int) -> str:
    """A token's text for the screen; <eos> by name."""
    return "<eos>" if i == model.config.eos_id else tok.token_str(i)


def _close(a, b, what: str, atol: float = 1e-5):
    if not torch.allclose(torch.as_tensor(a), torch.as_tensor(b), atol=atol, rtol=1e-4):
        raise RuntimeError(f"{what}: the two computations through minigpt disagree")


def _rows(t, digits: int = 6):
    return [[round(float(v), digits) for v in row] for row in t]


# ------------------------------------------------------------------ cross-attention


@torch.no_grad()
def cross_attention_numbers(question: str = QUESTION, max_new_tokens: int = 32, head: int | None = None,
                            encoder_query: int | None = None) -> dict:
    """The question through the encoder, the reply decoded greedily, and where every reply token
    looked in the question (the last decoder layer's cross-attention).

    head:          which head's map to show (None: the head that looks most sharply, i.e. with
                   the lowest mean entropy over the reply's rows).
    encoder_query: the question position whose encoder self-attention row is shown (None: the
                   middle one).
    Returns {"question", "true_reply", "src_tokens": [str] (S), "reply_tokens": [str] (T, ending
    with "<eos>" when the model stopped), "reply_text", "reply_text_after": [str] (T) the reply's
    text after each step (what a caption shows of a cut reply), "probs": [T] the model's probability of
    each token it wrote, "n_layer", "n_head", "layer", "head",
    "cross": [T][S] weights (rows sum to 1), "cross_all_heads": [H][T][S],
    "encoder": {"layer", "head", "query", "row": [S], "after": share of the row on later tokens}}.
    """
    model, tok = model_and_tokenizer(MODEL_NAME)
    c = model.config
    src_ids = encode_question(model, tok, question)
    reply = greedy_reply(model, src_ids, max_new_tokens)      # with the decoder's KV cache
    src = torch.tensor([src_ids])
    tgt = torch.tensor([[c.sos_id] + reply[:-1]])              # what the decoder read at each step
    out = model(src, tgt, return_attention=True)
    probs = torch.softmax(out.logits[0], dim=-1)               # [T, V]
    if probs.argmax(-1).tolist() != reply:
        raise RuntimeError("the parallel pass does not pick the tokens the cached greedy decoder wrote")
    layer = len(out.cross_attentions) - 1
    cross = out.cross_attentions[layer][0]                     # [H, T, S]
    _close(cross.sum(-1), torch.ones(cross.shape[:2]), "cross-attention rows summing to 1")

    # the same rows once more, one step at a time through the cache, as the reply was written
    state = model.start(src)
    for t in range(tgt.size(1)):
        _, _, _, step_maps = model.decode(tgt[:, t:t + 1], state, return_attention=True)
        _close(step_maps[layer][0, :, 0], cross[:, t], f"cross-attention at reply step {t}")

    if head is None:
        entropy = -(cross.clamp_min(1e-12).log() * cross).sum(-1).mean(-1)   # [H]
        head = int(entropy.argmin())
    if not 0 <= head < cross.size(0):
        raise ValueError(f"head must be in 0..{cross.size(0) - 1}, got {head}")

    enc = out.encoder_attentions[-1][0]                        # [H, S, S]
    S = len(src_ids)
    q = S // 2 if encoder_query is None else encoder_query % S
    enc_row = enc[head if head < enc.size(0) else 0, q]
    return {
        "question": question, "true_reply": true_reply(question),
        "src_tokens": [tok.token_str(i) for i in src_ids],
        "reply_tokens": [_show(tok, model, i) for i in reply],
        "reply_text": tok.decode([i for i in reply if i != c.eos_id]),
        "reply_text_after": [tok.decode([i for i in reply[:t + 1] if i != c.eos_id]) for t in range(len(reply))],
        "probs": [round(float(probs[t, i]), 6) for t, i in enumerate(reply)],
        "n_layer": len(out.cross_attentions), "n_head": cross.size(0), "layer": layer, "head": head,
        "cross": _rows(cross[head]), "cross_all_heads": [_rows(m) for m in cross],
        "encoder": {"layer": len(out.encoder_attentions) - 1, "head": head if head < enc.size(0) else 0,
                    "query": q, "row": [round(float(v), 6) for v in enc_row],
                    "after": round(float(enc_row[q + 1:].sum()), 6)},
    }


# ------------------------------------------------------------------ teacher forcing and free running


def _probs_given(model, src, prefix: list[int]) -> torch.Tensor:
    """[len(prefix), V]: the next-token distribution after each decoder input prefix[:t+1]."""
    return torch.softmax(model(src, torch.tensor([prefix])).logits[0], dim=-1)


@torch.no_grad()
def teacher_forcing_numbers(question: str = QUESTION, max_steps: int = 24, name: str = MODEL_NAME) -> dict:
    """The true reply's tokens, and the model's probability of each one at its step:

    "forced":  fed the true reply so far (teacher forcing, how it trained and how the dev loss is measured);
    "free":    fed its own greedy words so far (free running, how it answers); None once it has stopped.

    Returns {"question", "true_reply", "gold": [str] (the true reply's tokens and <eos>, at most
    max_steps), "forced": [p], "forced_pick": [str] the model's top token fed the true prefix,
    "own": [str] its greedy reply (same steps), "own_probs": [p of its own token], "free": [p or None],
    "first_mistake": the first step where its own reply leaves the true one (None: never),
    "mean_forced", "mean_free" (over the steps both have)}.
    """
    model, tok = model_and_tokenizer(name)
    c = model.config
    src_ids = encode_question(model, tok, question)
    src = torch.tensor([src_ids])
    gold = _reply_ids(tok, model, true_reply(question), max_steps)
    forced = _probs_given(model, src, [c.sos_id] + gold[:-1])                  # [T, V]
    own = greedy_reply(model, src_ids, len(gold))
    free = _probs_given(model, src, [c.sos_id] + own[:-1])                     # [len(own), V]
    if free.argmax(-1).tolist() != own:
        raise RuntimeError("the parallel pass does not pick the tokens the cached greedy decoder wrote")
    # own[t] is fed at step t + 1 only while the model has not written <eos>
    writing = len(own) if c.eos_id not in own else own.index(c.eos_id) + 1
    free_p = [round(float(free[t, g]), 6) if t < writing else None for t, g in enumerate(gold)]
    forced_p = [round(float(forced[t, g]), 6) for t, g in enumerate(gold)]
    mistakes = [t for t, (g, o) in enumerate(zip(gold, own)) if g != o]
    first = mistakes[0] if mistakes else (None if len(own) >= len(gold) else len(own))
    both = [t for t, p in enumerate(free_p) if p is not None]
    return {
        "question": question, "true_reply": true_reply(question),
        "gold": [_show(tok, model, i) for i in gold], "forced": forced_p,
        "forced_pick": [_show(tok, model, int(i)) for i in forced.argmax(-1)],
        "own": [_show(tok, model, i) for i in own],
        "own_probs": [round(float(free[t, i]), 6) for t, i in enumerate(own)],
        "free": free_p, "first_mistake": first,
        "mean_forced": sum(forced_p[t] for t in both) / len(both),
        "mean_free": sum(free_p[t] for t in both) / len(both),
    }


def _continue(model, src, prefix: list[int], max_new_tokens: int) -> list[int]:
    """Greedy tokens after the decoder input ``prefix`` (<sos> first), until <eos> or max_new_tokens,
    with the decoder's cache; checked against one parallel pass."""
    eos = model.config.eos_id
    state, tokens, out = model.start(src), torch.tensor([prefix]), []
    for _ in range(max_new_tokens):
        logits, state = model.step(tokens, state)
        out.append(int(logits[0].argmax()))
        if out[-1] == eos:
            break
        tokens = torch.tensor([out[-1:]])
    if out and _probs_given(model, src, prefix + out[:-1])[len(prefix) - 1:].argmax(-1).tolist() != out:
        raise RuntimeError("the parallel pass does not pick the tokens the cached decoder wrote")
    return out


@torch.no_grad()
def one_mistake_numbers(question: str = QUESTION, max_steps: int = 24, at: int | None = None,
                        name: str = MODEL_NAME) -> dict:
    """One wrong token in an otherwise true decoder input, and what it does to everything after it.

    at: the step whose input token is made wrong (None: the first step after the first that the
        model, fed the truth, gets right; the wrong token is its most likely other choice there).
    Returns {"question", "true_reply", "at", "right", "wrong" (str), "wrong_id", "wrong_prob": the
    model's probability of the wrong token at that step, "prefix": [str] the true tokens before it,
    "clean_continuation" / "wrong_continuation": [str] its greedy reply after the right / the
    wrong token (their ids: "clean_continuation_ids" / "wrong_continuation_ids"),
    "clean_next" / "wrong_next": [p] of each later true token, fed the true reply
    with the right / the wrong token at ``at`` (teacher forcing everywhere else),
    "mean_clean", "mean_wrong"}.
    """
    model, tok = model_and_tokenizer(name)
    c = model.config
    src_ids = encode_question(model, tok, question)
    src = torch.tensor([src_ids])
    gold = _reply_ids(tok, model, true_reply(question), max_steps)
    T = len(gold)
    if T < 3:
        raise ValueError("the true reply is too short to show what follows a mistake; pick a longer one")
    forced = _probs_given(model, src, [c.sos_id] + gold[:-1])
    if at is None:
        right = [t for t in range(1, T - 2) if int(forced[t].argmax()) == gold[t]]
        at = right[0] if right else 1
    if not 0 <= at < T - 1:
        raise ValueError(f"at must be a step in 0..{T - 2} (a mistake needs steps after it), got {at}")
    ranked = forced[at].argsort(descending=True).tolist()
    wrong = next(i for i in ranked if i not in (gold[at], c.eos_id, c.pad_id, c.sos_id))
    corrupted = _probs_given(model, src, [c.sos_id] + gold[:at] + [wrong] + gold[at + 1:-1])
    later = range(at + 1, T)
    clean_next = [round(float(forced[t, gold[t]]), 6) for t in later]
    wrong_next = [round(float(corrupted[t, gold[t]]), 6) for t in later]
    room = T - at - 1
    show = lambda ids: [_show(tok, model, i) for i in ids]  # noqa: E731
    clean_ids = _continue(model, src, [c.sos_id] + gold[:at + 1], room)
    wrong_ids = _continue(model, src, [c.sos_id] + gold[:at] + [wrong], room)
    return {
        "question": question, "true_reply": true_reply(question), "at": at,
        "right": _show(tok, model, gold[at]), "wrong": _show(tok, model, wrong), "wrong_id": wrong,
        "wrong_prob": round(float(forced[at, wrong]), 6), "prefix": show(gold[:at]),
        "clean_continuation": show(clean_ids), "wrong_continuation": show(wrong_ids),
        "clean_continuation_ids": clean_ids, "wrong_continuation_ids": wrong_ids,
        "clean_next": clean_next, "wrong_next": wrong_next,
        "mean_clean": sum(clean_next) / len(clean_next), "mean_wrong": sum(wrong_next) / len(wrong_next),
    }


@torch.no_grad()
def scheduled_sampling_numbers(question: str = QUESTION, ratio: float = 0.5, seed: int = 0, max_steps: int = 24,
                               name: str = MODEL_NAME) -> dict:
    """One decoder input as scheduled sampling builds it while training (minigpt.seq2seq): a
    teacher-forced pass predicts every next token, then each input after <sos> is the model's own
    prediction with probability 1 - ratio (a coin per position, torch.rand under ``seed``),
    else the true token.

    Returns {"question", "true_reply", "ratio", "gold_input": [str] (<sos> and the true reply), "predicted": [str] the
    model's prediction of each input from the one before, "own": [bool] per input (True: the
    model's own token was fed), "mixed": [str] the decoder input trained on, "n_own"}.
    """
    if not 0 <= ratio <= 1:
        raise ValueError(f"ratio must be in [0, 1], got {ratio}")
    model, tok = model_and_tokenizer(name)
    c = model.config
    src_ids = encode_question(model, tok, question)
    gold = _reply_ids(tok, model, true_reply(question), max_steps)
    tgt = torch.tensor([[c.sos_id] + gold[:-1]])
    predicted = model(torch.tensor([src_ids]), tgt).logits[0].argmax(-1)        # [T]: the input after each
    generator = torch.Generator().manual_seed(seed)
    own = torch.rand(tgt.shape[1], generator=generator) >= ratio
    own[0] = False                                                              # <sos> stays
    mixed = tgt[0].clone()
    mixed[1:] = torch.where(own[1:], predicted[:-1], tgt[0, 1:])
    show = lambda ids: ["<sos>" if i == c.sos_id else _show(tok, model, i) for i in ids]  # noqa: E731
    return {"question": question, "true_reply": true_reply(question), "ratio": ratio, "gold_input": show(tgt[0].tolist()),
            "predicted": show([c.sos_id] + predicted[:-1].tolist()),
            "own": own.tolist(), "mixed": show(mixed.tolist()), "n_own": int(own.sum())}


def inverse_sigmoid_schedule(steps: int, k: float) -> list[float]:
    """Scheduled sampling's teacher-forcing ratio at each training step i: k / (k + exp(i / k))
    (Bengio et al., 2015): near 1 at first, falling towards 0."""
    if k < 1:
        raise ValueError(f"k must be at least 1 (the ratio starts at k / (k + 1)), got {k}")
    return [k / (k + math.exp(i / k)) for i in range(steps)]


@torch.no_grad()
def exposure_bias(name: str = MODEL_NAME, n_pairs: int = 64, max_steps: int = 20, min_reply: int = 12) -> dict:
    """Teacher forcing against free running over held-out questions: at each reply step, the mean
    probability of the true token when the model was fed the true reply so far, and when it was
    fed its own greedy reply so far (both over the questions where it was still writing).

    Uses the first ``n_pairs`` test pairs that the tokenizer can read and whose reply has at least
    ``min_reply`` tokens, all in one batch (questions padded and masked; the first is checked
    against ``greedy_reply``).
    Returns {"name", "n_pairs", "steps": [1..max_steps], "forced": [mean p], "free": [mean p],
    "still_writing": [share of questions], "first_mistake_median": step of the first wrong token,
    "mean_forced", "mean_free" (over every step of every question)}.
    """
    model, tok = model_and_tokenizer(name)
    c = model.config
    pairs = list(itertools.islice(((q, r) for q, r in held_out_pairs() if readable(tok, q + r)
                                   and len(tok.encode(r, allowed_special="none")) >= min_reply), n_pairs))
    if not pairs:
        raise ValueError(f"no test pair has a reply of {min_reply} tokens or more that the tokenizer can read")
    srcs = [encode_question(model, tok, q) for q, _ in pairs]
    golds = [_reply_ids(tok, model, r, max_steps) for _, r in pairs]
    B, S, T = len(pairs), max(map(len, srcs)), max(map(len, golds))
    src = torch.full((B, S), c.pad_id)
    gold = torch.full((B, T), c.pad_id)
    for b, (s, g) in enumerate(zip(srcs, golds)):
        src[b, :len(s)], gold[b, :len(g)] = torch.tensor(s), torch.tensor(g)
    src_mask = torch.arange(S)[None] < torch.tensor([len(s) for s in srcs])[:, None]
    sos = torch.full((B, 1), c.sos_id)

    # free running: every question's greedy reply, one step for the whole batch at a time
    state = model.start(src, src_mask)
    own, tokens = [], sos
    for _ in range(T):
        logits, state = model.step(tokens, state)
        tokens = logits.argmax(-1, keepdim=True)
        own.append(tokens)
    own = torch.cat(own, 1)                                                    # [B, T]
    alone = greedy_reply(model, srcs[0], T)
    if own[0, :len(alone)].tolist() != alone:
        raise RuntimeError("the batched greedy replies differ from greedy_reply")

    def p_gold(decoder_input):  # [B, T]: probability of the true token at each step
        probs = torch.softmax(model(src, decoder_input, src_mask=src_mask).logits, dim=-1)
        return probs.gather(-1, gold[..., None].clamp_min(0))[..., 0]

    forced_p = p_gold(torch.cat([sos, gold[:, :-1]], 1))
    free_p = p_gold(torch.cat([sos, own[:, :-1]], 1))
    # step t counts while the question's true reply has a token there and its own reply has not ended
    ended = (own == c.eos_id).long().cumsum(1) - (own == c.eos_id).long() > 0   # <eos> already written
    counts = (torch.arange(T)[None] < torch.tensor([len(g) for g in golds])[:, None]) & ~ended
    wrong = (own != gold) & (torch.arange(T)[None] < torch.tensor([len(g) for g in golds])[:, None])
    first = sorted(int(w.nonzero()[0]) if w.any() else len(g) for w, g in zip(wrong, golds))
    n = counts.sum(0).clamp_min(1)
    mean_at = lambda p: [float(v) if k else None for v, k in zip((p * counts).sum(0) / n, counts.sum(0))]  # noqa: E731
    return {"name": name, "n_pairs": B, "steps": list(range(1, T + 1)),
            "forced": mean_at(forced_p), "free": mean_at(free_p),
            "still_writing": (counts.sum(0) / B).tolist(), "first_mistake_median": first[B // 2] + 1,
            "mean_forced": float((forced_p * counts).sum() / counts.sum()),
            "mean_free": float((free_p * counts).sum() / counts.sum())}
