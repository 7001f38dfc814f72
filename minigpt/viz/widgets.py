"""Interactive explorers for the course notebooks, built with ipywidgets (7.x, as on Colab, or 8.x).

Each explorer is an ipywidgets container: display it (last line of a cell) and play. Its
controls and outputs are attributes (``explorer.temperature``, ``explorer.sample_button``,
``explorer.image`` ...), so a notebook or a test can drive it from code, e.g.
``explorer.top_k.value = 5`` or ``explorer.argmax_button.click()``, and read what it shows
(``explorer.distribution``, ``explorer.weights()`` ...) to answer a question with it.

Pictures are drawn by the functions of ``plots.py`` and shown as a PNG in an ``Image``
widget, at the PNG's own size, so each explorer shows a useful first state before anyone
touches it. Displaying an explorer also offers that picture as a plain ``image/png``, which is
what static viewers (GitHub, nbviewer, an untrusted notebook) show in place of the live widget.
After bad input (an unknown character, an empty text) an explorer forgets its old state: its
picture and status say what was wrong, and its buttons do nothing until the input is fixed.

JupyterLab keeps the live widgets of a notebook you ran only if it saves their state with the
notebook ("Settings > Save Widget State Automatically", on by default with this package's
``jupyter-config``); without it, a reopened notebook says "model not found" where they were.
"""

from __future__ import annotations

import base64
import html
import io
import math
import numbers
import struct

import ipywidgets as widgets
import torch

from .. import sampling
from . import plots
from .plots import count, visible

IPYWIDGETS_7 = not hasattr(widgets.Widget, "_repr_mimebundle_")  # 8.x displays through it, 7.x does not


def figure_png(fig, dpi: int = 96) -> bytes:
    """A matplotlib Figure as PNG bytes."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def png_size(png: bytes) -> tuple[int, int]:
    """(width, height) in pixels of PNG bytes (read from its header)."""
    if len(png) < 24 or not png.startswith(b"\x89PNG"):
        raise ValueError("not PNG bytes")
    return struct.unpack(">II", png[16:24])


def _error(message: str) -> str:
    return f'<span style="color:#b00020">{html.escape(message)}</span>'


def _is_submit(content) -> bool:
    """Whether a Text widget's custom message is the one Enter sends."""
    return isinstance(content, dict) and content.get("event") == "submit"


ENTER_GRACE_S = 1.0  # how long Enter waits for a text that may not come (see on_enter)
CLICK_FRESH_S = 0.5  # a text that reached the kernel this recently before a click is the click's own


