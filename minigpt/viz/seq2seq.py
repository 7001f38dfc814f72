"""Where each answer word looked in the question: the cross-attention of the Transformer
encoder–decoder and the Luong weights of the GRU, side by side; and a chat box with either bot.

    maps = mg.viz.cross_attention_maps(model, tok, "How are you?")   # the bot answers (greedy)
    mg.viz.plot_cross_attention(maps, layer=1, head="all", selected=3)
    mg.viz.plot_cross_attention([transformer_maps, gru_maps], selected=3)   # side by side
    mg.viz.CrossAttentionExplorer(transformer="qa-en", gru="gru-en", question="Where are you going?")
    mg.viz.Seq2SeqChat(question="How are you?")     # the shipped bots, loaded when first chosen

A map is a grid: one row per answer token (the token being written, ``<eos>`` last when the
reply ended), one column per question token; row t is the attention of the decoder step that
wrote answer token t, so each row sums to 1 (over the question's tokens). The Transformer has
one such grid per layer and head; the GRU has one (its Luong weights, one per decoding step).
The maps come from one teacher-forced pass over the answer, which gives exactly the weights the
model had while generating it (the decoder cache changes nothing, as the tests hold).

When both bots are shown, both read the same answer (the one the chosen bot wrote, or the one
typed), so their rows line up: selecting answer token t shows where each model looked when
writing that same token. Only core ipywidgets are used (dropdowns, text boxes, buttons), so the
widgets work with ipywidgets 7 and 8, offline; displaying one also offers its picture as a PNG,
which static viewers (GitHub, an untrusted notebook) show. Chinese is drawn with a CJK font.
"""

from __future__ import annotations

import html
import numbers
from dataclasses import dataclass, field
from typing import Optional

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.patches import Rectangle

from ..seq2seq import beam_reply, greedy_reply
from .plots import HIGHLIGHT, MONOSPACE, WIDTH, _numpy, count, plot_message, visible
from .widgets import FigureBox, _error, on_enter

KINDS = ("transformer", "gru")
KIND_NAMES = {"transformer": "Transformer", "gru": "GRU"}
LANGUAGES = {"en": "English", "zh": "Chinese (中文)"}
# The shipped bots, by (kind, language): names for mg.pretrained.load.
DEFAULT_BOTS = {("transformer", "en"): "qa-en", ("transformer", "zh"): "qa-zh",
                ("gru", "en"): "gru-en", ("gru", "zh"): "gru-zh"}


def model_kind(model) -> str:
    """"transformer" for a minigpt Seq2Seq, "gru" for a GRUSeq2Seq (anything else: ValueError)."""
    from ..rnn import GRUSeq2Seq
    from ..seq2seq import Seq2Seq
    if isinstance(model, Seq2Seq):
        return "transformer"
    if isinstance(model, GRUSeq2Seq):
        return "gru"
    raise ValueError(f"expected a sequence-to-sequence model (minigpt.seq2seq.Seq2Seq or minigpt.rnn.GRUSeq2Seq), "
                     f"got {type(model).__name__}; a decoder-only GPT has no cross-attention (use AttentionExplorer)")


@dataclass
class CrossAttentionMaps:
    """Where every answer token looked in the question, for one model.

    kind:            "transformer" or "gru".
    question_tokens: S token strings of the question (as the encoder read it, cropped at the left
                     when longer than the model takes: ``cropped`` tokens were dropped).
    answer_tokens:   T token strings of the answer, ``<eos>`` last when the reply ended there.
    answer:          the answer's text (without <eos>).
    cross:           one [H, T, S] float tensor (CPU) per decoder layer; the GRU has one layer
                     and one "head", its Luong weights. Row t: the step that wrote answer token t.
    how:             how the answer came about: "greedy", "beam search (width 4)", "typed", ...
    answer_ids:      the T ids of the answer tokens (in the model's tokenizer).
    """

    kind: str
    question_tokens: list
    answer_tokens: list
    answer: str
    cross: tuple
    how: str = "greedy"
    cropped: int = 0
    scores: str = field(default="")  # the GRU's Luong score ("dot", "general", "concat")
    answer_ids: list = field(default_factory=list)

    @property
    def n_layer(self) -> int:
        return len(self.cross)

    @property
    def n_head(self) -> int:
        return self.cross[0].shape[0]

    @property
    def title(self) -> str:
        if self.kind == "gru":
            return f"GRU: Luong attention ({self.scores})" if self.scores else "GRU: Luong attention"
        return f"Transformer: cross-attention ({self.n_layer} layers × {self.n_head} heads)"

    def weights(self, layer: int = -1, head="all") -> np.ndarray:
        """[T, S]: the grid of one layer and head, or the mean over the layer's heads ("all").
        The GRU ignores layer and head (it has one grid)."""
        if self.kind == "gru":
            return _numpy(self.cross[0][0])
        layer = _check_layer(layer, self.n_layer)
        a = _numpy(self.cross[layer])
        if head == "all":
            return a.mean(axis=0)
        if not (isinstance(head, numbers.Integral) and 0 <= head < a.shape[0]):
            raise ValueError(f"head must be 'all' or an index in 0..{a.shape[0] - 1}, got {head!r}")
        return a[int(head)]


