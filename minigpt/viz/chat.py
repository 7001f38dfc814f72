"""The distribution behind every word: chat with a model and see what it weighed at each token.

    mg.viz.ChatWidget(model, tok, system="You are a helpful assistant.")
    mg.viz.CompareSystemPrompts(model, tok, ("You are a pirate.", "Answer in one short sentence."),
                                question="What is the moon?")

``ChatWidget`` is a chat box: a system-prompt box, a conversation view, a text input with a send
button, and the sampling knobs. Each token of the newest reply is a button coloured by the
probability it had in the distribution it was drawn from (after temperature, top-k and top-p:
red = unlikely, green = likely). Clicking a token selects it: the panel below lists the top 10 of
that distribution (and the model's own probabilities before the knobs), and ``regenerate from
here`` puts the token picked in ``instead`` at that place and writes the rest of the reply again
(a branch). ``CompareSystemPrompts`` asks one question under two system prompts, side by side,
with the same seed, so every difference comes from the system prompt.

The conversation is a ``minigpt.chat.Chat``, so the numbers are those of the package's sampling
knobs and the widget works with any chat model and tokenizer the package can chat with
(SmolLM2, or a model you fine-tuned yourself). Only core ipywidgets are used (buttons, HTML,
dropdowns), so clicking works in JupyterLab and on Colab, with ipywidgets 7 or 8, without
custom JavaScript. Displaying a widget also offers a PNG of the reply and the selected token's
distribution (``static_png``), which is what GitHub and other static viewers show.

Controls and state are attributes, so a notebook or a test can drive a widget from code:
``w.message.value = "Hi"; w.send_button.click()``, ``w.reply_view.select(3)``,
``w.reply_view.alternative.value = token_id; w.reply_view.branch_button.click()``, and read
``w.reply`` (the last ``Reply``), ``w.reply_view.selected``, ``w.error``.
"""

from __future__ import annotations

import colorsys
import html
import textwrap
from typing import Optional, Sequence

import ipywidgets as widgets

from ..chat import Chat
from .plots import visible
from .widgets import FigureBox, _error, figure_png, on_enter

TOP_N = 10  # alternatives listed for a selected token


def probability_colour(p: float) -> str:
    """A background colour for a token drawn with probability p: red (0) through amber to green (1),
    light enough for dark text on it."""
    p = min(max(float(p), 0.0), 1.0)
    r, g, b = colorsys.hls_to_rgb(p / 3, 0.78, 0.85)  # hue 0 (red) .. 1/3 (green)
    return f"#{int(r * 255):02x}{int(g * 255):02x}{int(b * 255):02x}"


def _show(token: str) -> str:
    """A token as a label: spaces visible, a line break as ↵ (as in the animations)."""
    return visible(token).replace("\n", "↵").replace("\\n", "↵") or "∅"


def _legend() -> str:
    stops = ", ".join(probability_colour(p / 4) for p in range(5))
    return ("<div style='font-size:0.85em;display:flex;align-items:center;gap:6px'>probability of each token in "
            f"the distribution it was drawn from: 0 <span style='display:inline-block;width:120px;height:10px;"
            f"background:linear-gradient(to right, {stops})'></span> 1 · click a token to see its distribution</div>")


def _span(step) -> str:
    """One token of an earlier reply as a coloured span, its probability in the tooltip."""
    return (f"<span title='p = {step.prob:.1%}' style='background:{probability_colour(step.prob)};"
            f"white-space:pre-wrap;color:#111'>{html.escape(step.token)}</span>")


def _top_with_chosen(step) -> list:
    """The top TOP_N of a step's distribution as (token, id, p), plus the chosen token at the end
    when it is not among them (it was drawn, or picked for a branch, from further down)."""
    top = list(step.top[:TOP_N])
    if all(i != step.token_id for _, i, _ in top):
        top.append((step.token, step.token_id, step.prob))
    return top


