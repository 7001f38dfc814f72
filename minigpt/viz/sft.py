"""Which tokens a chat model learns from: a conversation drawn token by token, coloured by role,
the trained ones (the assistant's words and its end token) outlined, optionally with each
trained token's loss before and after fine-tuning.

    example = mg.sft.encode_chat(tok, messages)
    plot_trained_tokens(tok, example)                          # the mask
    plot_trained_tokens(tok, example, losses={"base": l0, "fine-tuned": l1})   # [N] nats per token
"""

from __future__ import annotations

import unicodedata
from typing import Optional

import matplotlib.pyplot as plt
from matplotlib.patches import FancyBboxPatch

from .plots import MONOSPACE, visible


def _cells(text: str) -> int:
    """Width of ``text`` in monospace cells: a Chinese (wide) character takes two."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


ROLE_COLOURS = {"template": "#d9d9d9", "system": "#f6e3b4", "user": "#c6dbef", "assistant": "#b8e0b0"}


def plot_trained_tokens(tokenizer, example, losses: Optional[dict] = None, chars_per_line: int = 70,
                        title: Optional[str] = None):
    """Draw ``example`` (a ``minigpt.sft.Example``) token by token.

    Colour = the role of the token (template, system, user, assistant); a thick outline = the
    token is a target (its label is not -100); losses: optional {name: [N] floats}, the loss of
    predicting each token (NaN or None where not trained), printed under the trained tokens.
    Returns the matplotlib Figure.
    """
    tokens = [visible(tokenizer.token_str(i)) for i in example.ids]
    trained = [label != -100 for label in example.labels]
    rows, row, used = [], [], 0
    for k, t in enumerate(tokens):
        w = max(_cells(t), 2) + 1
        if used + w > chars_per_line and row:
            rows.append(row)
            row, used = [], 0
        row.append((k, used, w))
        used += w
    rows.append(row)
    n_loss = len(losses) if losses else 0
    row_h = 1.0 + 0.45 * n_loss
    fig, ax = plt.subplots(figsize=(chars_per_line * 0.13, 0.5 + row_h * len(rows) * 0.45))
    for r, row in enumerate(rows):
        y = -r * row_h
        for k, x, w in row:
            box = FancyBboxPatch((x, y), w - 0.3, 0.8, boxstyle="round,pad=0.02,rounding_size=0.15",
                                 facecolor=ROLE_COLOURS.get(example.roles[k], "white"),
                                 edgecolor="#238b45" if trained[k] else "#bbbbbb", linewidth=2.2 if trained[k] else 0.6)
            ax.add_patch(box)
            ax.text(x + (w - 0.3) / 2, y + 0.4, tokens[k], ha="center", va="center", fontsize=8, family=MONOSPACE)
            if losses and trained[k]:
                for j, (name, values) in enumerate(losses.items()):
                    v = values[k]
                    if v is not None and v == v:
                        ax.text(x + (w - 0.3) / 2, y - 0.25 - 0.42 * j, f"{v:.1f}", ha="center", va="center",
                                fontsize=6.5, color=("#636363", "#238b45", "#2171b5")[j % 3])
    ax.set_xlim(-0.5, chars_per_line + 0.5)
    ax.set_ylim(-(len(rows) - 1) * row_h - 0.45 * n_loss - 0.3, 1.0)
    ax.axis("off")
    handles = [plt.Rectangle((0, 0), 1, 1, facecolor=c, edgecolor="#bbbbbb") for c in ROLE_COLOURS.values()]
    labels = list(ROLE_COLOURS)
    handles.append(plt.Rectangle((0, 0), 1, 1, facecolor="white", edgecolor="#238b45", linewidth=2.2))
    labels.append("trained (label = its id)")
    if losses:
        labels[-1] += "; under it: loss (nats) " + " / ".join(losses)
    ax.legend(handles, labels, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=len(labels), fontsize=8,
              frameon=False)
    if title:
        ax.set_title(title, pad=22)
    fig.tight_layout()
    return fig