def _check_layer(layer, n_layer) -> int:
    if not isinstance(layer, numbers.Integral) or not -n_layer <= layer < n_layer:
        raise ValueError(f"layer must be an index in 0..{n_layer - 1} (or -1 for the last), got {layer!r}")
    return int(layer) % n_layer


def _question_ids(model, tokenizer, question) -> tuple[list[int], int]:
    if not isinstance(question, str) or not question.strip():
        raise ValueError("the question is empty: type a question for the bot to answer")
    ids = list(tokenizer.encode(question.strip(), allowed_special="none"))
    limit = getattr(model.config, "src_block_size", None)
    if limit is not None and len(ids) > limit:  # as encode_pair crops: the latest words stay
        return ids[-limit:], len(ids) - limit
    return ids, 0


@torch.no_grad()
def cross_attention_maps(model, tokenizer, question: str, answer=None, decoding: str = "greedy",
                         beam_width: int = 4, max_new_tokens: Optional[int] = None,
                         repetition_penalty: float = 1.0, how: Optional[str] = None,
                         eos: bool = True) -> CrossAttentionMaps:
    """The cross-attention (Transformer) or Luong weights (GRU) of an answer to ``question``.

    model, tokenizer: a Seq2Seq or GRUSeq2Seq and its tokenizer (e.g. ``mg.pretrained.load("qa-en")``).
    question:         the question (str); cropped at the left to the model's src_block_size.
    answer:           None: the model answers (``decoding`` "greedy" or "beam", ``beam_width``,
                      ``max_new_tokens``, default the decoder's block_size, ``repetition_penalty``
                      for beam); a str: this answer is read instead (``<eos>`` appended unless
                      ``eos=False``), e.g. one typed or written by another model; or a list of
                      the model's token ids.
    Returns a CrossAttentionMaps (``cross``: one [H, T, S] tensor per layer).
    """
    kind = model_kind(model)
    cfg = model.config
    src, cropped = _question_ids(model, tokenizer, question)
    if answer is None:
        if decoding not in ("greedy", "beam"):
            raise ValueError(f"decoding must be 'greedy' or 'beam', got {decoding!r}")
        max_new = cfg.block_size if max_new_tokens is None else max_new_tokens
        if decoding == "greedy":
            ids = greedy_reply(model, src, max_new)
            how = how or "greedy"
        else:
            ids = list(beam_reply(model, tokenizer, src, beam_width=beam_width, max_new_tokens=max_new,
                                  repetition_penalty=repetition_penalty).best.ids)
            how = how or f"beam search (width {beam_width})"
        if not ids:
            raise ValueError("max_new_tokens is 0: the bot wrote nothing to look at")
    elif isinstance(answer, str):
        if not answer.strip():
            raise ValueError("the answer is empty: type an answer, or let a bot write one")
        ids = list(tokenizer.encode(answer.strip(), allowed_special="none")) + ([cfg.eos_id] if eos else [])
        how = how or "typed"
    else:
        ids = [int(i) for i in answer]
        if not ids or min(ids) < 0 or max(ids) >= cfg.vocab_size:
            raise ValueError(f"the answer must be a non-empty list of token ids in 0..{cfg.vocab_size - 1}")
        how = how or "given"
    limit = getattr(model, "max_reply_tokens", cfg.block_size)  # a GRU has no position table
    if len(ids) > limit:
        raise ValueError(f"the answer is {len(ids)} tokens (with <eos>) but the decoder reads at most "
                         f"{limit} (its block_size); shorten it")
    was_training = model.training
    model.eval()
    try:
        device = model.device
        tgt = torch.tensor([[cfg.sos_id] + ids[:-1]], device=device)
        out = model(torch.tensor([src], device=device), tgt, return_attention=True)
    finally:
        model.train(was_training)
    text_ids = ids[:-1] if ids[-1] == cfg.eos_id else ids
    return CrossAttentionMaps(
        kind=kind, question_tokens=[tokenizer.token_str(i) for i in src],
        answer_tokens=[tokenizer.token_str(i) for i in ids], answer=tokenizer.decode(text_ids),
        cross=tuple(a[0].float().cpu() for a in out.cross_attentions), how=how, cropped=cropped,
        scores=getattr(cfg, "attention", "") if kind == "gru" else "", answer_ids=ids)


# --------------------------------------------------------------------------- the static picture


def _label(token: str) -> str:
    return visible(token).replace("\\n", "↵")


def _fit(n: int, inches: float) -> float:
    """A font size (points) at which n labels fit side by side along ``inches``."""
    return max(4.0, min(10.0, 0.8 * 72 * inches / max(n, 1)))


def _grid(ax, a, maps: CrossAttentionMaps, selected, title, inches):
    """One grid; inches: (width, height) the grid gets, to size its labels."""
    T, S = a.shape
    # the colour scale reaches at least 3x the even share 1/S, so attention spread evenly over the
    # question looks dim, not as bright as a sharp look at one token
    im = ax.imshow(a, cmap="viridis", vmin=0, vmax=max(float(a.max()), min(1.0, 3.0 / S)), aspect="auto",
                   interpolation="nearest")
    ax.set_xticks(range(S), [_label(t) for t in maps.question_tokens], rotation=90, fontsize=_fit(S, inches[0]),
                  family=MONOSPACE)
    ax.set_yticks(range(T), [_label(t) for t in maps.answer_tokens], fontsize=_fit(T, inches[1]), family=MONOSPACE)
    ax.set_xlabel("question token (looked at)", fontsize=9)
    ax.set_ylabel("answer token (being written)", fontsize=9)
    if selected is not None and 0 <= selected < T:
        ax.add_patch(Rectangle((-0.5, selected - 0.5), S, 1, fill=False, edgecolor=HIGHLIGHT, lw=2))
    ax.set_title(title, fontsize=10)
    return im


