"""Static pictures of every step of the course, drawn with matplotlib.

Every function returns a ``matplotlib.figure.Figure`` (or draws into the ``ax=`` / ``axes=``
you pass) and never calls ``plt.show()``: the figures suit exported notebooks and handouts
(``fig.savefig("attention.png")``), and the widgets in ``widgets.py`` draw with these same
functions. Figures are closed to pyplot as they are made, so a notebook shows each one once:
put the call last in a cell, or ``display(fig)``.

Token strings on the axes are ``tokenizer.token_str(id)`` with spaces shown as ``␣``, so that a
token made of a space (or starting with one, as in byte-level BPE) stays visible.
"""

from __future__ import annotations

import html
import logging
import math
import os
import textwrap
from contextlib import contextmanager

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.collections import LineCollection
from matplotlib.patches import FancyBboxPatch, Rectangle

from ..checks import is_int
from ..runtime import eval_mode
from ..sampling import PIPELINE, STAGES

# Light colours for token boxes, cycled by position so that neighbouring tokens always differ.
TOKEN_COLOURS = ("#ffd6a5", "#caffbf", "#9bf6ff", "#ffc6ff", "#fdffb6", "#bdb2ff", "#ffadad", "#a0c4ff")
HIGHLIGHT = "#d62728"  # the one thing a picture points at (query row, picked token, sampled token)
MUTED = "#7f7f7f"
ERROR = "#b00020"

# Fonts with Chinese (and Japanese) characters, the first one installed is used. matplotlib's
# default fonts have none, and would draw each character as an empty box.
CJK_FONTS = ("WenQuanYi Zen Hei", "Noto Sans CJK SC", "Noto Sans CJK JP", "Noto Sans SC", "Source Han Sans SC",
             "Source Han Sans CN", "Microsoft YaHei", "SimHei", "PingFang SC", "Hiragino Sans GB", "Heiti SC",
             "Arial Unicode MS", "Droid Sans Fallback", "AR PL UMing CN")
WQY_ZENHEI = "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc"  # where Debian and Ubuntu (Colab) put it


def cjk_font():
    """The name of an installed font with CJK characters (see ``CJK_FONTS``), or None."""
    from matplotlib import font_manager
    installed = {f.name for f in font_manager.fontManager.ttflist}
    if not any(name in installed for name in CJK_FONTS) and os.path.exists(WQY_ZENHEI):
        # installed after matplotlib cached its font list (Colab's first cell): add it by path
        font_manager.fontManager.addfont(WQY_ZENHEI)
        installed.add(font_manager.FontProperties(fname=WQY_ZENHEI).get_name())
    return next((name for name in CJK_FONTS if name in installed), None)


def _use_cjk_fallback():
    """Add the CJK font after matplotlib's default family: a character missing from the default
    font is then drawn from it (matplotlib's per-glyph font fallback). Without one installed,
    plots still work, with boxes for the characters no font has (Debian/Ubuntu:
    ``apt-get install fonts-wqy-zenhei``)."""
    font = cjk_font()
    if font is None:
        return ["monospace"]
    # Such fonts often come in one weight (WenQuanYi Zen Hei: 500, "medium"); matplotlib would log
    # a warning for every size it looks it up in, although it draws the text as it should.
    logging.getLogger("matplotlib.font_manager").addFilter(
        lambda record: not (record.getMessage().startswith("findfont: Failed to find font weight")
                            and font in record.getMessage()))
    families = list(matplotlib.rcParams["font.family"])
    if font not in families:
        matplotlib.rcParams["font.family"] = families + [font]
    return ["monospace", font]


MONOSPACE = _use_cjk_fallback()  # the family list token labels are drawn with


def _figure(nrows=1, ncols=1, **kw):
    """plt.subplots, then closed to pyplot: the caller gets the figure, Jupyter's inline backend
    does not show it a second time at the end of the cell, and loops do not pile up figures."""
    fig, axes = plt.subplots(nrows, ncols, layout="constrained", **kw)
    plt.close(fig)
    return fig, axes


def visible(token: str) -> str:
    """How a token string is written on a picture: spaces become ``␣`` so they can be seen."""
    return token.replace(" ", "␣")