def on_enter(box: widgets.Text, callback, grace_s: float = ENTER_GRACE_S, fresh_s: float = CLICK_FRESH_S):
    """Call ``callback()`` when Enter is pressed in the text ``box``, once the box's whole text has
    reached the kernel; leaving the box (blur) calls nothing. Returns ``press()``, for a button
    beside the box: it calls ``callback()`` the same way.

    Neither Enter's "submit" nor a button's "click" can be trusted to come after the box's text:
    - ipywidgets' Text view (7 and 8) sends "submit" from the keypress, before the browser's
      "change" event sends the value; and while the kernel has not yet acknowledged the box's
      previous value, newer values wait but "submit" and "click" go at once.
    - ipykernel 7 may dispatch widget messages concurrently (while another message holds the
      shell, or on another subshell's thread), so a click can be handled before the text that its
      own blur sent.
    Read too early, the text is cut short ("H" for "How are you?"), stale, or empty.

    So the box sends its value only on Enter or blur (``continuous_update=False``), and a press waits
    for it: the value that arrives next from the browser calls ``callback``. A click whose text
    arrived within ``fresh_s`` seconds before it (the normal order) calls at once. A press that no new
    value follows (nothing typed since the text last reached the kernel) calls ``grace_s`` seconds
    later, counted from when the kernel is free to take a value (not while a callback of this box
    runs: the browser holds the value back until the kernel is done with the previous one). Without
    a running event loop (a script or a test calls the handlers) the callback runs at once.
    """
    import asyncio
    import itertools
    import threading
    import time

    box.continuous_update = False
    lock, presses = threading.Lock(), itertools.count(1)
    # waiting: the number of the press that awaits its text (0: none); arrived: when the browser's
    # newest text reached the kernel, None once a callback has taken it
    state = {"waiting": 0, "running": False, "arrived": None}

    def wait_grace(press: int) -> None:
        try:
            asyncio.get_running_loop().call_later(grace_s, take, press)
        except RuntimeError:  # no event loop here: take it now
            take(press)

    def take(press: int | None = None) -> None:
        """Run the callback for the waiting press (for ``press``: only if that one still waits; for a
        text that came: only if no callback runs, else the one running takes the press up when it ends)."""
        with lock:
            if not state["waiting"] or press not in (None, state["waiting"]) or (press is None and state["running"]):
                return
            state.update(waiting=0, running=True, arrived=None)
        try:
            callback()
        finally:
            with lock:
                state["running"], waiting = False, state["waiting"]
            if waiting:  # pressed again meanwhile: its text comes once the kernel is done with this one
                wait_grace(waiting)

    def press(text_may_follow: bool = False) -> None:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return callback()
        with lock:
            number = state["waiting"] = next(presses)
            running, arrived = state["running"], state["arrived"]
        if running:
            return  # the callback running takes this press up when it ends
        if not text_may_follow and arrived is not None and time.monotonic() - arrived < fresh_s:
            take(number)  # a click after the text its blur sent
        else:
            wait_grace(number)  # the text is on its way, or nothing new was typed

    def on_value(_change):
        if "value" in getattr(box, "_property_lock", {}):  # sent by the browser, not set by the kernel
            with lock:
                state["arrived"] = time.monotonic()
            take()

    box.on_msg(lambda _w, content, _b: press(text_may_follow=True) if _is_submit(content) else None)
    box.observe(on_value, names="value")
    return press


class FigureBox(widgets.VBox):
    """A VBox whose main picture is a matplotlib figure shown in ``self.image``.

    ``show(fig)`` renders the figure into the Image widget, at its own size (``dpi`` pixels an
    inch, scaled down only where the output is narrower), and keeps it as ``self.figure`` (to
    inspect it, or ``self.figure.savefig(...)``). ``show_error(message)`` puts the message in
    place of the picture. When displayed, the box adds its current picture as ``image/png``
    beside the live widget, for viewers that cannot run widgets. Subclass it for a new explorer:
    build the controls, pass them as ``children``, and call ``show`` from a redraw method.
    """

    def __init__(self, children=(), dpi: int = 96, **kwargs):
        # align_self: a column of a flex box stretches its children to its width, which blew
        # small pictures up and, with max_width, squeezed wide ones; the explicit width keeps
        # the PNG at its own size.
        self.image = widgets.Image(format="png", layout=widgets.Layout(max_width="100%", height="auto",
                                                                       align_self="flex-start"))
        self.figure = None
        self.dpi = dpi
        super().__init__(children=list(children) + [self.image], **kwargs)

    def show(self, fig) -> None:
        """Show a matplotlib Figure as the picture."""
        self.figure = fig
        png = figure_png(fig, self.dpi)
        self.image.width = str(png_size(png)[0])
        self.image.value = png

    def show_error(self, message: str, title=None) -> None:
        """Say what is wrong where the picture was (and in the static copy of the notebook)."""
        self.show(plots.plot_message(message, title=title))

    def static_png(self) -> bytes:
        """The picture that stands in for the widget where widgets cannot run (PNG bytes)."""
        return bytes(self.image.value)

    def _repr_mimebundle_(self, **kwargs):
        plaintext = repr(self)
        data = {"text/plain": plaintext[:110] + "…" if len(plaintext) > 110 else plaintext,
                "application/vnd.jupyter.widget-view+json": {"version_major": 2, "version_minor": 0,
                                                             "model_id": self.model_id}}
        metadata = {}
        png = self.static_png()
        if png:
            data["image/png"] = base64.b64encode(png).decode("ascii")
            width, height = png_size(png)
            metadata["image/png"] = {"width": width, "height": height}
        return data, metadata

    if IPYWIDGETS_7:
        def _ipython_display_(self, **kwargs):
            from IPython.display import display
            data, metadata = self._repr_mimebundle_()
            display(data, metadata=metadata, raw=True)
            self._handle_displayed(**kwargs)