def _bars(ax, weights, panels, selected):
    """Bars of where answer token ``selected`` looked, one colour per panel (they share the question)."""
    m = panels[0]
    S, n = len(m.question_tokens), len(weights)
    width = 0.8 / n
    colours = ("#1f77b4", "#ff7f0e", "#2ca02c")
    for k, (w, p) in enumerate(zip(weights, panels)):
        top = int(np.argmax(w))
        bars = ax.bar(np.arange(S) + (k - (n - 1) / 2) * width, w, width, color=colours[k % 3],
                      label=f"{p.title.split(':')[0]}: most at '{_label(p.question_tokens[top])}'")
        bars[top].set_edgecolor(HIGHLIGHT)
        bars[top].set_linewidth(1.5)
    ax.set_xticks(range(S), [_label(t) for t in m.question_tokens], rotation=90,
                  fontsize=_fit(S, ax.get_position().width * ax.figure.get_figwidth()), family=MONOSPACE)
    ax.set_xlim(-0.5, S - 0.5)
    ax.set_ylim(0, max(float(max(w.max() for w in weights)) * 1.35, 1e-9))  # headroom: the legend never hides a bar
    ax.set_ylabel("weight", fontsize=9)
    ax.legend(fontsize=8, loc="best", prop={"family": MONOSPACE, "size": 8})
    ax.set_title(f"where '{_label(m.answer_tokens[selected])}' (answer token {selected}) looked in the question",
                 fontsize=9, family=MONOSPACE)


def _clip(text: str, n: int = 90) -> str:
    text = text.replace("\n", " ")
    return text if len(text) <= n else text[:n - 1] + "…"


def plot_cross_attention(maps, layer: int = -1, head="all", selected: Optional[int] = None, title=None):
    """Answer tokens × question tokens: where each answer token looked, for one model or several
    (e.g. the Transformer and the GRU on the same question and answer): side by side when the
    question is short, one above the other when it is long (so its tokens stay readable).

    maps:     a CrossAttentionMaps, or a sequence of them (one grid each).
    layer:    the Transformer's decoder layer (-1: the last); head: an index or "all" (the mean
              over the layer's heads). The GRU's grid is its one set of Luong weights.
    selected: an answer token (row) to follow: outlined in every grid, and its weights drawn as
              bars under them (one colour per model when they read the same question tokens).
    Returns a matplotlib Figure.
    """
    panels = [maps] if isinstance(maps, CrossAttentionMaps) else list(maps)
    if not panels or not all(isinstance(m, CrossAttentionMaps) for m in panels):
        raise ValueError("give a CrossAttentionMaps (from cross_attention_maps), or a list of them")
    grids = [m.weights(layer, head) for m in panels]
    names = [m.title if m.kind == "gru" else
             f"Transformer: layer {_check_layer(layer, m.n_layer)}, "
             + (f"mean of {m.n_head} heads" if head == "all" else f"head {head}") for m in panels]
    n, S, T = len(panels), max(g.shape[1] for g in grids), max(g.shape[0] for g in grids)
    label_room = 0.35 + 0.07 * max(len(_label(t)) for m in panels for t in m.question_tokens)
    stacked = n > 1 and S * n > 60
    valid = selected is not None and all(0 <= selected < g.shape[0] for g in grids)
    if selected is not None and not valid:
        raise ValueError(f"selected must be an answer token, 0..{min(g.shape[0] for g in grids) - 1}, got {selected!r}")
    shared = valid and all(m.question_tokens == panels[0].question_tokens for m in panels)
    grid_h = 0.8 + label_room + (0.1 if stacked or n > 1 else 0.12) * T
    bar_h = 2.2
    width = WIDTH if n > 1 or S > 24 else min(WIDTH, 3.5 + 0.22 * S)
    if stacked:
        heights = [grid_h] * n + ([bar_h] if shared else [bar_h] * n if valid else [])
        fig = plt.figure(layout="constrained", figsize=(width, sum(heights) + 0.5))
        spec = fig.add_gridspec(len(heights), 1, height_ratios=heights)
        grid_axes = [fig.add_subplot(spec[k, 0]) for k in range(n)]
        bar_axes = [fig.add_subplot(spec[n + k, 0]) for k in range(len(heights) - n)]
    else:
        rows = 2 if valid else 1
        fig = plt.figure(layout="constrained", figsize=(width, grid_h + (bar_h if valid else 0) + 0.5))
        spec = fig.add_gridspec(rows, n, height_ratios=[grid_h, bar_h] if valid else None)
        grid_axes = [fig.add_subplot(spec[0, k]) for k in range(n)]
        bar_axes = ([fig.add_subplot(spec[1, :])] if shared and n > 1 else
                    [fig.add_subplot(spec[1, k]) for k in range(n)] if valid else [])
    plt.close(fig)
    grid_w = (width - 1.4) if stacked or n == 1 else (width - 1.4 * n) / n  # less the labels and colour bar
    for k, (ax, m, a) in enumerate(zip(grid_axes, panels, grids)):
        im = _grid(ax, a, m, selected, names[k], (grid_w, grid_h - 0.8 - label_room))
        fig.colorbar(im, ax=ax, shrink=0.8, label="weight", pad=0.01)
    if valid:
        if len(bar_axes) == 1:
            _bars(bar_axes[0], [g[selected] for g in grids] if shared else [grids[0][selected]],
                  panels if shared else panels[:1], selected)
        else:
            for ax, m, a in zip(bar_axes, panels, grids):
                _bars(ax, [a[selected]], [m], selected)
    fig.suptitle(title if title is not None else
                 f"Q: {_clip(''.join(panels[0].question_tokens))}\nA ({panels[0].how}): {_clip(panels[0].answer)}",
                 fontsize=10, family=MONOSPACE)
    return fig