def count(n: int, noun: str) -> str:
    """``n`` and the noun, in the plural unless n is 1: "1 token", "262 tokens"."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _numpy(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().float().cpu().numpy()
    return np.asarray(x, dtype=float)


@contextmanager
def _eval_mode(model):
    """Run the model without dropout and without gradients, then restore its mode."""
    with torch.no_grad(), eval_mode(model):
        yield


def _token_strings(tokenizer, ids) -> list[str]:
    return [tokenizer.token_str(int(i)) for i in ids]


def token_id(tokenizer, token) -> int:
    """The id of one token given as an int id, as its text (``"e"``, ``" the"``) or as its
    printable form (``"\\n"`` for a newline). Raises ValueError if it is not exactly one token."""
    if is_int(token):
        if not 0 <= int(token) < tokenizer.vocab_size:
            raise ValueError(f"token id {token} is out of range for a vocabulary of {tokenizer.vocab_size}")
        return int(token)
    if not isinstance(token, str) or not token:
        raise ValueError(f"give a token as a non-empty string or an int id, got {token!r}")
    try:
        ids = tokenizer.encode(token)
    except ValueError:  # e.g. a character the tokenizer has never seen
        ids = []
    if len(ids) == 1:
        return int(ids[0])
    for i in range(tokenizer.vocab_size):  # the printable form, e.g. "\\n" typed by a learner
        if tokenizer.token_str(i) == token:
            return i
    raise ValueError(f"{token!r} is {len(ids)} tokens {ids}, not one; pick a single token "
                     f"(see tokenizer.token_str(id) for the vocabulary)")


# --------------------------------------------------------------------------- tokens


def _token_boxes(tokenizer, text, max_tokens):
    """(token strings, ids, ends-a-line flags) for the first ``max_tokens`` tokens of ``text``."""
    if not isinstance(text, str):
        raise ValueError(f"text must be a string, got {type(text).__name__}")
    ids = [int(i) for i in tokenizer.encode(text)]
    shown = ids[:max_tokens]
    newline = ["\n" in tokenizer.decode([i]) for i in shown]
    return _token_strings(tokenizer, shown), ids, newline


def tokens_html(tokenizer, text: str, max_tokens: int = 2000) -> str:
    """HTML of ``text`` cut into tokens: one coloured box per token with its id underneath,
    a line break after tokens that hold a newline, and the token count. For widgets and
    ``IPython.display.HTML``."""
    strs, ids, newline = _token_boxes(tokenizer, text, max_tokens)
    boxes = []
    for k, (s, i, nl) in enumerate(zip(strs, ids, newline)):
        colour = TOKEN_COLOURS[k % len(TOKEN_COLOURS)]
        boxes.append(
            f'<span title="position {k}, id {i}" style="display:inline-block;background:{colour};'
            f'border-radius:3px;margin:1px;padding:0 2px;text-align:center;vertical-align:top">'
            f'<span style="white-space:pre;font-family:monospace">{html.escape(visible(s))}</span><br>'
            f'<span style="font-size:70%;color:#555">{i}</span></span>' + ("<br>" if nl else ""))
    more = f" (first {max_tokens} shown)" if len(ids) > max_tokens else ""
    return (f'<div style="line-height:1.3"><div style="color:#555;margin-bottom:4px">'
            f'{count(len(ids), "token")}, {count(len(text), "character")}{more}</div>{"".join(boxes)}</div>')


def _token_layout(tokenizer, text, width, max_tokens):
    """Place tokens like text, in rows ``width`` characters wide.

    Returns (boxes: list of (x, row, box width, label, id), rows, summary line).
    """
    strs, ids, newline = _token_boxes(tokenizer, text, max_tokens)
    boxes, x, row = [], 0.0, 0
    for s, i, nl in zip(strs, ids, newline):
        label = visible(s)
        w = max(len(label), len(str(i))) + 0.6
        if x > 0 and x + w > width:
            x, row = 0.0, row + 1
        boxes.append((x, row, w, label, i))
        x += w + 0.3
        if nl:
            x, row = 0.0, row + 1
    rows = max(1, row + (0 if x == 0 and boxes else 1))
    more = f", first {max_tokens} shown" if len(ids) > max_tokens else ""
    return boxes, rows, f"{count(len(ids), 'token')}{more}"


def _draw_tokens(ax, layout, width, title, colour="black"):
    boxes, rows = layout[:2]
    for k, (x, row, w, label, i) in enumerate(boxes):
        y = -2.4 * row
        ax.add_patch(FancyBboxPatch((x, y - 2.0), w, 2.0, boxstyle="round,pad=0,rounding_size=0.2",
                                    facecolor=TOKEN_COLOURS[k % len(TOKEN_COLOURS)], edgecolor="#999999", lw=0.5))
        ax.text(x + w / 2, y - 0.65, label, ha="center", va="center", family=MONOSPACE, fontsize=11)
        ax.text(x + w / 2, y - 1.55, str(i), ha="center", va="center", family=MONOSPACE, fontsize=7,
                color="#555555")
    ax.set_xlim(-0.2, width + 0.2)
    ax.set_ylim(-2.4 * rows, 0.2)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title(title, loc="left", fontsize=10, color=colour)


def plot_tokens(tokenizer, text: str, width: int = 64, max_tokens: int = 300, errors: str = "raise", ax=None):
    """``text`` cut into tokens: coloured boxes with the token above and its id below.

    tokenizer: one tokenizer, or a dict {name: tokenizer} to compare them, one panel each.
    width:     characters per row. ax: optional Axes (one tokenizer only).
    errors:    "raise": a tokenizer that cannot encode the text raises its ValueError;
               "show": its panel says why instead (to compare tokenizers on any text).
    Returns the Figure.
    """
    named = tokenizer if isinstance(tokenizer, dict) else {type(tokenizer).__name__: tokenizer}
    if not named:
        raise ValueError("give at least one tokenizer")
    if errors not in ("raise", "show"):
        raise ValueError(f"errors must be 'raise' or 'show', got {errors!r}")
    layouts, failed = {}, set()
    for name, tok in named.items():
        try:
            layouts[name] = _token_layout(tok, text, width, max_tokens)
        except ValueError as e:  # e.g. a character tokenizer meeting a character it never saw
            if errors == "raise":
                raise
            message = textwrap.fill(str(e), int(width * 1.3))
            layouts[name] = ([], math.ceil((message.count("\n") + 1) / 2), "cannot encode this text", message)
            failed.add(name)
    if ax is not None:
        if len(named) != 1:
            raise ValueError("ax= draws one tokenizer; pass a single tokenizer, or no ax to compare several")
        axes = [ax]
    else:
        rows = [lay[1] for lay in layouts.values()]
        fig, grid = _figure(len(named), 1, squeeze=False, height_ratios=[r + 0.6 for r in rows],
                            figsize=(width * 0.125 + 0.5, sum(0.3 * (r + 0.6) for r in rows) + 0.3))
        axes = grid[:, 0]
    for a, (name, lay) in zip(axes, layouts.items()):
        _draw_tokens(a, lay, width, f"{name}: {lay[2]}", ERROR if name in failed else "black")
        if name in failed:
            a.text(0, -0.2, lay[3], va="top", ha="left", fontsize=9, color=ERROR)
    return axes[0].figure


# --------------------------------------------------------------------------- next token

_STAGES = {s.name: (s.name, s.title) for s in PIPELINE}  # accepted name -> (NextTokenDistribution field, panel title)
_STAGES.update({k.removeprefix("after_"): v for k, v in list(_STAGES.items()) if k.startswith("after_")})
ALL_STAGES = STAGES[:-1]  # every filter in order; "final" repeats the last one


def _stage_title(dist, field, title, settings):
    setting = {s.name: s.knob for s in PIPELINE}.get(field)
    known = {**getattr(dist, "settings", {}), **(settings or {})}  # given settings win over recorded ones
    if setting is None or setting not in known:
        return title
    value = known[setting]
    return f"{title}\n({setting.replace('_', ' ')} = {'off' if value is None else value})"


def plot_next_token_distribution(dist, n: int = 15, stages=("raw", "final"), highlight=None, settings=None,
                                 title=None, axes=None):
    """Bars of the most likely next tokens at each stage of the sampling pipeline.

    dist:      a NextTokenDistribution from ``mg.sampling.next_token_distribution``
               (fields raw, after_penalty, after_temperature, after_top_k, after_top_p, final:
               each [V] probabilities).
    n:         how many candidates: the n tokens most likely at any of the stages shown.
    stages:    stage names (``"raw"``, ``"after_top_k"`` or ``"top_k"``, ..., ``"final"``),
               or ``"all"`` for every filter in order. One panel per stage, same tokens in each,
               so you can follow a token through the filters; × marks one a filter removed.
    highlight: optional token id to colour (e.g. the token greedy decoding takes).
    settings:  optional {"temperature": .., "top_k": .., "top_p": .., "repetition_penalty": ..}
               to write under the panel titles (default: the knobs ``dist`` was made with).
               title: optional title over all panels.
    axes:      optional sequence of one Axes per stage. Returns the Figure.
    """
    if stages == "all":
        stages = ALL_STAGES
    if isinstance(stages, str):
        stages = (stages,)
    unknown = [s for s in stages if s not in _STAGES]
    if unknown or not stages:
        raise ValueError(f"unknown stage(s) {unknown}; choose from {sorted(_STAGES)} or 'all'")
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    fields = [_STAGES[s][0] for s in stages]
    probs = [_numpy(getattr(dist, f)) for f in fields]
    # Candidates: the n tokens most likely at any stage shown. Each is in the top n of the stage
    # where it peaks, so the stages' own top-n lists hold them all (with their strings).
    names = {int(i): s for f in fields for s, i, _ in dist.top(n, f)}
    peak = {i: max(float(p[i]) for p in probs) for i in names}
    ids = sorted(names, key=lambda i: -peak[i])[:n]
    ids = np.array(sorted(ids, key=lambda i: (-float(probs[0][i]), -peak[i])))  # in the first stage's order

    if axes is None:
        fig, axes = _figure(1, len(fields), squeeze=False, sharey=True, sharex=True,
                            figsize=(min(9.5, 2.0 * len(fields) + 1.2), 0.24 * len(ids) + 1.5))
        axes = axes[0]
    if len(axes) != len(fields):
        raise ValueError(f"got {len(axes)} axes for {len(fields)} stages")
    y = np.arange(len(ids))
    # One probability scale for every panel, so that a filter that flattens or sharpens the
    # distribution shows as shorter or longer bars; never past 1, the largest probability there is.
    right = min(1.0, max(float(p[ids].max()) for p in probs) * 1.25 + 1e-9)
    for a, f, p, s in zip(axes, fields, probs, stages):
        colours = [HIGHLIGHT if i == highlight else "#1f77b4" for i in ids]
        a.barh(y, p[ids], color=colours)
        for yy, (i, v) in enumerate(zip(ids, p[ids])):
            label = f"{v:.0%}" if v >= 0.095 else f"{v:.1%}"
            if v > 0.75 * right:  # no room right of the bar: write inside it
                a.text(v - 0.02 * right, yy, label, va="center", ha="right", fontsize=7, color="white")
            elif v > 0:
                a.text(v + 0.02 * right, yy, label, va="center", fontsize=7)
            elif probs[0][i] > 0:
                a.text(0, yy, "×", va="center", ha="left", color=MUTED, fontsize=9)
        a.set_xlim(0, right)
        a.set_title(_stage_title(dist, f, _STAGES[s][1], settings), fontsize=9)
        a.set_xlabel("probability", fontsize=8)
        a.tick_params(labelsize=8)
    axes[0].set_yticks(y, [visible(names[i]) for i in ids], family=MONOSPACE)
    axes[0].set_ylim(len(ids) - 0.5, -0.5)  # most likely at the top
    if title:
        axes[0].figure.suptitle(title, fontsize=10)
    return axes[0].figure


# --------------------------------------------------------------------------- attention


def attention_maps(model, tokenizer, text: str):
    """Run ``text`` through the model and collect its attention weights.

    Returns (tokens: list[str] of T token strings, attentions: tuple with one [H, T, T] float
    tensor per layer, on the CPU; row i holds how much position i attends to each position j).
    """
    if not isinstance(text, str) or not text:
        raise ValueError("give a non-empty text to look at")
    ids = tokenizer.encode(text)
    if len(ids) == 0:
        raise ValueError(f"{text!r} encodes to no tokens")
    if len(ids) > model.config.block_size:
        raise ValueError(f"the text is {len(ids)} tokens but the model sees at most "
                         f"{model.config.block_size}; shorten it")
    idx = torch.tensor([ids], dtype=torch.long, device=model.device)
    with _eval_mode(model):
        out = model(idx, return_attention=True)
    return _token_strings(tokenizer, ids), tuple(a[0].float().cpu() for a in out.attentions)


def _attention_matrix(attn):
    """[T, Tk], or the mean over heads of [H, T, Tk] / [1, H, T, Tk]; returns (array, heads or None)."""
    a = _numpy(attn)
    if a.ndim == 4 and a.shape[0] == 1:
        a = a[0]
    if a.ndim == 3:
        return a.mean(axis=0), a.shape[0]
    if a.ndim != 2:
        raise ValueError(f"attention must be [T, T] or [H, T, T], got shape {tuple(a.shape)}")
    return a, None


def _tick_size(T):
    return max(4.0, min(10.0, 220.0 / max(T, 1)))


# Widest figure, in inches: at 96 dpi it is 900 pixels, the width of a notebook's output area,
# so pictures show at their own size (neither squeezed, with unreadable labels, nor blown up).
WIDTH = 9.4


def _heads_grid(H, T):
    """(columns, rows, side in inches) to draw H heads of T tokens: up to 4 a row, fewer when
    the maps would be too small to read their token labels."""
    cols = min(H, 4)
    while cols > 2 and T * cols > 80:
        cols = math.ceil(cols / 2)
    return cols, math.ceil(H / cols), min(4.2, 1.6 + 0.2 * T, WIDTH / cols)


def plot_attention(attn, tokens, query=None, title=None, annotate=None, vmax=None, colorbar=True,
                   cmap="viridis", ax=None):
    """Heatmap of attention weights: rows are queries (the token looking), columns keys (the
    token looked at), both labelled with the token strings.

    attn:     [T, T] weights, or [H, T, T] (drawn as the mean over heads). Tensor or array.
    tokens:   T token strings (e.g. from ``attention_maps``).
    query:    optional row to outline (the token whose attention you follow).
    annotate: write the weights in the cells (default: when T <= 12).
    Future positions that the causal mask hides are drawn blank. Returns the Figure.
    """
    a, heads = _attention_matrix(attn)
    T, Tk = a.shape
    tokens = [visible(t) for t in tokens]
    if len(tokens) != Tk:
        raise ValueError(f"attention covers {Tk} positions but {len(tokens)} tokens were given")
    if query is not None and not 0 <= query < T:
        raise ValueError(f"query {query} is out of range for {T} positions")
    if ax is None:
        side = min(WIDTH - 1.0, 2.5 + 0.3 * Tk)
        fig, ax = _figure(figsize=(side + (1.0 if colorbar else 0), side))
    P = Tk - T  # cached positions before the queries, if any
    hidden = (np.arange(Tk)[None, :] > np.arange(T)[:, None] + P) & (a == 0)
    cm = matplotlib.colormaps[cmap].with_extremes(bad="#eeeeee")
    im = ax.imshow(np.ma.masked_where(hidden, a), cmap=cm, vmin=0, vmax=vmax or max(float(a.max()), 1e-9))
    fs = _tick_size(Tk)
    ax.set_xticks(range(Tk), tokens, rotation=90, fontsize=fs, family=MONOSPACE)
    ax.set_yticks(range(T), tokens[P:], fontsize=fs, family=MONOSPACE)
    ax.set_xlabel("key (looked at)", fontsize=9)
    ax.set_ylabel("query (looking)", fontsize=9)
    if annotate is None:
        annotate = Tk <= 12
    if annotate:
        for i in range(T):
            for j in range(Tk):
                if not hidden[i, j]:
                    ax.text(j, i, f"{a[i, j]:.2f}", ha="center", va="center", fontsize=7,
                            color="white" if a[i, j] < 0.6 * a.max() else "black")
    if query is not None:
        ax.add_patch(Rectangle((-0.5, query - 0.5), Tk, 1, fill=False, edgecolor=HIGHLIGHT, lw=2))
    ax.set_title(title if title is not None else ("attention" + (f" (mean of {heads} heads)" if heads else "")),
                 fontsize=10)
    if colorbar:
        ax.figure.colorbar(im, ax=ax, shrink=0.8, label="weight")
    return ax.figure


def _layer_heads(attentions, layer):
    if not 0 <= layer < len(attentions):
        raise ValueError(f"layer {layer} is out of range: the model has {len(attentions)} layers "
                         f"(0..{len(attentions) - 1})")
    a = _numpy(attentions[layer])
    if a.ndim == 4 and a.shape[0] == 1:
        a = a[0]
    if a.ndim != 3:
        raise ValueError(f"each layer's attention must be [H, T, T] (or [1, H, T, T]), got {tuple(a.shape)}")
    return a


def plot_attention_heads(attentions, tokens, layer: int = 0, query=None, axes=None):
    """Every head of one layer, side by side (up to 4 per row).

    attentions: tuple with one [H, T, T] (or [1, H, T, T]) tensor per layer.
    tokens:     T token strings. query: optional row to outline in every head.
    axes:       optional sequence of at least H Axes. Returns the Figure.
    """
    a = _layer_heads(attentions, layer)
    H, T = a.shape[0], a.shape[-1]
    cols, rows, side = _heads_grid(H, T)
    if axes is None:
        fig, grid = _figure(rows, cols, squeeze=False, figsize=(side * cols, side * rows + 0.4))
        axes = list(grid.flat)
        for extra in axes[H:]:
            extra.axis("off")
        fig.suptitle(f"layer {layer}: {H} heads", fontsize=11)
    if len(axes) < H:
        raise ValueError(f"got {len(axes)} axes for {H} heads")
    vmax = float(a.max())
    for h in range(H):
        plot_attention(a[h], tokens, query=query, title=f"layer {layer}, head {h}", vmax=vmax,
                       colorbar=False, annotate=False, ax=axes[h])
        if h % cols:  # keep the query labels on the first column only
            axes[h].set_ylabel("")
    return axes[0].figure


def plot_query_attention(weights, tokens, query: int, title=None, ax=None):
    """Bar chart of where one query token looks: its row of attention weights.

    weights: [Tk] weights of the query (a row of an attention map). tokens: Tk token strings.
    query:   the query's position (its own bar is highlighted). Returns the Figure.
    """
    w = _numpy(weights)
    if w.ndim != 1 or len(w) != len(tokens):
        raise ValueError(f"weights must be one row of {len(tokens)} weights, got shape {tuple(w.shape)}")
    if not 0 <= query < len(tokens):
        raise ValueError(f"query {query} is out of range for {len(tokens)} tokens")
    if ax is None:
        fig, ax = _figure(figsize=(min(WIDTH, 2.0 + 0.28 * len(w)), 3.0))
    ax.bar(range(len(w)), w, color=[HIGHLIGHT if j == query else "#1f77b4" for j in range(len(w))])
    ax.set_xticks(range(len(w)), [visible(t) for t in tokens], rotation=90, fontsize=_tick_size(len(w)),
                  family=MONOSPACE)
    ax.set_ylim(0, min(1.0, max(float(w.max()) * 1.15, 1e-9)))  # a weight is at most 1
    ax.set_ylabel("weight", fontsize=9)
    ax.set_title(title or f"where '{visible(tokens[query])}' (position {query}) looks", fontsize=10)
    return ax.figure


def plot_attention_layer(attentions, tokens, layer: int = 0, head="all", query=None):
    """One layer's attention with one query followed: the heatmap of one head (or every head),
    the query's row outlined, and below/beside it the bars of where that query looks.

    attentions: tuple with one [H, T, T] tensor per layer; tokens: T token strings.
    head:       a head index, or ``"all"`` for every head of the layer (the bars then show
                the mean over heads). query: a position (default: the last token).
    This is the picture ``AttentionExplorer`` shows. Returns the Figure.
    """
    a = _layer_heads(attentions, layer)
    H, T = a.shape[0], a.shape[-1]
    query = T - 1 if query is None else query
    if not 0 <= query < T:
        raise ValueError(f"query {query} is out of range for {T} tokens")
    if head == "all":
        cols, rows, side = _heads_grid(H, T)
        fig = plt.figure(layout="constrained", figsize=(max(side * cols, 7.0), side * rows + 3.0))
        plt.close(fig)
        grid = fig.add_gridspec(rows + 1, cols, height_ratios=[side] * rows + [2.6])
        axes = [fig.add_subplot(grid[h // cols, h % cols]) for h in range(H)]
        plot_attention_heads(attentions, tokens, layer, query=query, axes=axes)
        plot_query_attention(a[:, query].mean(axis=0), tokens, query, ax=fig.add_subplot(grid[rows, :]),
                             title=f"where '{visible(tokens[query])}' (position {query}) looks, "
                                   f"mean over the {H} heads of layer {layer}")
        return fig
    if not isinstance(head, (int, np.integer)) or not 0 <= head < H:
        raise ValueError(f"head must be 'all' or an index in 0..{H - 1}, got {head!r}")
    fig, (hm, bars) = _figure(1, 2, figsize=(WIDTH, min(5.0, 2.5 + 0.2 * T)), width_ratios=[1.15, 1])
    plot_attention(a[head], tokens, query=query, title=f"layer {layer}, head {head}", ax=hm)
    plot_query_attention(a[head, query], tokens, query, ax=bars)
    return fig


HEAD_COLOURS = tuple(matplotlib.colormaps["tab10"].colors)  # one colour per head, as bertviz draws them


def _head_lines(ax, a, tokens, heads, title):
    """Draw heads ``heads`` of one layer's [H, T, T] weights ``a`` as lines from each token
    (left column, the query) to the tokens it attends to (right column, the keys)."""
    T = a.shape[-1]
    labels = [visible(t) for t in tokens]
    fs = max(5.0, min(10.0, 260.0 / max(T, 1)))
    for h in heads:
        i, j = np.nonzero(a[h] >= 0.01)  # fainter lines would not show; leaving them out keeps it quick
        w = np.clip(a[h][i, j], 0.0, 1.0)
        colours = np.tile(matplotlib.colors.to_rgba(HEAD_COLOURS[h % len(HEAD_COLOURS)]), (len(w), 1))
        colours[:, 3] = 0.9 * w
        segments = np.stack([np.stack([np.zeros_like(w), i], 1), np.stack([np.ones_like(w), j], 1)], 1)
        ax.add_collection(LineCollection(segments, colors=colours, linewidths=1.0 + 1.5 * w))
    for i, label in enumerate(labels):
        ax.text(-0.04, i, label, ha="right", va="center", fontsize=fs, family=MONOSPACE)
        ax.text(1.04, i, label, ha="left", va="center", fontsize=fs, family=MONOSPACE)
    ax.set_xlim(-0.5, 1.5)
    ax.set_ylim(T - 0.5, -0.5)
    ax.axis("off")
    ax.set_title(title, fontsize=9)


def plot_head_view(attentions, tokens, layer: int = 0, heads=None, ax=None):
    """bertviz's head view as a still picture: each token on the left joined to the tokens it
    attends to on the right, one colour per head, the stronger the weight the darker the line.

    attentions: tuple with one [H, T, T] (or [1, H, T, T]) tensor per layer; tokens: T strings.
    heads:      head indices to draw (default: all of them). Returns the Figure.
    """
    a = _layer_heads(attentions, layer)
    H, T = a.shape[0], a.shape[-1]
    if len(tokens) != T:
        raise ValueError(f"attention covers {T} positions but {len(tokens)} tokens were given")
    heads = list(range(H)) if heads is None else [int(h) for h in heads]
    if not heads or any(not 0 <= h < H for h in heads):
        raise ValueError(f"heads must be indices in 0..{H - 1}, got {heads!r}")
    if ax is None:
        fig, ax = _figure(figsize=(4.5, min(12.0, 0.8 + 0.24 * T)))
    names = ", ".join(str(h) for h in heads)
    _head_lines(ax, a, tokens, heads, f"layer {layer}, head{'s' if len(heads) > 1 else ''} {names}")
    for h in heads:
        ax.plot([], [], color=HEAD_COLOURS[h % len(HEAD_COLOURS)], lw=3, label=f"head {h}")
    if len(heads) > 1:
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=min(len(heads), 4), frameon=False)
    return ax.figure


def plot_model_view(attentions, tokens, layers=None, heads=None):
    """bertviz's model view as a still picture: one small head view per layer (rows) and head
    (columns). layers / heads: indices to keep (default all). Returns the Figure."""
    layers = list(range(len(attentions))) if layers is None else [int(l) for l in layers]
    first = _layer_heads(attentions, layers[0]) if layers else None
    if first is None:
        raise ValueError("give at least one layer")
    H, T = first.shape[0], first.shape[-1]
    heads = list(range(H)) if heads is None else [int(h) for h in heads]
    if not heads or any(not 0 <= h < H for h in heads):
        raise ValueError(f"heads must be indices in 0..{H - 1}, got {heads!r}")
    side = min(WIDTH / len(heads), 2.4)
    fig, grid = _figure(len(layers), len(heads), squeeze=False,
                        figsize=(side * len(heads), min(3.0, 0.5 + 0.12 * T) * len(layers)))
    for r, layer in enumerate(layers):
        a = _layer_heads(attentions, layer)
        for c, h in enumerate(heads):
            _head_lines(grid[r, c], a, tokens, [h], f"layer {layer}, head {h}")
    return fig


def plot_message(message: str, title=None, colour: str = ERROR):
    """A small figure that says something in words (e.g. why there is no picture): what a
    widget shows when its input cannot be drawn. Returns the Figure."""
    fig, ax = _figure(figsize=(WIDTH * 0.7, 1.2))
    ax.axis("off")
    ax.text(0.0, 0.5, message, color=colour, fontsize=10, va="center", ha="left", wrap=True,
            transform=ax.transAxes)
    if title:
        ax.set_title(title, fontsize=10, loc="left")
    return fig


# --------------------------------------------------------------------------- embeddings


def project_2d(weights, return_variance: bool = False):
    """PCA of the rows of ``weights`` [N, C] onto their two main directions -> [N, 2] tensor.

    Exact SVD of the centred matrix, so the same weights always give the same picture (each
    axis's sign is fixed so that its largest loading is positive). With ``return_variance``,
    also the fraction of the variance each axis explains ([2] tensor).
    """
    W = torch.as_tensor(weights.detach() if isinstance(weights, torch.Tensor) else weights).float().cpu()
    if W.dim() != 2 or W.size(0) < 2 or W.size(1) < 2:
        raise ValueError(f"weights must be [N, C] with N >= 2 rows and C >= 2 columns, got {tuple(W.shape)}")
    X = W - W.mean(dim=0)
    U, S, Vh = torch.linalg.svd(X, full_matrices=False)
    Vh = Vh[:2]
    signs = torch.sign(Vh.gather(1, Vh.abs().argmax(dim=1, keepdim=True))).squeeze(1)
    coords = X @ (Vh * signs[:, None]).T
    if return_variance:
        return coords, (S[:2] ** 2) / (S ** 2).sum().clamp_min(1e-12)
    return coords


def _embedding_matrix(model):
    return model.transformer.wte.weight.detach().float().cpu()


def nearest_neighbours(model, tokenizer, token, k: int = 8):
    """The k tokens whose embeddings (rows of ``wte``) point most nearly the same way.

    token: a token string or id. Returns [(token_str, id, cosine similarity)], most similar first,
    the token itself left out.
    """
    i = token_id(tokenizer, token)
    W = _embedding_matrix(model)
    if not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive int, got {k!r}")
    sims = torch.nn.functional.cosine_similarity(W[i][None, :], W, dim=1)
    sims[i] = -float("inf")
    top = torch.topk(sims, min(k, W.size(0) - 1))
    return [(tokenizer.token_str(int(j)), int(j), float(s)) for s, j in zip(top.values, top.indices)]


_projections = {}  # (data_ptr, version, shape) of an embedding matrix -> its PCA


def _projection(weight):
    """project_2d of an embedding matrix, remembered while the matrix is unchanged (a picker
    redraws often, and the SVD of a 50k-token vocabulary takes seconds)."""
    key = (weight.data_ptr(), weight._version, tuple(weight.shape))
    if key not in _projections:
        _projections.clear()
        _projections[key] = project_2d(weight, return_variance=True)
    return _projections[key]


def plot_embeddings_2d(model, tokenizer, tokens=None, method: str = "pca", highlight=None, k: int = 8, ax=None):
    """Token embeddings (rows of ``model.transformer.wte``) projected to 2-D, one label per token.

    tokens:    which tokens to show (strings or ids); default every token of a vocabulary up to
               256, else the first 256 ids.
    method:    ``"pca"``: the two directions along which the embeddings vary most, fitted on the
               whole vocabulary, so the frame does not move when you show other tokens.
    highlight: optional token (string or id) to mark with its k nearest neighbours (cosine).
    Returns the Figure.
    """
    if method != "pca":
        raise ValueError(f"method {method!r} is not available; use 'pca'")
    W = _embedding_matrix(model)
    V = W.size(0)
    ids = list(range(min(V, 256))) if tokens is None else [token_id(tokenizer, t) for t in tokens]
    if not ids:
        raise ValueError("no tokens to show")
    xy, var = _projection(model.transformer.wte.weight)
    xy = xy.numpy()
    focus, near = None, []
    if highlight is not None:
        focus = token_id(tokenizer, highlight)
        near = [j for _, j, _ in nearest_neighbours(model, tokenizer, focus, k)]
    shown = list(dict.fromkeys(ids + near + ([focus] if focus is not None else [])))
    if ax is None:
        fig, ax = _figure(figsize=(7.5, 6.5))
    ax.scatter(xy[shown, 0], xy[shown, 1], s=12, color="#1f77b4", alpha=0.5)
    for j in shown:
        colour, weight = ("black", "normal")
        if j == focus:
            colour, weight = HIGHLIGHT, "bold"
        elif j in near:
            colour, weight = "#ff7f0e", "bold"
        ax.annotate(visible(tokenizer.token_str(j)), xy[j], fontsize=8 if len(shown) > 80 else 10,
                    color=colour, weight=weight, family=MONOSPACE, xytext=(2, 2), textcoords="offset points")
    if focus is not None:
        for j in near:
            ax.plot(*zip(xy[focus], xy[j]), color="#ff7f0e", lw=0.8, alpha=0.7)
        ax.scatter(*xy[focus], s=60, color=HIGHLIGHT, zorder=3)
    ax.set_xlabel(f"PC 1 ({var[0]:.0%} of variance)")
    ax.set_ylabel(f"PC 2 ({var[1]:.0%} of variance)")
    title = f"token embeddings (wte), PCA of {V} tokens"
    if focus is not None:
        title += f"; '{visible(tokenizer.token_str(focus))}' and its {len(near)} nearest"
    ax.set_title(title, fontsize=10)
    return ax.figure


# --------------------------------------------------------------------------- positions


def sinusoidal_positions(T: int, C: int, base: float = 10000.0) -> torch.Tensor:
    """The fixed position encodings of "Attention Is All You Need" -> [T, C].

    PE[pos, 2i] = sin(pos / base^(2i/C)), PE[pos, 2i+1] = cos(pos / base^(2i/C)): each pair of
    channels is a clock ticking at its own speed, from fast (i = 0) to very slow.
    """
    if T < 1 or C < 1:
        raise ValueError(f"T and C must be positive, got T={T}, C={C}")
    pos = torch.arange(T, dtype=torch.float32)[:, None]  # [T, 1]
    freq = base ** (-torch.arange(0, C, 2, dtype=torch.float32) / C)  # [ceil(C/2)]
    pe = torch.zeros(T, C)
    pe[:, 0::2] = torch.sin(pos * freq)
    pe[:, 1::2] = torch.cos(pos * freq)[:, : C // 2]
    return pe


def _cosine_matrix(X):
    Xn = torch.nn.functional.normalize(X, dim=1)
    return Xn @ Xn.T


def plot_positional_encodings(model=None, T=None, C=None):
    """Position encodings as heatmaps (position x channel), with the cosine similarity between
    every pair of positions below (nearby positions look alike when the encoding is smooth).

    model: optional GPT: its learned ``transformer.wpe`` rows are drawn beside the sinusoidal
           encoding of the same shape. T: positions (default: block_size, or 64);
           C: channels (default: n_embd, or 128). Returns the Figure.
    """
    if model is not None:
        wpe = model.transformer.wpe.weight.detach().float().cpu()
        T = T or wpe.size(0)
        if T > wpe.size(0):
            raise ValueError(f"the model has {wpe.size(0)} positions, asked for T={T}")
        C = wpe.size(1)
        panels = {"learned (model.transformer.wpe)": wpe[:T], "sinusoidal": sinusoidal_positions(T, C)}
    else:
        T, C = T or 64, C or 128
        panels = {"sinusoidal": sinusoidal_positions(T, C)}
    fig, axes = _figure(2, len(panels), squeeze=False, figsize=(5.0 * len(panels), 8.5), height_ratios=[1, 1])
    for col, (name, X) in enumerate(panels.items()):
        lim = float(X.abs().max())
        im = axes[0, col].imshow(X.numpy(), aspect="auto", cmap="RdBu_r", vmin=-lim, vmax=lim, interpolation="nearest")
        axes[0, col].set(title=f"{name}: [{T}, {C}]", xlabel="channel", ylabel="position")
        fig.colorbar(im, ax=axes[0, col], shrink=0.8)
        im = axes[1, col].imshow(_cosine_matrix(X).numpy(), cmap="viridis", vmin=-1, vmax=1, interpolation="nearest")
        axes[1, col].set(title="cosine similarity between positions", xlabel="position", ylabel="position")
        fig.colorbar(im, ax=axes[1, col], shrink=0.8)
    return fig


# --------------------------------------------------------------------------- training


def _series(history, x_key, y_key):
    xs, ys = list(history.get(x_key, [])), list(history.get(y_key, []))
    if ys and len(xs) != len(ys):
        raise ValueError(f"history[{x_key!r}] has {len(xs)} entries but history[{y_key!r}] has {len(ys)}")
    return xs, ys


def plot_loss_curves(history: dict, title=None, axes=None):
    """Training curves from ``Trainer.history``: loss above (train at every step, validation at
    every evaluation), learning rate below.

    history: dict of lists with keys iter, loss, lr (and optionally eval_iter, val_loss,
             train_eval_loss); missing keys are skipped, an empty history draws empty axes.
    axes:    optional (loss Axes, lr Axes). Returns the Figure.
    """
    if not isinstance(history, dict):
        raise ValueError(f"history must be a dict of lists like Trainer.history, got {type(history).__name__}")
    if axes is None:
        fig, axes = _figure(2, 1, sharex=True, figsize=(8, 5), height_ratios=[3, 1])
    loss_ax, lr_ax = axes
    it, loss = _series(history, "iter", "loss")
    ev, val = _series(history, "eval_iter", "val_loss")
    _, train_eval = _series(history, "eval_iter", "train_eval_loss")
    _, lr = _series(history, "iter", "lr")
    if loss:
        loss_ax.plot(it, loss, lw=0.8, alpha=0.6, color="#1f77b4", label="train loss (batch)")
    if train_eval:
        loss_ax.plot(ev, train_eval, "s--", ms=4, color="#1f77b4", label="train loss (eval)")
    if val:
        loss_ax.plot(ev, val, "o-", ms=4, color="#ff7f0e", label="validation loss")
    if loss or val:
        loss_ax.legend(fontsize=8)
    else:
        loss_ax.text(0.5, 0.5, "no training steps yet", transform=loss_ax.transAxes, ha="center",
                     va="center", color=MUTED)
    loss_ax.set_ylabel("cross-entropy loss")
    loss_ax.set_title(title or (f"step {it[-1] + 1}: loss {loss[-1]:.3f}" + (f", val {val[-1]:.3f}" if val else "")
                                if loss else "training"), fontsize=10)
    loss_ax.grid(alpha=0.3)
    if lr:
        lr_ax.plot(it, lr, color="#2ca02c")
    lr_ax.set_ylabel("learning rate")
    lr_ax.set_xlabel("step")
    lr_ax.ticklabel_format(axis="y", style="sci", scilimits=(-2, 3))
    lr_ax.grid(alpha=0.3)
    return loss_ax.figure


def plot_grad_norms(histories, clip=None, ax=None):
    """Gradient norm per step, one line per run, on a log scale.

    histories: {label: Trainer.history} to compare runs (e.g. with and without warm-up), or one
               history. clip: optional grad_clip value to draw as a dashed line. Returns the Figure.
    """
    if isinstance(histories, dict) and "iter" in histories:
        histories = {"": histories}
    if not isinstance(histories, dict) or not histories:
        raise ValueError("give {label: history} (or one history dict with 'iter' and 'grad_norm')")
    if ax is None:
        fig, ax = _figure(figsize=(8, 3.5))
    for label, h in histories.items():
        it, g = _series(h, "iter", "grad_norm")
        if not g:
            raise ValueError(f"history {label!r} has no 'grad_norm' entries")
        ax.plot(it, g, lw=0.9, label=label or None)
    if clip:
        ax.axhline(clip, ls="--", color=MUTED, lw=1, label=f"clip at {clip}")
    ax.set_yscale("log")
    ax.set(xlabel="step", ylabel="gradient norm (before clipping)", title="gradient norm")
    if any(histories) or clip:
        ax.legend(fontsize=8)
    ax.grid(alpha=0.3, which="both")
    return ax.figure