# --------------------------------------------------------------------------- next token


class NextTokenExplorer(FigureBox):
    """Watch the next-token distribution go through repetition penalty, temperature, top-k and
    top-p, then grow the prompt one token at a time.

    Controls: ``prompt`` (Textarea), ``temperature``, ``top_k`` (0 = off), ``top_p`` (1 = off),
    ``repetition_penalty`` sliders, ``seed`` (a text box: Enter reseeds, even with the same
    number); buttons ``argmax_button`` (append the most likely token), ``sample_button`` (append
    a token drawn from the final distribution, reproducibly from ``seed``: the n-th draw after
    seeding is the n-th token ``mg.generate`` would draw with that seed and these knobs),
    ``undo_button``. State: ``ids`` (the context's token ids), ``distribution`` (the current
    NextTokenDistribution, None while the prompt is not valid), ``error`` (what is wrong with
    the prompt, or None), ``status`` (HTML line). ``top()`` lists the final candidates.
    """

    def __init__(self, model, tokenizer, prompt: str = "ROMEO:", n: int = 15, stages="all", seed: int = 0):
        self.model, self.tokenizer, self.n, self.stages = model, tokenizer, n, stages
        self.ids: list[int] = []
        self.distribution = None
        self.error = None
        self._syncing = False  # True while the prompt box is being set from self.ids
        slider = dict(continuous_update=False, style={"description_width": "initial"})
        self.prompt = widgets.Textarea(value=prompt, description="prompt", continuous_update=False,
                                       layout=widgets.Layout(width="95%", height="4em"))
        self.temperature = widgets.FloatSlider(value=1.0, min=0.0, max=2.0, step=0.05, description="temperature",
                                               **slider)
        self.top_k = widgets.IntSlider(value=0, min=0, max=min(tokenizer.vocab_size, 100),
                                       description="top-k (0 = off)", **slider)
        self.top_p = widgets.FloatSlider(value=1.0, min=0.05, max=1.0, step=0.05, description="top-p (1 = off)",
                                         **slider)
        self.repetition_penalty = widgets.FloatSlider(value=1.0, min=1.0, max=3.0, step=0.05,
                                                      description="repetition penalty", **slider)
        # A Text box, not an IntText: pressing Enter in it sends "submit" even when the number is
        # unchanged, so typing the same seed again starts its sequence of draws again. A new number
        # reseeds through the value (sent on Enter or blur): "submit" comes before that value, so
        # it may reseed the old number first, which the new value's reseed then replaces.
        self.seed = widgets.Text(value=str(seed), description="seed", continuous_update=False,
                                 layout=widgets.Layout(width="12em"))
        self.argmax_button = widgets.Button(description="take argmax", tooltip="append the most likely token")
        self.sample_button = widgets.Button(description="sample",
                                            tooltip="append a token drawn from the final distribution")
        self.undo_button = widgets.Button(description="undo", tooltip="remove the last token")
        self.status = widgets.HTML()
        self._generator = torch.Generator()
        self._seed_value = int(seed)

        for w in (self.temperature, self.top_k, self.top_p, self.repetition_penalty):
            w.observe(lambda _: self.redraw(), names="value")
        self.prompt.observe(self._on_prompt, names="value")
        self.seed.observe(lambda _: self.reseed(), names="value")
        self.seed.on_msg(self._on_seed_msg)
        self.argmax_button.on_click(lambda _: self.step(greedy=True))
        self.sample_button.on_click(lambda _: self.step(greedy=False))
        self.undo_button.on_click(lambda _: self.undo())
        super().__init__([
            self.prompt,
            widgets.HBox([widgets.VBox([self.temperature, self.top_k]),
                          widgets.VBox([self.top_p, self.repetition_penalty])]),
            widgets.HBox([self.argmax_button, self.sample_button, self.undo_button, self.seed]),
            self.status,
        ])
        self.reseed()
        self._on_prompt({"new": prompt})

    def settings(self) -> dict:
        """The knobs as ``next_token_distribution`` takes them (off = None)."""
        return dict(temperature=self.temperature.value, top_k=self.top_k.value or None,
                    top_p=self.top_p.value if self.top_p.value < 1 else None,
                    repetition_penalty=self.repetition_penalty.value)

    def reseed(self) -> None:
        """Start the draws of ``sample`` again from the seed in the ``seed`` box."""
        try:
            self._seed_value = int(str(self.seed.value).strip())
        except ValueError:
            self.status.value = _error(f"the seed must be a whole number, got {self.seed.value!r}")
            return
        self._generator.manual_seed(self._seed_value)
        if self.distribution is not None:
            self.status.value = self._context_line(f"seed {self._seed_value}: draws start again")

    def _on_seed_msg(self, _widget, content, _buffers):
        if isinstance(content, dict) and content.get("event") == "submit":  # Enter in the seed box
            self.reseed()

    def _invalid(self, message: str) -> None:
        """Forget the context after bad input, and say what was wrong."""
        self.error, self.distribution = message, None
        self.status.value = _error(message)
        self.show_error(message, title="no distribution: fix the prompt")

    def _on_prompt(self, change):
        if self._syncing:
            return
        text = change["new"]
        if not text:
            self.ids = []
            return self._invalid("the prompt is empty: type some text for the model to continue")
        try:
            self.ids = list(self.tokenizer.encode(text))
        except ValueError as e:  # e.g. a character the tokenizer does not know
            self.ids = []
            return self._invalid(str(e))
        self.redraw()

    def _set_ids(self, ids, note=""):
        self.ids = list(ids)
        self._syncing = True
        try:
            self.prompt.value = self.tokenizer.decode(self.ids)
        finally:
            self._syncing = False
        self.redraw(note)

    def _context_line(self, note: str = "") -> str:
        block = self.model.config.block_size
        line = f"{count(len(self.ids), 'token')} in the context"
        if len(self.ids) > block:
            line += f"; the model sees the last {block} (its block_size)"
        return line + (f" · {html.escape(note)}" if note else "")

    def redraw(self, note: str = "") -> None:
        """Recompute the distribution for the current context and knobs, and draw it."""
        if self.error is not None and not self.ids:
            return  # the prompt is not valid: keep saying so
        try:
            dist = sampling.next_token_distribution(self.model, self.tokenizer, self.ids, **self.settings())
        except ValueError as e:
            return self._invalid(str(e))
        self.error, self.distribution = None, dist
        tail = self.tokenizer.decode(self.ids[-40:])
        self.show(plots.plot_next_token_distribution(
            dist, self.n, self.stages, settings=self.settings(),
            title=f"next token after {('…' if len(self.ids) > 40 else '') + tail!r}"))
        self.status.value = self._context_line(note)

    def step(self, greedy: bool):
        """Append one token, the argmax (greedy) or a draw from the final distribution; returns
        its id (None, with a note in ``status``, while the prompt gives no distribution)."""
        if self.distribution is None:
            self.status.value = _error("nothing to pick from: fix the prompt first (the picture says what is wrong)")
            return None
        final = self.distribution.final
        i = int(final.argmax()) if greedy else int(torch.multinomial(final, 1, generator=self._generator))
        how = "took the argmax" if greedy else "sampled"
        self._set_ids(self.ids + [i], f"{how} '{visible(self.tokenizer.token_str(i))}' (p = {float(final[i]):.1%})")
        return i

    def undo(self) -> None:
        """Remove the last token of the context."""
        if self.distribution is None:
            self.status.value = _error("nothing to undo: fix the prompt first")
        elif self.ids:
            self._set_ids(self.ids[:-1], "removed the last token")

    def top(self, n: int = 5) -> list:
        """The n most likely next tokens of the final distribution: [(token_str, id, probability)]."""
        if self.distribution is None:
            raise ValueError(f"there is no distribution: {self.error or 'type a prompt'}")
        return self.distribution.top(n, "final")