# --------------------------------------------------------------------------- loading the bots


def _resolve(bot, what: str):
    """(model, tokenizer) from a (model, tokenizer) pair or a registered name."""
    if bot is None:
        return None
    if isinstance(bot, str):
        from .. import pretrained
        bot = pretrained.load(bot)
    if not (isinstance(bot, (tuple, list)) and len(bot) == 2):
        raise ValueError(f"{what} must be a (model, tokenizer) pair or the name of a shipped model, got "
                         f"{type(bot).__name__}")
    model, tokenizer = bot
    model_kind(model)
    if tokenizer is None:
        raise ValueError(f"{what} needs its tokenizer: pass (model, tokenizer)")
    return model, tokenizer


def _same_tokens(a, b) -> bool:
    """Whether two tokenizers give the same ids (then one bot's answer ids are the other's too)."""
    return a is b or (hasattr(a, "to_dict") and hasattr(b, "to_dict") and a.to_dict() == b.to_dict())


def _dropdown(options, value, description, width="16em"):
    return widgets.Dropdown(options=options, value=value, description=description,
                            style={"description_width": "initial"}, layout=widgets.Layout(width=width))


def _head_options(n_head):
    return [("mean of all heads", "all")] + [(f"head {h}", h) for h in range(n_head)]


# --------------------------------------------------------------------------- the explorer