def _bubble(role: str, body_html: str) -> str:
    colour = {"user": "#e8f0fe", "assistant": "#f6f6f6", "system": "#fff4e0"}[role]
    return (f"<div style='margin:3px 0;padding:4px 8px;border-radius:6px;background:{colour};color:#111'>"
            f"<b>{role}</b>: {body_html}</div>")


# --------------------------------------------------------------------------- one reply, token by token


class ReplyView(widgets.VBox):
    """A reply as one button per token, coloured by probability; a click selects the token and
    shows the distribution it was drawn from; ``branch_button`` writes the reply again from
    there with the token chosen in ``alternative``.

    chat:      the ``minigpt.chat.Chat`` whose ``last_reply`` is shown and branched.
    on_branch: called with no arguments after a branch was written (e.g. to redraw a picture).
    State: ``reply`` (the Reply shown, or None), ``selected`` (position of the selected token),
    ``buttons`` (one per token), ``details`` (HTML: the top-10 table), ``status``.
    """

    def __init__(self, chat: Chat, on_branch=None, knobs=None):
        self.chat, self.on_branch, self.knobs = chat, on_branch, knobs or (lambda: {})
        self.reply = None
        self.selected: Optional[int] = None
        self.buttons: list = []
        self.tokens = widgets.Box(layout=widgets.Layout(display="flex", flex_flow="row wrap", width="100%"))
        self.details = widgets.HTML()
        self.alternative = widgets.Dropdown(description="instead", options=[], layout=widgets.Layout(width="20em"))
        self.branch_button = widgets.Button(description="regenerate from here", disabled=True,
                                            tooltip="keep the reply up to the selected token, put the token "
                                                    "chosen in 'instead' there, and write the rest again")
        self.status = widgets.HTML()
        self.details.add_class("minigpt-details")
        self.status.add_class("minigpt-branch-status")
        self.branch_button.on_click(lambda _: self.branch())
        super().__init__([self.tokens, widgets.HTML(_legend()), self.details,
                          widgets.HBox([self.alternative, self.branch_button]), self.status])

    def set_reply(self, reply, selected: Optional[int] = None) -> None:
        """Show ``reply`` (a Reply, or None to clear), selecting the token at ``selected`` (default:
        the least likely token, the most interesting place to look)."""
        self.reply = reply
        self.buttons = []
        if reply is None or not reply.steps:
            self.tokens.children = ()
            self.selected = None
            self.details.value, self.alternative.options = "", []
            self.branch_button.disabled = True
            return
        for i, step in enumerate(reply.steps):
            b = widgets.Button(description=_show(step.token), tooltip=f"token {i}: p = {step.prob:.1%}",
                               layout=widgets.Layout(width="auto", height="auto", margin="1px", padding="0 3px"))
            b.style.button_color = probability_colour(step.prob)
            b.add_class("minigpt-token")  # a name for the token buttons, for styles and browser tests
            b.on_click(lambda _, i=i: self.select(i))
            self.buttons.append(b)
        self.tokens.children = tuple(self.buttons)
        if selected is None:
            selected = min(range(len(reply.steps)), key=lambda i: reply.steps[i].prob)
        self.select(selected)

    def select(self, position: int) -> None:
        """Select the token at ``position``: show the top of its distribution and offer its
        alternatives in ``alternative``."""
        if self.reply is None or not 0 <= position < len(self.reply.steps):
            n = 0 if self.reply is None else len(self.reply.steps)
            raise ValueError(f"position must be a token of the reply, 0..{n - 1}, got {position!r}")
        if self.selected is not None and self.selected < len(self.buttons):
            self.buttons[self.selected].layout.border = ""
            self.buttons[self.selected].style.font_weight = ""
        self.selected = position
        self.buttons[position].layout.border = "2px solid #222"
        self.buttons[position].style.font_weight = "bold"
        step = self.reply.steps[position]
        raw = {i: p for _, i, p in step.raw_top}
        bold = " style='font-weight:bold'"
        rows = "".join(
            f"<tr{bold if i == step.token_id else ''}><td><code>{html.escape(_show(s))}</code></td>"
            f"<td style='width:220px'><div style='background:{probability_colour(p)};width:{max(1, round(200 * p))}px;"
            f"height:12px'></div></td><td style='text-align:right'>{p:.1%}</td>"
            f"<td style='text-align:right;color:#777'>{f'{raw[i]:.1%}' if i in raw else '·'}</td></tr>"
            for s, i, p in _top_with_chosen(step))
        self.details.value = (
            f"<div>token {position}, <code>{html.escape(_show(step.token))}</code>, was drawn with p = "
            f"{step.prob:.1%} from:</div><table><tr><th>token</th><th></th><th>p (drawn from)</th>"
            f"<th>model's own p</th></tr>{rows}</table>")
        # greedy draws from a single token: then offer the model's own runners-up
        pool = step.top if len(step.top) > 1 else step.raw_top
        options = [(f"{_show(s)}  ({p:.1%})", i) for s, i, p in pool[:TOP_N] if i != step.token_id]
        self.alternative.options = options
        if options:
            self.alternative.value = options[0][1]
        self.branch_button.disabled = not options or self.reply is not self.chat.last_reply

    def branch(self, token_id: Optional[int] = None):
        """Write the reply again from the selected token, with ``token_id`` (default: the one in
        ``alternative``) in its place; show and return the new Reply (None, with a note in
        ``status``, when there is nothing to branch from)."""
        if self.reply is None or self.selected is None:
            self.status.value = _error("select a token of the reply first")
            return None
        if self.reply is not self.chat.last_reply:
            self.status.value = _error("only the newest reply can be written again")
            return None
        token_id = self.alternative.value if token_id is None else token_id
        if token_id is None:
            self.status.value = _error("no other token to pick here: the distribution had only this one")
            return None
        position = self.selected
        self.status.value = "writing the branch…"
        self.branch_button.disabled = True
        try:
            reply = self.chat.branch(position, int(token_id), **self.knobs())
        except ValueError as e:
            self.status.value = _error(str(e))
            self.branch_button.disabled = False
            return None
        self.status.value = (f"branched at token {position}: <code>{html.escape(_show(reply.steps[position].token))}"
                             f"</code> instead of <code>{html.escape(_show(self.reply.steps[position].token))}</code>"
                             f"; the tokens after it were written again")
        self.set_reply(reply, selected=position)
        if self.on_branch is not None:
            self.on_branch()
        return reply