# --------------------------------------------------------------------------- attention


class AttentionExplorer(FigureBox):
    """Look at a model's attention: pick a layer, a head (or all heads) and a query token, and
    see the heatmap (rows: queries, columns: keys, labelled with the tokens) and the bars of
    where that query looks.

    Controls: ``text`` (Textarea: Enter types a newline), ``layer``, ``head`` ("all" or an
    index) and ``query`` (a position) dropdowns. State: ``tokens`` (T strings), ``attentions``
    (one [H, T, T] tensor per layer), both empty while the text is not valid, and ``error``
    (what is wrong with the text, or None). ``weights()`` and ``query_weights()`` return the
    numbers of the picture.
    """

    def __init__(self, model, tokenizer, text: str = "ROMEO:\nBut soft, what light", layer: int = 0,
                 head="all", query=None):
        self.model, self.tokenizer = model, tokenizer
        self.tokens, self.attentions = [], ()
        self.error = None
        self._busy = False  # True while options are being replaced, so that they draw once
        L, H = model.config.n_layer, model.config.n_head
        layer, head, query = (int(v) if isinstance(v, numbers.Integral) else v for v in (layer, head, query))
        if not (isinstance(layer, int) and 0 <= layer < L):
            raise ValueError(f"layer must be an index in 0..{L - 1}, got {layer!r}")
        if head != "all" and not (isinstance(head, int) and 0 <= head < H):
            raise ValueError(f"head must be 'all' or an index in 0..{H - 1}, got {head!r}")
        self.text = widgets.Textarea(value=text, description="text", continuous_update=False,
                                     layout=widgets.Layout(width="95%", height="4em"))
        self.layer = widgets.Dropdown(options=[(f"layer {i}", i) for i in range(L)], value=layer, description="layer")
        self.head = widgets.Dropdown(options=[("all heads", "all")] + [(f"head {h}", h) for h in range(H)],
                                     value=head, description="head")
        self.query = widgets.Dropdown(description="query token")
        self.status = widgets.HTML()
        self.text.observe(lambda _: self._on_text(), names="value")
        for w in (self.layer, self.head, self.query):
            w.observe(lambda _: self.redraw(), names="value")
        super().__init__([self.text, widgets.HBox([self.layer, self.head, self.query]), self.status])
        self._on_text(query)

    def _on_text(self, query=None):
        try:
            tokens, attentions = plots.attention_maps(self.model, self.tokenizer, self.text.value)
        except ValueError as e:  # empty, too long, or a character the tokenizer does not know
            self.error, self.tokens, self.attentions = str(e), [], ()
            self._set_queries([], None)
            self.status.value = _error(self.error)
            self.show_error(self.error, title="no attention to show: fix the text")
            return
        if query is not None and not (isinstance(query, int) and 0 <= query < len(tokens)):
            raise ValueError(f"query must be a position in 0..{len(tokens) - 1}, got {query!r}")
        self.error, self.tokens, self.attentions = None, tokens, attentions
        self._set_queries([(f"{i}: {visible(t)}", i) for i, t in enumerate(tokens)],
                          len(tokens) - 1 if query is None else query)
        self.redraw()

    def _set_queries(self, options, value):
        self._busy = True
        try:
            self.query.options = options
            self.query.value = value
        finally:
            self._busy = False

    def redraw(self) -> None:
        """Draw the current layer / head / query (nothing while the text is not valid)."""
        if self._busy or not self.tokens:
            return
        self.show(plots.plot_attention_layer(self.attentions, self.tokens, self.layer.value,
                                             self.head.value, self.query.value))
        self.status.value = (f"{count(len(self.tokens), 'token')} · each row sums to 1 · grey cells are the "
                             f"future, hidden by the causal mask")

    def _check(self):
        if not self.tokens:
            raise ValueError(f"there is no attention to read: {self.error or 'type a text'}")

    def weights(self):
        """The picture's data: [T, T] for one head, [H, T, T] for all heads of the layer."""
        self._check()
        a = self.attentions[self.layer.value]
        return a if self.head.value == "all" else a[self.head.value]

    def query_weights(self):
        """Where the query token looks: its [T] row of weights (the mean over heads for "all"),
        as the bars show it."""
        w = self.weights()
        row = w[..., self.query.value, :]
        return row.mean(0) if self.head.value == "all" else row