class CrossAttentionExplorer(FigureBox):
    """A question, an answer, and where each answer token looked in the question: the Transformer's
    cross-attention (pick the layer and head) beside the GRU's Luong weights.

    transformer, gru: (model, tokenizer) pairs or shipped names ("qa-en", "gru-en"); one may be None.
    question:         the first question; answer_from: "transformer", "gru" (that bot writes the
                      answer, ``decoding`` "greedy" or "beam") or "typed" (``answer`` is read).
    layer, head:      the Transformer's layer (-1: the last) and head ("all": the mean of the heads).
    selected:         the answer token to follow first (default: the first one).

    Controls: ``question`` and ``answer`` (Text; editing the answer makes it "typed"),
    ``answer_from``, ``decoding``, ``layer``, ``head`` (Dropdowns), ``token_buttons`` (one per
    answer token; a click selects it), ``status``. State: ``maps`` ({kind: CrossAttentionMaps},
    empty after bad input), ``selected``, ``error``. ``weights(kind)`` and ``selected_weights(kind)``
    give the numbers in the picture.
    """

    def __init__(self, transformer=None, gru=None, question: str = "What are you doing this weekend?",
                 answer_from: str = "transformer", answer: Optional[str] = None, decoding: str = "greedy",
                 layer: int = -1, head="all", selected: int = 0, beam_width: int = 4):
        self.bots = {k: b for k, b in (("transformer", _resolve(transformer, "transformer")),
                                       ("gru", _resolve(gru, "gru"))) if b is not None}
        if not self.bots:
            raise ValueError("give at least one bot: transformer=(model, tokenizer) or gru=(model, tokenizer), "
                             "or shipped names such as 'qa-en' and 'gru-en'")
        for kind, (model, _) in self.bots.items():
            if model_kind(model) != kind:
                raise ValueError(f"{kind}= got a {KIND_NAMES[model_kind(model)]} model; pass it as "
                                 f"{model_kind(model)}=")
        if answer_from not in ("transformer", "gru", "typed") or (answer_from != "typed" and answer_from not in self.bots):
            raise ValueError(f"answer_from must be 'typed' or one of the bots given {sorted(self.bots)}, got "
                             f"{answer_from!r}")
        if answer_from == "typed" and not answer:
            raise ValueError("answer_from='typed' needs the answer (answer='...')")
        self.beam_width = beam_width
        self.maps: dict = {}
        self.selected: Optional[int] = None
        self.error: Optional[str] = None
        self.token_buttons: list = []
        self._busy = False
        self.question = widgets.Text(value=question, description="question", continuous_update=False,
                                     layout=widgets.Layout(width="95%"))
        self.answer = widgets.Text(value=answer or "", description="answer", continuous_update=False,
                                   placeholder="written by the chosen bot, or type your own",
                                   layout=widgets.Layout(width="95%"))
        writers = [(f"{KIND_NAMES[k]}'s reply", k) for k in self.bots] + [("typed answer", "typed")]
        self.answer_from = _dropdown(writers, answer_from, "answer", "20em")  # "Transformer's reply" whole
        self.decoding = _dropdown([("greedy", "greedy"), (f"beam ({beam_width})", "beam")], decoding, "decoding",
                                  "14em")
        t = self.bots.get("transformer")
        L, H = (t[0].config.n_layer, t[0].config.n_head) if t else (1, 1)
        layer = _check_layer(layer, L)
        if head != "all" and not (isinstance(head, numbers.Integral) and 0 <= head < H):
            raise ValueError(f"head must be 'all' or an index in 0..{H - 1}, got {head!r}")
        self.layer = _dropdown([(f"layer {i}", i) for i in range(L)], layer, "Transformer layer", "19em")
        self.head = _dropdown(_head_options(H), head, "head", "16em")
        self.layer.disabled = self.head.disabled = t is None
        self.tokens = widgets.Box(layout=widgets.Layout(display="flex", flex_flow="row wrap", width="100%"))
        self.status = widgets.HTML()
        self.question.observe(lambda _: self.recompute(), names="value")
        self.answer.observe(self._on_answer, names="value")
        self.answer_from.observe(lambda _: self.recompute(), names="value")
        self.decoding.observe(lambda _: self.recompute(), names="value")
        for w in (self.layer, self.head):
            w.observe(lambda _: self.redraw(), names="value")
        super().__init__([self.question, widgets.HBox([self.answer_from, self.decoding]), self.answer,
                          widgets.HBox([self.layer, self.head]),
                          widgets.HTML("<small>answer tokens (click one to see where it looked):</small>"),
                          self.tokens, self.status])
        self.recompute(selected)

    # ---- state

    def _on_answer(self, change):
        if self._busy:
            return
        self._busy = True
        try:
            self.answer_from.value = "typed"  # the learner wrote this answer
        finally:
            self._busy = False
        self.recompute()

    def _set_answer_box(self, text):
        self._busy = True
        try:
            self.answer.value = text
        finally:
            self._busy = False

    def _invalid(self, message):
        self.error, self.maps, self.selected = message, {}, None
        self.tokens.children, self.token_buttons = (), []
        self.status.value = _error(message)
        self.show_error(message, title="nothing to show: fix the question or the answer")

    def recompute(self, selected: Optional[int] = 0) -> None:
        """Answer the question again (or read the typed answer) and recompute every map."""
        if self._busy:
            return
        question, writer = self.question.value, self.answer_from.value
        try:
            if writer == "typed":
                answer = self.answer.value
                if not answer.strip():
                    raise ValueError("the answer is empty: type an answer, or choose a bot to write one")
                how = "typed"
            else:
                model, tok = self.bots[writer]
                first = cross_attention_maps(model, tok, question, decoding=self.decoding.value,
                                             beam_width=self.beam_width)
                answer = first.answer
                how = f"{KIND_NAMES[writer]}'s {first.how}"
                self._set_answer_box(answer)
            maps = {}
            for kind, (model, tok) in self.bots.items():
                if kind == writer:
                    maps[kind] = first
                    first.how = how
                elif writer != "typed" and _same_tokens(tok, self.bots[writer][1]):  # the very same ids
                    maps[kind] = cross_attention_maps(model, tok, question, first.answer_ids, how=how)
                elif answer.strip():
                    ended = writer == "typed" or first.answer_tokens[-1] == "<eos>"
                    maps[kind] = cross_attention_maps(model, tok, question, answer, how=how, eos=ended)
                else:  # the writer said nothing but <eos>: the other bot reads the same (empty) answer
                    maps[kind] = cross_attention_maps(model, tok, question, [model.config.eos_id], how=how)
        except ValueError as e:  # empty text, unknown characters, too long
            return self._invalid(str(e))
        self.error, self.maps = None, maps
        shown = next(iter(maps.values()))
        self.token_buttons = []
        for i, token in enumerate(shown.answer_tokens):
            b = widgets.Button(description=_label(token) or "∅", tooltip=f"answer token {i}",
                               layout=widgets.Layout(width="auto", height="auto", margin="1px", padding="0 3px"))
            b.add_class("minigpt-token")
            b.on_click(lambda _, i=i: self.select(i))
            self.token_buttons.append(b)
        self.tokens.children = tuple(self.token_buttons)
        self.selected = None
        T = len(shown.answer_tokens)
        self.select(min(selected or 0, T - 1))

    def select(self, position: int) -> None:
        """Follow answer token ``position``: outline its row, draw its weights as bars."""
        if not self.maps:
            self.status.value = _error(f"nothing to select: {self.error or 'type a question'}")
            return
        T = len(next(iter(self.maps.values())).answer_tokens)
        if not (isinstance(position, numbers.Integral) and 0 <= position < T):
            raise ValueError(f"position must be an answer token, 0..{T - 1}, got {position!r}")
        if self.selected is not None and self.selected < len(self.token_buttons):
            self.token_buttons[self.selected].style.button_color = None
            self.token_buttons[self.selected].layout.border = ""
        self.selected = int(position)
        self.token_buttons[self.selected].style.button_color = "#ffd6a5"
        self.token_buttons[self.selected].layout.border = f"2px solid {HIGHLIGHT}"
        self.redraw()

    def redraw(self) -> None:
        """Draw the current maps, layer, head and selected token."""
        if not self.maps or self._busy:
            return
        shown = self.selected if all(self.selected < len(m.answer_tokens) for m in self.maps.values()) else None
        self.show(plot_cross_attention(list(self.maps.values()), self.layer.value, self.head.value, shown))
        m = next(iter(self.maps.values()))
        notes = [f"{count(len(m.question_tokens), 'question token')} × {count(len(m.answer_tokens), 'answer token')}",
                 "each row sums to 1"]
        if m.cropped:
            notes.append(f"the question was cropped: its first {count(m.cropped, 'token')} did not fit the encoder")
        lengths = {len(x.answer_tokens) for x in self.maps.values()}
        if len(lengths) > 1:
            notes.append("the two tokenizers split the answer differently")
        self.status.value = " · ".join(notes)

    # ---- numbers

    def _maps(self, kind):
        if not self.maps:
            raise ValueError(f"there are no maps: {self.error or 'type a question'}")
        if kind not in self.maps:
            raise ValueError(f"no {kind!r} bot here; the bots are {sorted(self.maps)}")
        return self.maps[kind]

    def weights(self, kind: str = "transformer") -> np.ndarray:
        """[T, S]: the grid drawn for ``kind`` ("transformer": the chosen layer and head)."""
        return self._maps(kind).weights(self.layer.value, self.head.value)

    def selected_weights(self, kind: str = "transformer") -> np.ndarray:
        """[S]: where the selected answer token looked in the question (the bars)."""
        return self.weights(kind)[self.selected]


