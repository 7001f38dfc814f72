"""Numbers for the loss-mask scene, from the two shipped DailyDialog models run through ``minigpt``:
one held-out conversation written in the chat template, which of its tokens are trained (label =
the token's id) and which are masked (label -100), and the loss of every trained token under the
base model (before fine-tuning) and the chat model (after).

The conversation is the one notebook 08 draws (``plot_trained_tokens``): a reply of a DailyDialog
validation dialogue after up to three turns of context, its system prompt made from the reply's
real labels, only the last reply trained (``train_on="last"``). The base model has no template
tokens; ``mg.sft.add_chat_tokens`` gives it them, each embedding row the mean of the others, as
fine-tuning starts from. Like the other numbers files, what is computed by hand (the labels, each
token's loss as -log p) is checked against the package and a RuntimeError raised if they differ;
everything returned is plain JSON-ready lists and dicts. The data come from ``$MINIGPT_DATA_DIR``
(or the user cache), as for ``mg.data.load_dialogues``; both models load in about a second, so
nothing is cached on disk.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F

import minigpt as mg
from minigpt import sft

BASE, CHAT = "dailydialog-base", "dailydialog-chat"
DIALOGUE, REPLY = 3, 2  # validation dialogue 3, its third reply: the conversation notebook 08 draws


@functools.lru_cache(maxsize=1)
def models():
    """(base model grown by the chat tokens, chat model, tokenizer), CPU, eval mode, loaded once."""
    base, base_tok = mg.pretrained.load(BASE, device="cpu")
    base, tok = sft.add_chat_tokens(base, base_tok)
    chat, chat_tok = mg.pretrained.load(CHAT, device="cpu")
    if chat_tok.special_tokens != tok.special_tokens or chat_tok.merges != tok.merges:
        raise RuntimeError(f"{CHAT}'s tokenizer is not {BASE}'s grown by the chat tokens")
    for m in (base, chat):
        m.eval().requires_grad_(False)  # numbers only: no autograd graph, without touching global state
    return base, chat, tok


def provenance() -> str:
    """A footnote: where the numbers come from."""
    return (f"numbers: minigpt's {BASE} (+ chat tokens) and {CHAT}, on DailyDialog validation dialogue "
            f"{DIALOGUE} (CC BY-NC-SA 4.0)")


def conversation(dialogue: int = DIALOGUE, reply: int = REPLY, context_turns: int = 3) -> list:
    """The held-out conversation as Messages: validation ``dialogue``'s ``reply``-th reply (0 = the
    second turn) after up to ``context_turns`` turns, its system prompt from the reply's labels.
    Raises RuntimeError if the dialogue also occurs in the training split (then it is not held out)."""
    dialogues = mg.data.load_dialogues("dailydialog", "validation")
    if not 0 <= dialogue < len(dialogues):
        raise ValueError(f"dialogue must be in 0..{len(dialogues) - 1}, got {dialogue}")
    if not sft.dedupe_against(dialogues[dialogue:dialogue + 1], mg.data.load_dialogues("dailydialog", "train")):
        raise RuntimeError(f"validation dialogue {dialogue} also occurs in the training split; pick another")
    convs = sft.dailydialog_conversations(dialogues[dialogue:dialogue + 1], context_turns=context_turns)
    if not 0 <= reply < len(convs):
        raise ValueError(f"dialogue {dialogue} has replies 0..{len(convs) - 1}, got {reply}")
    return convs[reply]


def _token_losses(model, example) -> list:
    """[N] the loss of predicting each token from the ones before it, NaN where the label is -100
    (and for the first token, which nothing predicts). By hand: -log softmax(logits)[target]."""
    ids = torch.tensor([example.ids])
    logp = F.log_softmax(model(ids[:, :-1]).logits[0].float(), dim=-1)        # [N-1, V]
    losses = -logp.gather(-1, ids[0, 1:, None])[:, 0]                          # [N-1]
    trained = torch.tensor(example.labels[1:]) != sft.IGNORE
    # the package's way: padded batch, cross-entropy with ignore_index, mean over trained tokens
    x, y = sft.pad_batch([example], pad_id=0)
    package = F.cross_entropy(model(x).logits[0].float(), y[0], ignore_index=sft.IGNORE, reduction="none")
    if not torch.allclose(losses[trained], package[trained], atol=1e-4):
        raise RuntimeError("per-token losses: the hand computation and F.cross_entropy disagree")
    mean = sft.assistant_loss(model, sft.ChatData([example], pad_id=0))
    if not math.isclose(float(losses[trained].mean()), mean, abs_tol=1e-4):
        raise RuntimeError("mean loss on trained tokens: the hand computation and sft.assistant_loss disagree")
    return [math.nan] + [float(v) if t else math.nan for v, t in zip(losses, trained)]


@torch.no_grad()
def loss_mask_numbers(dialogue: int = DIALOGUE, reply: int = REPLY) -> dict:
    """The conversation in the template, its loss mask, and each trained token's loss before/after.

    Returns {
      "messages": [{"role", "content"}],
      "tokens": [N] printable tokens, "ids": [N], "roles": [N] (template / system / user / assistant),
      "message": [N] index of the message each token belongs to,
      "labels": [N] the id where trained, -100 elsewhere, "trained": [N] bools,
      "n_tokens", "n_trained",
      "reply": {"tokens", "positions", "base", "chat"}: the trained tokens, their places in the
               conversation and their losses (nats) under each model,
      "mean": {"base", "chat"}: the mean loss over the trained tokens (= sft.assistant_loss),
      "end": {"base", "chat"} the loss of the final <|end|>, {"prob_base", "prob_chat"} its
             probability, {"top_base", "top_chat"}: [token, prob], each model's first choice there,
    }.
    """
    base, chat, tok = models()
    messages = conversation(dialogue, reply)
    example = sft.encode_chat(tok, messages, train_on="last")
    owner = [i for piece, _, i in sft.TEMPLATE.pieces(tok, messages) for _ in piece]
    # the labels by hand: learned are the tokens of the last message (the assistant's reply), its
    # <|end|> included, but not its opening <|assistant|>, which the template writes
    last = len(messages) - 1
    if messages[last].role != "assistant":
        raise RuntimeError("the conversation should end with the assistant's reply")
    opening = owner.index(last)
    labels = [t if i == last and k != opening else sft.IGNORE for k, (t, i) in enumerate(zip(example.ids, owner))]
    if labels != example.labels:
        raise RuntimeError("labels: the hand mask and sft.encode_chat disagree")
    trained = [label != sft.IGNORE for label in example.labels]
    positions = [k for k, t in enumerate(trained) if t]
    end = tok.special_tokens[sft.END]
    if example.ids[-1] != end or not trained[-1]:
        raise RuntimeError("the assistant's <|end|> should close the conversation and be trained")
    losses = {name: _token_losses(m, example) for name, m in (("base", base), ("chat", chat))}
    out = {"messages": [{"role": m.role, "content": m.content} for m in messages],
           "tokens": [tok.token_str(i) for i in example.ids], "ids": list(example.ids), "roles": list(example.roles),
           "message": owner, "labels": list(example.labels), "trained": trained,
           "n_tokens": len(example), "n_trained": example.n_trained,
           "reply": {"tokens": [tok.token_str(example.ids[k]) for k in positions], "positions": positions,
                     **{name: [v[k] for k in positions] for name, v in losses.items()}},
           "mean": {name: sum(v[k] for k in positions) / len(positions) for name, v in losses.items()},
           "end": {}}
    for name, m in (("base", base), ("chat", chat)):
        probs = torch.softmax(m(torch.tensor([example.ids[:-1]])).logits[0, -1].float(), dim=-1)
        p_end = float(probs[end])
        if not math.isclose(-math.log(p_end), losses[name][-1], rel_tol=1e-3, abs_tol=1e-4):
            raise RuntimeError("the <|end|> loss is not -log of its probability")
        top = int(probs.argmax())
        out["end"][name] = losses[name][-1]
        out["end"][f"prob_{name}"] = p_end
        out["end"][f"top_{name}"] = [tok.token_str(top), float(probs[top])]
    return out