# --------------------------------------------------------------------------- tokenizers


class TokenizerExplorer(FigureBox):
    """Type text, see it cut into tokens (coloured boxes with their ids) by one or several
    tokenizers, and how many tokens each needs.

    tokenizers: one tokenizer or {name: tokenizer}. Controls: ``text`` (Textarea). Outputs:
    ``views`` ({name: HTML widget}), ``summary`` (HTML), ``counts`` ({name: token count} of the
    tokenizers that could encode the text), ``errors`` ({name: why it could not}).
    """

    def __init__(self, tokenizers, text: str = "ROMEO:\nBut soft, what light through yonder window breaks?"):
        self.tokenizers = tokenizers if isinstance(tokenizers, dict) else {type(tokenizers).__name__: tokenizers}
        if not self.tokenizers:
            raise ValueError("give at least one tokenizer")
        self.counts: dict[str, int] = {}
        self.errors: dict[str, str] = {}
        self.text = widgets.Textarea(value=text, description="text", continuous_update=False,
                                     layout=widgets.Layout(width="95%", height="6em"))
        self.summary = widgets.HTML()
        self.views = {name: widgets.HTML() for name in self.tokenizers}
        self.text.observe(lambda _: self.redraw(), names="value")
        panels = [widgets.VBox([widgets.HTML(f"<b>{html.escape(name)}</b>"), view])
                  for name, view in self.views.items()]
        super().__init__([self.text, self.summary] + panels)
        self.image.layout.display = "none"  # the live view is HTML; the image is for static viewers
        self.redraw()

    def redraw(self) -> None:
        """Tokenize the text with every tokenizer and show the boxes and counts."""
        text = self.text.value
        self.counts, self.errors = {}, {}
        for name, tok in self.tokenizers.items():
            try:
                self.views[name].value = plots.tokens_html(tok, text)
                self.counts[name] = len(tok.encode(text))
            except ValueError as e:
                self.errors[name] = str(e)
                self.views[name].value = _error(str(e))
        rows = "".join(f"<tr><td>{html.escape(name)}</td><td style='text-align:right'>{self.counts[name]}</td>"
                       f"<td style='text-align:right'>{len(text) / self.counts[name] if self.counts[name] else 0:.2f}"
                       f"</td></tr>" if name in self.counts else
                       f"<tr><td>{html.escape(name)}</td><td colspan=2>{_error('cannot encode this text')}</td></tr>"
                       for name in self.tokenizers)
        self.summary.value = (f"<table><tr><th>tokenizer</th><th>tokens</th><th>characters per token</th></tr>"
                              f"{rows}</table>")

    def static_png(self) -> bytes:
        """Every tokenizer's boxes, or why it could not encode the text, as one PNG."""
        self.figure = plots.plot_tokens(self.tokenizers, self.text.value, errors="show")
        return figure_png(self.figure, self.dpi)