# --------------------------------------------------------------------------- the chat box


def _load_errors():
    from ..checkpoint import CheckpointError
    return (ValueError, OSError, CheckpointError)


LOAD_ERRORS = _load_errors()  # bad input, missing or damaged weights: said in the widget, nothing lost


def _bubble(role: str, body: str, note: str = "") -> str:
    colour = {"user": "#e8f0fe", "bot": "#f6f6f6"}[role]
    tail = f" <span style='color:#777;font-size:0.85em'>({html.escape(note)})</span>" if note else ""
    return (f"<div style='margin:3px 0;padding:4px 8px;border-radius:6px;background:{colour};color:#111'>"
            f"<b>{'you' if role == 'user' else 'bot'}</b>: {html.escape(body)}{tail}</div>")


class Seq2SeqChat(FigureBox):
    """A chat box with either sequence-to-sequence bot, and under its reply the cross-attention
    picture of that reply (where each reply token looked in your message).

    bots:      {(kind, language): (model, tokenizer) or a shipped name}, kind "transformer" or "gru",
               language "en" or "zh" (default: the shipped qa-en, qa-zh, gru-en, gru-zh, each loaded
               when first chosen).
    bot, language: the first choice; question: asked at once (None: start empty).
    decoding:  "greedy" or "beam" (``beam_width``, ``repetition_penalty``); replies stop at <eos>, at
               ``max_new_tokens`` or at the decoder's block_size, whichever comes first.

    These bots answer one message at a time (they were trained on single question → reply pairs):
    the conversation is shown, but each reply reads only the message it answers.
    Controls: ``bot``, ``language``, ``decoding`` (Dropdowns), ``beam_width``, ``max_new_tokens``
    (sliders), ``message`` (Text; Enter sends), ``send_button``, ``clear_button``, ``layer`` and
    ``head`` (the picture's Transformer layer and head). State: ``turns`` ([(label, message,
    CrossAttentionMaps)]), ``reply`` (the newest maps or None), ``error``.
    """

    def __init__(self, bots: Optional[dict] = None, bot: str = "transformer", language: str = "en",
                 question: Optional[str] = "How are you today?", decoding: str = "greedy", beam_width: int = 4,
                 repetition_penalty: float = 1.0, max_new_tokens: int = 48):
        bots = dict(DEFAULT_BOTS if bots is None else bots)
        for key in bots:
            if not (isinstance(key, tuple) and len(key) == 2 and key[0] in KINDS and key[1] in LANGUAGES):
                raise ValueError(f"bots keys must be (kind, language) with kind in {KINDS} and language in "
                                 f"{tuple(LANGUAGES)}, got {key!r}")
        if (bot, language) not in bots:
            raise ValueError(f"no bot for ({bot!r}, {language!r}); the bots are {sorted(bots)}")
        self._bots, self._loaded = bots, {}
        self.repetition_penalty = repetition_penalty
        self.turns: list = []
        self.error: Optional[str] = None
        kinds = [k for k in KINDS if any(key[0] == k for key in bots)]
        langs = [lang for lang in LANGUAGES if any(key[1] == lang for key in bots)]
        self.bot = _dropdown([(KIND_NAMES[k], k) for k in kinds], bot, "bot", "13em")
        self.language = _dropdown([(LANGUAGES[lang], lang) for lang in langs], language, "language", "14em")
        self.decoding = _dropdown(["greedy", "beam"], decoding, "decoding", "12em")
        slider = dict(continuous_update=False, style={"description_width": "initial"})
        self.beam_width = widgets.IntSlider(value=beam_width, min=1, max=10, description="beam width", **slider)
        self.max_new_tokens = widgets.IntSlider(value=max_new_tokens, min=1, max=max(max_new_tokens, 96),
                                                description="max new tokens", **slider)
        self.layer = _dropdown([("last layer", -1)], -1, "picture: layer", "20em")  # room for "layer 1 (last)"
        self.head = _dropdown(_head_options(1), "all", "head", "16em")  # and for "mean of all heads"
        self.conversation = widgets.HTML()
        self.message = widgets.Text(placeholder="type a message and press Enter", description="you",
                                    layout=widgets.Layout(width="70%"))
        self.send_button = widgets.Button(description="send", button_style="primary")
        self.clear_button = widgets.Button(description="clear", tooltip="forget the conversation shown")
        self.status = widgets.HTML()
        press_send = on_enter(self.message, lambda: self.send())  # once the whole text has reached the kernel
        self.send_button.on_click(lambda _: press_send())
        self.clear_button.on_click(lambda _: self.clear())
        for w in (self.layer, self.head):
            w.observe(lambda _: self.redraw(), names="value")
        for w in (self.bot, self.language):
            w.observe(lambda _: self._on_bot(), names="value")
        super().__init__([
            widgets.HBox([self.bot, self.language, self.decoding]),
            widgets.HBox([self.beam_width, self.max_new_tokens]),
            self.conversation,
            widgets.HBox([self.message, self.send_button, self.clear_button]),
            self.status,
            widgets.HBox([self.layer, self.head]),
        ])
        self._on_bot()
        if question is not None:
            self.send(question)
        elif self.error is None:
            self.show(plot_message("ask something: the picture of the reply appears here", colour="#444"))

    def current(self):
        """(model, tokenizer) of the chosen bot, loaded on first use."""
        key = (self.bot.value, self.language.value)
        if key not in self._bots:
            raise ValueError(f"there is no {KIND_NAMES[key[0]]} bot in {LANGUAGES[key[1]]} here; choose another")
        if key not in self._loaded:
            self._loaded[key] = _resolve(self._bots[key], f"the {key} bot")
            if model_kind(self._loaded[key][0]) != key[0]:
                raise ValueError(f"the bot given for {key} is a {KIND_NAMES[model_kind(self._loaded[key][0])]} model")
        return self._loaded[key]

    def _on_bot(self):
        try:
            model, _ = self.current()
        except LOAD_ERRORS as e:  # e.g. weights missing: say so, keep the conversation
            return self._failed(str(e))
        self.error = None
        transformer = model_kind(model) == "transformer"
        L, H = (model.config.n_layer, model.config.n_head) if transformer else (1, 1)
        self.layer.options = [(f"layer {i}" + (" (last)" if i == L - 1 else ""), i) for i in range(L)]
        self.layer.value = L - 1
        self.head.options = _head_options(H)
        self.head.value = "all"
        self.layer.disabled = self.head.disabled = not transformer
        self.status.value = f"{KIND_NAMES[self.bot.value]} bot, {LANGUAGES[self.language.value]}"

    def _failed(self, message: str) -> None:
        """Say what went wrong; the conversation stays, and so does the picture of its last reply."""
        self.error = message
        self.status.value = _error(message)
        if not self.turns:
            self.show_error(message, title="no reply yet")

    @property
    def reply(self) -> Optional[CrossAttentionMaps]:
        """The newest reply's maps, or None."""
        return self.turns[-1][2] if self.turns else None

    def send(self, text: Optional[str] = None) -> Optional[CrossAttentionMaps]:
        """Send ``text`` (default: the message box) to the chosen bot; returns the reply's maps, or
        None after bad input (``error`` and ``status`` say why; the message stays in its box)."""
        text = self.message.value if text is None else text
        typed, self.message.value = self.message.value, ""  # emptied now: what is typed during the reply stays
        try:
            model, tok = self.current()
            longest = min(self.max_new_tokens.value, getattr(model, "max_reply_tokens", model.config.block_size))
            maps = cross_attention_maps(model, tok, text, decoding=self.decoding.value,
                                        beam_width=self.beam_width.value, max_new_tokens=longest,
                                        repetition_penalty=self.repetition_penalty)
        except LOAD_ERRORS as e:
            self.message.value = typed
            return self._failed(str(e))
        self.error = None
        label = f"{KIND_NAMES[self.bot.value]}, {LANGUAGES[self.language.value]}, {maps.how}"
        self.turns.append((label, text, maps))
        self.conversation.value = "".join(_bubble("user", q) + _bubble("bot", m.answer or "(nothing)", lab)
                                          for lab, q, m in self.turns)
        self.redraw()
        notes = [label, count(len(maps.answer_tokens), "reply token"),
                 "it stopped by itself (<eos>)" if maps.answer_tokens[-1] == "<eos>" else "it ran to max new tokens"]
        if maps.cropped:
            notes.append(f"your message was cropped: its first {count(maps.cropped, 'token')} did not fit")
        self.status.value = " · ".join(html.escape(n) for n in notes)
        return maps

    def redraw(self) -> None:
        """Draw the newest reply's cross-attention (the chosen layer and head)."""
        maps = self.reply
        if maps is None:
            return
        layer = self.layer.value if maps.kind == "transformer" and self.layer.value < maps.n_layer else -1
        head = self.head.value if maps.kind == "gru" or head_fits(self.head.value, maps.n_head) else "all"
        self.show(plot_cross_attention(maps, layer, head, title=f"{maps.title.split(':')[0]}: where each word of "
                                                                f"the reply\nlooked in your message"))

    def clear(self) -> None:
        """Forget the conversation shown."""
        self.turns, self.error = [], None
        self.conversation.value = ""
        self.status.value = "cleared"
        self.show(plot_message("ask something: the picture of the reply appears here", colour="#444"))