# --------------------------------------------------------------------------- the static picture


def plot_replies(panels: Sequence[dict], width: float = 10.0, chars_per_line: Optional[int] = None):
    """A picture of one or more replies side by side: each token a box coloured by its probability,
    the selected one outlined, and under it the top of the distribution it was drawn from.

    panels: dicts with ``reply`` (a Reply), and optionally ``title`` (e.g. the system prompt),
            ``question`` (the user's message), ``selected`` (a token position).
    Returns a matplotlib Figure (closed to pyplot; display it or save it).
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyBboxPatch

    n = max(1, len(panels))
    char_width = 8.5 * 0.6 / 72  # inches: one character of the 8.5 pt monospaced token labels
    chars_per_line = chars_per_line or max(20, int((width / n - 0.3) / char_width) - 4)
    layouts = []
    for panel in panels:
        reply = panel["reply"]
        lines, line, used = [], [], 0
        for i, step in enumerate(reply.steps if reply is not None else []):
            label = _show(step.token)
            if used + len(label) + 1 > chars_per_line and line:
                lines.append(line)
                line, used = [], 0
            line.append((i, label, step.prob))
            used += len(label) + 1.0
            if label.endswith("↵"):  # a line break in the reply ends the line of the picture too
                lines.append(line)
                line, used = [], 0
        if line:
            lines.append(line)
        head = []
        if panel.get("title"):
            head += textwrap.wrap(panel["title"], chars_per_line)[:3]
        if panel.get("question"):
            head += textwrap.wrap("user: " + panel["question"], chars_per_line)[:3]
        layouts.append((head, lines))
    text_rows = max(len(h) + max(1, len(lines)) for h, lines in layouts)
    height = 0.9 + 0.28 * text_rows + 2.6
    fig = plt.figure(figsize=(width, height))
    plt.close(fig)
    top_frac = (0.28 * text_rows + 0.6) / height
    for k, (panel, (head, lines)) in enumerate(zip(panels, layouts)):
        ax = fig.add_axes([k / n + 0.01, 1 - top_frac, 1 / n - 0.02, top_frac - 0.02])
        ax.set_xlim(0, chars_per_line)
        ax.set_ylim(-(len(head) + max(1, len(lines))), 0.6)
        ax.axis("off")
        y = 0
        for row in head:
            ax.text(0, y, row, fontsize=9, va="center", family="DejaVu Sans", color="#333")
            y -= 1
        selected = panel.get("selected")
        for line in lines:
            x = 0.0
            for i, label, p in line:
                w = len(label) + 0.6
                box = FancyBboxPatch((x, y - 0.38), w, 0.76, boxstyle="round,pad=0.02,rounding_size=0.15",
                                     facecolor=probability_colour(p), edgecolor="#111" if i == selected else "none",
                                     linewidth=1.6)
                ax.add_patch(box)
                ax.text(x + 0.3, y, label, fontsize=8.5, va="center", family="DejaVu Sans Mono",
                        weight="bold" if i == selected else "normal")
                x += w + 0.4
            y -= 1
        if not lines:
            ax.text(0, y, "(no reply yet)", fontsize=9, va="center", color="#777")
        # the selected token's distribution
        reply = panel["reply"]
        bar_ax = fig.add_axes([(k + 0.22) / n, 0.08, 0.72 / n, 2.2 / height])
        if reply is None or selected is None or not reply.steps:
            bar_ax.axis("off")
            continue
        step = reply.steps[selected]
        top = _top_with_chosen(step)
        labels = [_show(s) for s, _, _ in top]
        probs = [p for _, _, p in top]
        colours = [probability_colour(p) for p in probs]
        bar_ax.barh(range(len(top)), probs, color=colours,
                    edgecolor=["#111" if i == step.token_id else "none" for _, i, _ in top])
        bar_ax.set_yticks(range(len(top)), labels, family="DejaVu Sans Mono", fontsize=8)
        bar_ax.invert_yaxis()
        bar_ax.set_xlim(0, 1)
        bar_ax.tick_params(axis="x", labelsize=8)
        bar_ax.set_title(f"token {selected} '{_show(step.token)}' (p = {step.prob:.1%}): the top of the "
                         f"distribution it was drawn from", fontsize=9)
        for j, p in enumerate(probs):
            bar_ax.text(min(p + 0.01, 0.85), j, f"{p:.1%}", va="center", fontsize=7.5)
    return fig


# --------------------------------------------------------------------------- the chat box


def _knob_widgets(chat: Chat):
    slider = dict(continuous_update=False, style={"description_width": "initial"})
    k = chat.knobs
    temperature = widgets.FloatSlider(value=k["temperature"], min=0.0, max=2.0, step=0.05,
                                      description="temperature", **slider)
    top_k = widgets.IntSlider(value=k["top_k"] or 0, min=0, max=100, description="top-k (0 = off)", **slider)
    top_p = widgets.FloatSlider(value=k["top_p"] or 1.0, min=0.05, max=1.0, step=0.05,
                                description="top-p (1 = off)", **slider)
    max_new = widgets.IntSlider(value=chat.max_new_tokens, min=1, max=max(chat.max_new_tokens, 256),
                                description="max new tokens", **slider)
    return temperature, top_k, top_p, max_new


def _make_chat(model_or_chat, tokenizer, system, chat_kwargs) -> Chat:
    if isinstance(model_or_chat, Chat):
        if tokenizer is not None or chat_kwargs:
            raise ValueError("give either a Chat, or a model and its tokenizer (with Chat's keyword arguments), "
                             "not both")
        if system is not None:
            model_or_chat.set_system(system)
        return model_or_chat
    if tokenizer is None:
        raise ValueError("give the model's tokenizer too: ChatWidget(model, tokenizer), or a ready "
                         "minigpt.chat.Chat")
    return Chat(model_or_chat, tokenizer, system=system, **chat_kwargs)


class ChatWidget(FigureBox):
    """A chat box with a chat model that shows the distribution behind every word.

    model, tokenizer: a chat model and its tokenizer (e.g. ``mg.pretrained.load("smollm2-135m-instruct")``),
                      or a ready ``minigpt.chat.Chat`` as the first argument and no tokenizer.
    system:           the system prompt (None: the template's default, if it has one).
    question:         asked at once, so the widget shows a reply before anyone touches it
                      (None: start empty).
    chat_kwargs:      the rest of ``Chat``'s arguments: max_new_tokens, temperature, top_k, top_p,
                      repetition_penalty, seed (default 0, so the stored run repeats), ...

    Controls: ``system_box`` (Textarea; applies to the next message, the turns stay),
    ``message`` (Text; Enter sends), ``send_button``, ``reset_button`` (forget the turns),
    ``temperature``, ``top_k`` (0 = off), ``top_p`` (1 = off), ``max_new_tokens`` sliders.
    Views: ``conversation`` (HTML: the turns before the newest reply, earlier replies coloured
    too), ``live`` (the reply as it streams), ``reply_view`` (a ReplyView of the newest reply),
    ``status``. State: ``chat`` (the Chat), ``turns`` ([(question, Reply)]), ``reply`` (the
    newest Reply or None), ``error`` (what was wrong with the last input, or None).
    """

    def __init__(self, model, tokenizer=None, system: Optional[str] = None,
                 question: Optional[str] = "What is the capital of France?", **chat_kwargs):
        chat_kwargs.setdefault("seed", 0)
        if isinstance(model, Chat):
            chat_kwargs.pop("seed")
        self.chat = _make_chat(model, tokenizer, system, chat_kwargs)
        self.turns: list = []
        self.error: Optional[str] = None
        self.system_box = widgets.Textarea(value=self.chat.system or "", description="system",
                                           placeholder=self._default_system_note(), continuous_update=False,
                                           layout=widgets.Layout(width="95%", height="3.5em"))
        self.temperature, self.top_k, self.top_p, self.max_new_tokens = _knob_widgets(self.chat)
        self.conversation = widgets.HTML()
        self.live = widgets.HTML()
        self.reply_view = ReplyView(self.chat, on_branch=self._after_branch, knobs=self.knobs)
        self.message = widgets.Text(placeholder="type a message and press Enter", description="you",
                                    layout=widgets.Layout(width="70%"))
        self.send_button = widgets.Button(description="send", button_style="primary")
        self.reset_button = widgets.Button(description="new conversation",
                                           tooltip="forget every turn (the system prompt stays)")
        self.status = widgets.HTML()
        press_send = on_enter(self.message, lambda: self.send())  # once the whole text has reached the kernel
        self.send_button.on_click(lambda _: press_send())
        self.reset_button.on_click(lambda _: self.reset())
        self.system_box.observe(lambda _: self._set_system(), names="value")
        super().__init__([
            self.system_box,
            widgets.HBox([widgets.VBox([self.temperature, self.top_k]),
                          widgets.VBox([self.top_p, self.max_new_tokens])]),
            self.conversation, self.live, self.reply_view,
            widgets.HBox([self.message, self.send_button, self.reset_button]),
            self.status,
        ])
        self.image.layout.display = "none"  # the live view is the buttons; the picture is for static viewers
        if question is not None:
            self.send(question)

    def _default_system_note(self) -> str:
        default = self.chat.template.default_system
        return (f"empty: the template's default, {default!r}" if default else "empty: no system prompt")

    @property
    def reply(self):
        """The newest Reply, or None."""
        return self.turns[-1][1] if self.turns else None

    def knobs(self) -> dict:
        """The sampling knobs as ``Chat.ask`` takes them (off = None)."""
        return dict(temperature=self.temperature.value, top_k=self.top_k.value or None,
                    top_p=self.top_p.value if self.top_p.value < 1 else None,
                    max_new_tokens=self.max_new_tokens.value)

    def _set_system(self) -> bool:
        text = self.system_box.value
        try:
            self.chat.set_system(text if text.strip() else None)
        except ValueError as e:
            self.error = str(e)
            self.status.value = _error(self.error)
            return False
        return True

    def send(self, text: Optional[str] = None):
        """Send ``text`` (default: what is in ``message``) as the user's message, stream the reply,
        then show it token by token. Returns the Reply, or None (with ``error`` and ``status``
        saying why, and the message left in its box) after bad input."""
        text = self.message.value if text is None else text
        if not self._set_system():
            return None
        typed, self.message.value = self.message.value, ""  # emptied now: what is typed during the reply stays
        self.send_button.disabled = True
        self.status.value = "writing…"
        self.live.value = ""
        try:
            written = ""
            for piece in self.chat.stream(text, **self.knobs()):
                written += piece
                self.live.value = _bubble("assistant", html.escape(written).replace("\n", "<br>"))
        except ValueError as e:  # an empty message, one that cannot fit the window, a bad knob
            self.error = str(e)
            self.status.value = _error(self.error)
            self.live.value = ""
            self.message.value = typed
            return None
        finally:
            self.send_button.disabled = False
        self.error = None
        reply = self.chat.last_reply
        self.turns.append((text, reply))
        self.live.value = ""
        self._redraw()
        return reply

    def reset(self) -> None:
        """Forget every turn and the cache; the system prompt stays."""
        self.chat.reset()
        self.turns, self.error = [], None
        self._redraw()
        self.status.value = "a new conversation"

    def _after_branch(self) -> None:
        self.turns[-1] = (self.turns[-1][0], self.chat.last_reply)
        self._redraw(keep_selection=True)

    def _redraw(self, keep_selection: bool = False) -> None:
        parts = []
        system = self.chat.system or self.chat.template.default_system
        if system:
            parts.append(_bubble("system", html.escape(system)))
        for k, (question, reply) in enumerate(self.turns):
            parts.append(_bubble("user", html.escape(question)))
            if k < len(self.turns) - 1:
                parts.append(_bubble("assistant", "".join(_span(s) for s in reply.steps)))
        self.conversation.value = "".join(parts)
        reply = self.reply
        if not keep_selection:
            self.reply_view.set_reply(reply)
        if reply is None:
            self.status.value = ""
            return
        notes = [f"{len(reply.steps)} tokens, stopped by "
                 f"{'the end-of-turn token' if reply.stopped == 'end_of_turn' else 'max new tokens'}",
                 f"{len(reply.prompt)} prompt tokens, {reply.reused_tokens} of them from the kept KV cache"]
        if reply.dropped:
            notes.append(f"the oldest {reply.dropped} message(s) no longer fit the window and were left out")
        self.status.value = " · ".join(notes)

    def static_png(self) -> bytes:
        """The newest reply, coloured, and its selected token's distribution, as one PNG."""
        question = self.turns[-1][0] if self.turns else None
        system = self.chat.system or self.chat.template.default_system
        self.figure = plot_replies([dict(reply=self.reply, question=question,
                                         title=f"system: {system}" if system else None,
                                         selected=self.reply_view.selected)])
        return figure_png(self.figure, self.dpi)


# --------------------------------------------------------------------------- two system prompts


class CompareSystemPrompts(FigureBox):
    """One question under two system prompts, side by side, with the same seed and knobs.

    model, tokenizer: a chat model and its tokenizer.
    systems:          the two system prompts (each editable in its box).
    question:         asked at once (None: wait for the button).
    chat_kwargs:      ``Chat``'s other arguments (max_new_tokens, temperature, seed (default 0) ...).

    Controls: ``question`` (Text; Enter asks), ``ask_button``, ``system_boxes`` (two Textareas).
    Views: ``views`` (two ReplyViews; click tokens in either). State: ``chats`` (the two Chats,
    each holding one turn), ``replies``, ``error``.
    """

    def __init__(self, model, tokenizer, systems: Sequence[str] = ("You are a helpful assistant.",
                                                                   "You are a pirate. Always talk like a pirate."),
                 question: Optional[str] = "What is the moon?", **chat_kwargs):
        if isinstance(systems, str) or len(systems) != 2:
            raise ValueError("systems must be two system prompts, e.g. ('You are a pirate.', 'Answer in one word.')")
        chat_kwargs.setdefault("seed", 0)
        self.model, self.tokenizer, self.chat_kwargs = model, tokenizer, chat_kwargs
        self.chats = [Chat(model, tokenizer, system=s, **chat_kwargs) for s in systems]
        self.replies: list = [None, None]
        self.error: Optional[str] = None
        self.question = widgets.Text(value=question or "", description="question", layout=widgets.Layout(width="70%"))
        self.ask_button = widgets.Button(description="ask both", button_style="primary")
        self.system_boxes = [widgets.Textarea(value=s, description=f"system {k + 1}", continuous_update=False,
                                              layout=widgets.Layout(width="95%", height="3.5em"))
                             for k, s in enumerate(systems)]
        self.views = [ReplyView(chat, on_branch=lambda k=k: self._after_branch(k)) for k, chat in enumerate(self.chats)]
        self.status = widgets.HTML()
        press_ask = on_enter(self.question, lambda: self.ask())  # once the whole question has reached the kernel
        self.ask_button.on_click(lambda _: press_ask())
        columns = [widgets.VBox([box, view], layout=widgets.Layout(width="50%"))
                   for box, view in zip(self.system_boxes, self.views)]
        super().__init__([widgets.HBox([self.question, self.ask_button]), widgets.HBox(columns), self.status])
        self.image.layout.display = "none"
        if question:
            self.ask()

    def ask(self, question: Optional[str] = None):
        """Ask ``question`` (default: the one in the box) under both system prompts, each in a new
        conversation seeded alike. Returns the two Replies, or None after bad input (``error``)."""
        question = self.question.value if question is None else question
        seed = self.chat_kwargs.get("seed")
        try:
            chats = [Chat(self.model, self.tokenizer, system=box.value if box.value.strip() else None,
                          **self.chat_kwargs) for box in self.system_boxes]
            self.status.value = "writing…"
            replies = [chat.ask(question) for chat in chats]
        except ValueError as e:
            self.error = str(e)
            self.status.value = _error(self.error)
            return None
        self.error, self.chats, self.replies = None, chats, replies
        for view, chat, reply in zip(self.views, chats, replies):
            view.chat = chat
            view.set_reply(reply)
        self.status.value = (f"the same question, seed {seed} and knobs; the replies differ only through the "
                             f"system prompt ({len(replies[0].steps)} and {len(replies[1].steps)} tokens)")
        return replies

    def _after_branch(self, k: int) -> None:
        self.replies[k] = self.chats[k].last_reply

    def static_png(self) -> bytes:
        """Both replies, coloured, with their selected tokens' distributions, as one PNG."""
        panels = [dict(reply=reply, title=f"system: {box.value}", question=self.question.value,
                       selected=view.selected)
                  for reply, box, view in zip(self.replies, self.system_boxes, self.views)]
        self.figure = plot_replies(panels, width=12)
        return figure_png(self.figure, self.dpi)