# --------------------------------------------------------------------------- embeddings


class EmbeddingExplorer(FigureBox):
    """Token embeddings in 2-D (PCA of ``wte``): pick a token, see where it sits and which
    tokens' embeddings point the most nearly the same way (cosine similarity).

    tokens: which tokens to offer and plot (default: the whole vocabulary up to 256 tokens).
    Controls: ``token`` (Dropdown of ids), ``k`` (IntSlider). Outputs: ``neighbours`` (HTML
    table); state ``nearest`` (list of (token_str, id, similarity)).
    """

    def __init__(self, model, tokenizer, token=None, tokens=None, k: int = 8):
        self.model, self.tokenizer = model, tokenizer
        V = tokenizer.vocab_size
        ids = list(range(min(V, 256))) if tokens is None else [plots.token_id(tokenizer, t) for t in tokens]
        self.shown_ids = ids
        if token is None:
            try:
                token = plots.token_id(tokenizer, "e")
            except ValueError:
                token = ids[0]
        first = plots.token_id(tokenizer, token)
        if first not in ids:
            ids.append(first)
        self.nearest = []
        self.token = widgets.Dropdown(options=[(visible(tokenizer.token_str(i)), i) for i in ids],
                                      value=first, description="token")
        self.k = widgets.IntSlider(value=k, min=1, max=min(20, V - 1), description="neighbours",
                                   continuous_update=False)
        self.neighbours = widgets.HTML()
        for w in (self.token, self.k):
            w.observe(lambda _: self.redraw(), names="value")
        super().__init__([widgets.HBox([self.token, self.k]), self.neighbours])
        self.redraw()

    def redraw(self) -> None:
        """Draw the projection with the picked token and list its nearest neighbours."""
        i, k = self.token.value, self.k.value
        self.nearest = plots.nearest_neighbours(self.model, self.tokenizer, i, k)
        self.show(plots.plot_embeddings_2d(self.model, self.tokenizer, self.shown_ids, highlight=i, k=k))
        rows = "".join(f"<tr><td><code>{html.escape(visible(s))}</code></td><td>{j}</td><td>{sim:+.3f}</td></tr>"
                       for s, j, sim in self.nearest)
        self.neighbours.value = (f"nearest to <code>{html.escape(visible(self.tokenizer.token_str(i)))}</code> "
                                 f"(cosine similarity of embeddings):<table><tr><th>token</th><th>id</th>"
                                 f"<th>cosine</th></tr>{rows}</table>")