def head_fits(head, n_head) -> bool:
    return head == "all" or (isinstance(head, numbers.Integral) and 0 <= head < n_head)


# --------------------------------------------------------------------------- the encoder alone: fill in the blanks


def plot_fill_in(result, max_blanks: int = 6):
    """The top candidates of each blank of a ``minigpt.mlm.fill_in`` result, as bars with their
    probabilities (the first ``max_blanks`` blanks), under the sentence and its filled versions.
    Returns a matplotlib Figure."""
    from ..mlm import FillIn
    if not isinstance(result, FillIn):
        raise ValueError("give the result of minigpt.mlm.fill_in")
    blanks = list(zip(result.positions, result.candidates))[:max_blanks]
    n, k = len(blanks), max(len(c) for _, c in blanks)
    cols = min(n, 3)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, squeeze=False, layout="constrained",
                             figsize=(WIDTH if cols > 1 else 5.0, 1.2 + rows * (0.6 + 0.28 * k)))
    plt.close(fig)
    for ax in axes.flat[n:]:
        ax.axis("off")
    for b, (ax, (pos, cands)) in enumerate(zip(axes.flat, blanks)):
        ps = [p for _, _, p in cands]
        ax.barh(range(len(cands)), ps, color=[HIGHLIGHT] + ["#1f77b4"] * (len(cands) - 1))
        ax.set_yticks(range(len(cands)), [repr(t)[1:-1] if t.strip() else f"'{_label(t)}'" for t, _, _ in cands],
                      family=MONOSPACE, fontsize=9)
        ax.invert_yaxis()
        ax.set_xlim(0, 1)
        for j, p in enumerate(ps):
            ax.text(min(p + 0.02, 0.8), j, f"{p:.1%}", va="center", fontsize=8)
        ax.set_title(f"blank {b + 1} (token {pos})", fontsize=9)
        ax.set_xlabel("probability", fontsize=8)
    more = f" (first {max_blanks} of {len(result.positions)} blanks)" if len(result.positions) > max_blanks else ""
    fig.suptitle(f"{result.text}\nall at once: {result.filled}\none at a time, surest first: "
                 f"{result.filled_in_order}{more}", fontsize=10, family=MONOSPACE)
    return fig


class FillInExplorer(FigureBox):
    """Type a sentence with blanks and see what a masked language model puts in each, with its
    probabilities: the encoder reads the whole sentence, both sides of every blank.

    model, tokenizer: a ``minigpt.mlm.MaskedLM`` and its tokenizer, or a shipped name ("mlm-en").
    text:             the first sentence; each ``_`` is one missing token (a character for a
                      character-level model), and so is ``[MASK]``.
    Controls: ``text`` (Text), ``k`` (candidates per blank). State: ``result`` (the FillIn, None
    after bad input), ``error``, ``status``.
    """

    def __init__(self, model, tokenizer=None, text: str = "How are y__ today?", k: int = 5):
        from ..mlm import MaskedLM
        if isinstance(model, str):
            from .. import pretrained
            model, tokenizer = pretrained.load(model)
        if not isinstance(model, MaskedLM):
            raise ValueError(f"FillInExplorer needs a minigpt.mlm.MaskedLM (or a shipped name such as 'mlm-en'), "
                             f"got {type(model).__name__}")
        if tokenizer is None:
            raise ValueError("give the model's tokenizer too: FillInExplorer(model, tokenizer)")
        self.model, self.tokenizer = model, tokenizer
        self.result = None
        self.error: Optional[str] = None
        self.text = widgets.Text(value=text, description="sentence", continuous_update=False,
                                 placeholder="a sentence with _ (one per missing character) or [MASK]",
                                 layout=widgets.Layout(width="95%"))
        self.k = widgets.IntSlider(value=k, min=1, max=min(15, tokenizer.vocab_size), description="candidates",
                                   continuous_update=False)
        self.status = widgets.HTML()
        self.text.observe(lambda _: self.redraw(), names="value")
        self.k.observe(lambda _: self.redraw(), names="value")
        super().__init__([self.text, self.k, self.status])
        self.redraw()

    def redraw(self) -> None:
        """Fill in the blanks of the sentence in the box and draw the candidates."""
        from ..mlm import fill_in
        try:
            self.result = fill_in(self.model, self.tokenizer, self.text.value, self.k.value)
        except ValueError as e:  # no blank, unknown characters, too long
            self.result, self.error = None, str(e)
            self.status.value = _error(self.error)
            self.show_error(self.error, title="nothing to fill in: fix the sentence")
            return
        self.error = None
        self.show(plot_fill_in(self.result))
        self.status.value = (f"{count(len(self.result.positions), 'blank')} · filled: "
                             f"<code>{html.escape(self.result.filled_in_order)}</code>")

    def candidates(self) -> list:
        """Per blank, the top candidates [(token, id, probability)] (ValueError after bad input)."""
        if self.result is None:
            raise ValueError(f"there is nothing filled in: {self.error or 'type a sentence with a blank'}")
        return self.result.candidates