# --------------------------------------------------------------------------- training


class TrainingMonitor:
    """A Trainer callback that draws the loss and learning-rate curves while training runs.

        monitor = TrainingMonitor(every=20)
        monitor                                  # show it (last line of a cell)
        mg.Trainer(model, train, val, cfg, callbacks=[monitor]).fit()

    Called as ``monitor(trainer, event, stats)`` with event "step", "eval" or "end": it redraws
    every ``every`` steps, after each evaluation and at the end, from ``trainer.history`` (or,
    for a trainer without one, from the stats it is given). ``widget`` is the box to display;
    ``history`` is what it draws, ``draws`` how many times it has drawn. Shown with ``display``,
    its output is updated at the end, so a saved notebook keeps the final curves.
    """

    def __init__(self, every: int = 20, title=None):
        if not isinstance(every, int) or every < 1:
            raise ValueError(f"every must be a positive int (steps between redraws), got {every!r}")
        self.every, self.title = every, title
        self.history: dict = {}
        self.draws = 0
        self._steps = 0
        self._handle = None
        self.status = widgets.HTML("waiting for the first training step")
        self.widget = FigureBox([self.status])
        self.redraw()

    def __call__(self, trainer, event: str, stats: dict) -> None:
        if not getattr(trainer, "is_main_process", True):
            return  # under DDP every process calls back; one picture is enough
        history = getattr(trainer, "history", None)
        if isinstance(history, dict):
            self.history = history
        else:
            self._record(event, stats or {})
        if event == "step":
            self._steps += 1
            if self._steps % self.every == 0:
                self.redraw()
        elif event in ("eval", "end"):
            self.redraw()
            if event == "end" and self._handle is not None:
                data, metadata = self.widget._repr_mimebundle_()
                self._handle.update(data, metadata=metadata, raw=True)  # the final curves, also in the static copy

    def _record(self, event, stats):
        h = self.history
        if event == "step":
            for key in ("iter", "loss", "lr", "grad_norm"):
                if key in stats:
                    h.setdefault(key, []).append(stats[key])
        elif event == "eval":
            h.setdefault("eval_iter", []).append(stats.get("eval_iter", stats.get("iter")))
            for key, name in (("val_loss", "val_loss"), ("train_eval_loss", "train_loss")):
                if key in stats or name in stats:
                    h.setdefault(key, []).append(stats.get(key, stats.get(name)))

    def redraw(self) -> None:
        """Draw the curves of the history so far."""
        self.widget.show(plots.plot_loss_curves(self.history, title=self.title))
        self.draws += 1
        h = self.history
        if h.get("iter"):
            val = h.get("val_loss") or [math.nan]
            parts = [f"step {h['iter'][-1] + 1}", f"loss {h['loss'][-1]:.4f}" if h.get("loss") else "",
                     f"lr {h['lr'][-1]:.2e}" if h.get("lr") else "",
                     "" if math.isnan(val[-1]) else f"val loss {val[-1]:.4f}"]  # NaN: no validation split
            self.status.value = " · ".join(p for p in parts if p)

    def _ipython_display_(self):
        from IPython.display import display
        data, metadata = self.widget._repr_mimebundle_()
        self._handle = display(data, metadata=metadata, raw=True, display_id=True)
