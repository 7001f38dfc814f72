"""The one look shared by every animation of the course: colours, fonts and reusable pieces.

Every scene imports from here, so a token, a probability bar or an attention heatmap looks
the same in every video:

    from style import *          # palette, fonts and the helpers below
    class MyScene(CourseScene):
        def construct(self):
            self.add(step_title("Attention", "one query looks at every key"))
            row = TokenRow(["T", "o", " ", "b", "e"])
            bars = ProbabilityBars(["e", "o", "a"], [0.5, 0.3, 0.2])
            self.play(bars.animate_to([0.2, 0.2, 0.6]))

Pieces:
    make_text(s)                           Text in the course font (CJK text gets a CJK font)
    formula(plain, tex=None)               a formula: MathTex when LaTeX is installed and tex given, else Text
    step_title(title, subtitle=None)       a title block at the top edge
    caption(s) / footnote(s)               a line at the bottom / a tiny note in the corner
    token_box(s, color) / TokenRow(tokens) tokens as rounded, coloured boxes
    ProbabilityBars(labels, probs)         labelled bars with percentages; .animate_to(new_probs)
    Heatmap(matrix, row_labels, col_labels)  coloured squares, optional numbers, masked cells
    vector_column(values) / vector_row     an embedding vector as a strip of coloured cells
    matrix_image(matrix)                   a whole matrix (an embedding table), one colour per number, cheaply
    arrow_between(a, b)                    an arrow from the nearest side of a to b
    model_box(label)                       the model as a box
    CourseScene                            background, .show_title, .say(caption) cross-fade, .clear_stage

Text is always Manim's ``Text`` (Pango), so no LaTeX is needed to render the course.
"""

from __future__ import annotations

import math
import shutil
from functools import lru_cache
from typing import Optional, Sequence

from manim import (
    DOWN, LEFT, ORIGIN, RIGHT, UP, Animation, AnimationGroup, Arrow, FadeIn, FadeOut, Line, ManimColor, MathTex,
    Rectangle, RoundedRectangle, Scene, Square, Text, Transform, VGroup, VMobject, config,
    interpolate_color,
)

# ------------------------------------------------------------------ palette

BG = "#14161d"             # background: near-black blue
FG = "#e8e6e3"             # main text
MUTED = "#8b909a"          # secondary text, axes, arrows
FAINT = "#3a3f4b"          # outlines, empty cells, masked positions
ACCENT = "#ffcc4d"         # the one thing to look at right now (a chosen token, the query)
HIGHLIGHT = ACCENT

# Tokens: a colour per position, cycling, so a token keeps its colour through a scene.
TOKEN_COLORS = ["#5b9cf5", "#f28c54", "#63c787", "#d569c4", "#e8c547", "#4fc3c9", "#ef6f7a", "#a68cf0"]

QUERY_COLOR = "#ffcc4d"    # Q: yellow
KEY_COLOR = "#5bc0eb"      # K: blue
VALUE_COLOR = "#9be564"    # V: green
OUTPUT_COLOR = "#f08cd0"   # the attention output / the result of a step
POS_EMB_COLOR = "#c18cf0"  # positional embeddings
TOK_EMB_COLOR = "#5b9cf5"  # token embeddings

POS_COLOR = "#ef6a4c"      # positive values (diverging heat)
NEG_COLOR = "#4a9eea"      # negative values
ZERO_COLOR = "#262a33"     # zero: close to the background, so small values fade out
HEAT_LOW = "#1d2130"       # sequential heat (probabilities, attention weights): low ...
HEAT_MID = "#c2456b"       # ... middle ...
HEAT_HIGH = "#ffd166"      # ... high
BAR_COLOR = "#5b9cf5"      # probability bars
BAR_CHOSEN = ACCENT        # the bar of the token that was picked

# ------------------------------------------------------------------ fonts and sizes

FONT = "DejaVu Sans"
MONO = "DejaVu Sans Mono"
CJK_FONT = "WenQuanYi Zen Hei"

TITLE_SIZE = 40
SUBTITLE_SIZE = 24
BODY_SIZE = 26
SMALL_SIZE = 20
TINY_SIZE = 16

config.background_color = BG  # scenes that do not derive from CourseScene get it too


def token_color(i: int) -> str:
    """The colour of the token at position (or of id) ``i``: the palette, cycling."""
    return TOKEN_COLORS[i % len(TOKEN_COLORS)]


def _has_cjk(s: str) -> bool:
    return any(ord(c) >= 0x2E80 and not 0x2190 <= ord(c) <= 0x2BFF for c in s)


def make_text(s: str, font_size: float = BODY_SIZE, color=FG, mono: bool = False, weight: str = "NORMAL",
              **kwargs) -> Text:
    """``Text`` in the course font; monospace with ``mono``; text with CJK characters in the CJK font."""
    font = CJK_FONT if _has_cjk(s) else (MONO if mono else FONT)
    return Text(s, font=font, font_size=font_size, color=color, weight=weight, **kwargs)


def show_token(s: str) -> str:
    """How a token's text is drawn in a box: a space as '␣', a line break as '↵', tab as '→'.
    Tokenizers' ``token_str`` already writes '\\n' for a line break; that becomes '↵' too."""
    s = s.replace("\\n", "↵").replace("\n", "↵").replace("\t", "→").replace(" ", "␣")
    return s if s else "∅"


@lru_cache(maxsize=1)
def has_latex() -> bool:
    """True when a LaTeX installation is on PATH (MathTex needs one)."""
    return shutil.which("latex") is not None


def formula(text_plain: str, tex: Optional[str] = None, font_size: float = BODY_SIZE, color=FG) -> VMobject:
    """A formula: ``MathTex(tex)`` where LaTeX is installed and ``tex`` is given, else plain
    ``Text(text_plain)`` (e.g. "softmax(q·k / √d)"), so every scene renders without LaTeX."""
    if tex is not None and has_latex():
        try:
            return MathTex(tex, font_size=font_size * 1.2, color=color)
        except Exception:  # a broken TeX installation: fall back to text rather than fail the render
            pass
    return make_text(text_plain, font_size=font_size, color=color)


# ------------------------------------------------------------------ scene and titles


class CourseScene(Scene):
    """A Scene with the course background and a title that can be swapped."""

    def setup(self):
        self.camera.background_color = BG
        self.title_group: Optional[VGroup] = None
        self.note: Optional[VMobject] = None  # the caption at the bottom, swapped by ``say``

    def show_title(self, title: str, subtitle: Optional[str] = None, run_time: float = 0.8):
        """Show (or replace) the title block at the top; returns it."""
        new = step_title(title, subtitle)
        if self.title_group is None:
            self.play(FadeIn(new, shift=0.2 * DOWN), run_time=run_time)
        else:
            self.play(FadeOut(self.title_group, shift=0.2 * UP), FadeIn(new, shift=0.2 * DOWN), run_time=run_time)
        self.title_group = new
        return new

    def say(self, text: str) -> Animation:
        """The animation that swaps the caption for ``text``: a cross-fade, since morphing the
        glyphs of one sentence into another's reads as noise."""
        new = caption(text)
        old, self.note = self.note, new
        return FadeIn(new) if old is None else AnimationGroup(FadeOut(old), FadeIn(new))

    def clear_stage(self, keep_title: bool = True, run_time: float = 0.6):
        """Fade out everything but the footnote and (optionally) the title."""
        self.note = None
        keep = {self.title_group} if keep_title and self.title_group is not None else set()
        gone = [m for m in self.mobjects if m not in keep and not getattr(m, "is_footnote", False)]
        if gone:
            self.play(*[FadeOut(m) for m in gone], run_time=run_time)


def step_title(title: str, subtitle: Optional[str] = None) -> VGroup:
    """A title (and optional subtitle below it) at the top edge of the frame."""
    head = make_text(title, font_size=TITLE_SIZE, weight="BOLD")
    group = VGroup(head)
    if subtitle:
        group.add(make_text(subtitle, font_size=SUBTITLE_SIZE, color=MUTED).next_to(head, DOWN, buff=0.15))
    group.to_edge(UP, buff=0.3)
    _fit_width(group, config.frame_width - 1.0)
    return group


def caption(s: str, font_size: float = SMALL_SIZE, color=MUTED) -> VMobject:
    """An explanation for the bottom of the frame; too long for one line, it wraps onto two."""
    limit = config.frame_width - 1.0
    # Estimate the width before drawing (building Text is the slow part of a render).
    if len(s) * _char_width(font_size) > limit and " " in s:
        middle = len(s) // 2
        cut = min((i for i, c in enumerate(s) if c == " "), key=lambda i: abs(i - middle))
        t = VGroup(make_text(s[:cut], font_size=font_size, color=color),
                   make_text(s[cut + 1:], font_size=font_size, color=color)).arrange(DOWN, buff=0.12)
    else:
        t = make_text(s, font_size=font_size, color=color)
    _fit_width(t, limit)
    return t.to_edge(DOWN, buff=0.35)


@lru_cache(maxsize=None)
def _char_width(font_size: float) -> float:
    """Average width of one character of ordinary prose in the course font at ``font_size``."""
    sample = "The quick brown fox jumps over the lazy dog, 0123456789: (every) token's weight."
    return make_text(sample, font_size=font_size).width / len(sample)


def footnote(s: str) -> Text:
    """A tiny line in the bottom-right corner, e.g. which model the numbers came from."""
    note = make_text(s, font_size=12, color="#5c6270").to_corner(DOWN + RIGHT, buff=0.12)
    note.is_footnote = True  # CourseScene.clear_stage leaves it in place
    return note


def _fit_width(m: VMobject, width: float) -> VMobject:
    if m.width > width:
        m.scale_to_fit_width(width)
    return m


# ------------------------------------------------------------------ tokens


def token_box(s: str, color=None, font_size: float = BODY_SIZE, min_width: float = 0.45, height: float = 0.6,
              mono: bool = True, fill_opacity: float = 0.22, raw: bool = False) -> VGroup:
    """A token drawn as a rounded box with its text; ``raw`` skips the ␣/↵ substitution.

    Returns VGroup(box, label) with ``.box`` and ``.label`` attributes.
    """
    color = color or TOKEN_COLORS[0]
    text = s if raw else show_token(s)
    label = make_text(text, font_size=font_size, color=FG, mono=mono)
    scale = min(1.0, height * 0.7 / label.height) if label.height > 0 else 1.0
    label.scale(scale)
    width = max(min_width, label.width + 0.24)
    box = RoundedRectangle(corner_radius=0.08, width=width, height=height, stroke_color=color, stroke_width=2.5,
                           fill_color=color, fill_opacity=fill_opacity)
    # Centred by its own outline, "." would float mid-box like "·", "," would hang like an apostrophe
    # and "␣n" would sit lower than "ot". So a strut ("|", from above the capitals to below the line)
    # is centred in the box, and the text is set where it stands beside it: every box's text on one line.
    line = make_text("|" + text, font_size=font_size, mono=mono)
    above_strut = VGroup(*line[1:]).get_center()[1] - line[0].get_center()[1] if len(line) > 1 else 0.0
    label.move_to(box.get_center() + UP * above_strut * scale)
    group = VGroup(box, label)
    group.box, group.label = box, label
    return group


class TokenRow(VGroup):
    """A row of token boxes. tokens: list of str; colors: one per token (default: by position).

    ``.boxes[i]`` is the i-th token box; ``ids_below(ids)`` makes a row of ids under the boxes.
    """

    def __init__(self, tokens: Sequence[str], colors=None, buff: float = 0.08, font_size: float = BODY_SIZE,
                 height: float = 0.6, max_width: Optional[float] = None, **box_kwargs):
        super().__init__()
        if colors is None:
            colors = [token_color(i) for i in range(len(tokens))]
        self.tokens = list(tokens)
        self.boxes = [token_box(t, c, font_size=font_size, height=height, **box_kwargs)
                      for t, c in zip(tokens, colors)]
        self.add(*self.boxes)
        self.arrange(RIGHT, buff=buff)
        if max_width is not None:
            _fit_width(self, max_width)

    def ids_below(self, ids: Sequence[int], font_size: float = SMALL_SIZE, color=MUTED, buff: float = 0.15) -> VGroup:
        """A VGroup of id labels, one centred under each box."""
        labels = VGroup(*[make_text(str(i), font_size=font_size, color=color, mono=True) for i in ids])
        for lab, box in zip(labels, self.boxes):
            lab.next_to(box, DOWN, buff=buff)
        return labels


# ------------------------------------------------------------------ probabilities


class ProbabilityBars(VGroup):
    """Labelled probability bars with percentages.

    labels:      token texts (shown with ``show_token``), one per bar.
    probs:       probabilities in [0, 1], same length.
    direction:   "horizontal" (bars grow right, labels on the left) or "vertical" (bars grow up).
    bar_length:  length of a bar of probability ``max_value`` (default 1.0, so lengths are honest).
    colors:      one colour per bar, or None for BAR_COLOR.

    Parts: ``.bars``, ``.labels``, ``.percents`` (VGroups, one entry per bar) and ``.axis``.
    ``animate_to(new_probs)`` returns an animation that moves the bars and numbers to new
    probabilities (optionally new labels), keeping the axis where it is.
    """

    def __init__(self, labels: Sequence[str], probs: Sequence[float], direction: str = "horizontal",
                 bar_length: float = 4.0, bar_thickness: float = 0.36, gap: float = 0.14,
                 max_value: float = 1.0, colors=None, font_size: float = SMALL_SIZE, show_percent: bool = True,
                 decimals: int = 1, label_width: Optional[float] = None):
        super().__init__()
        if len(labels) != len(probs):
            raise ValueError(f"ProbabilityBars needs one label per probability; got {len(labels)} labels "
                             f"and {len(probs)} probabilities")
        if direction not in ("horizontal", "vertical"):
            raise ValueError(f"direction must be 'horizontal' or 'vertical', got {direction!r}")
        self.bar_kwargs = dict(direction=direction, bar_length=bar_length, bar_thickness=bar_thickness, gap=gap,
                           max_value=max_value, colors=colors, font_size=font_size, show_percent=show_percent,
                           decimals=decimals, label_width=label_width)
        self.labels_text = [str(s) for s in labels]
        self.probs = [float(p) for p in probs]
        horizontal = direction == "horizontal"
        n = len(probs)
        colors = colors if colors is not None else [BAR_COLOR] * n
        step = bar_thickness + gap
        span = n * step - gap
        along, across = (RIGHT, DOWN) if horizontal else (UP, RIGHT)

        self.axis = Line(ORIGIN, span * across, stroke_color=MUTED, stroke_width=2)
        self.bars, self.labels, self.percents = VGroup(), VGroup(), VGroup()
        for i, (lab, p, col) in enumerate(zip(self.labels_text, self.probs, colors)):
            centre = (i * step + bar_thickness / 2) * across
            length = max(1e-3, bar_length * min(max(p, 0.0), max_value) / max_value)
            if horizontal:
                bar = Rectangle(width=length, height=bar_thickness)
            else:
                bar = Rectangle(width=bar_thickness, height=length)
            bar.set_fill(col, opacity=0.9).set_stroke(width=0)
            bar.move_to(centre + along * length / 2)
            text = make_text(show_token(lab), font_size=font_size, mono=True)
            if horizontal:
                text.next_to(centre, LEFT, buff=0.15)
            else:
                text.next_to(centre, DOWN, buff=0.12)
            pct = make_text(f"{100 * p:.{decimals}f}%", font_size=font_size * 0.9, color=FG if show_percent else BG)
            if not show_percent:
                pct.set_opacity(0)
            pct.next_to(bar, along, buff=0.1)
            self.bars.add(bar)
            self.labels.add(text)
            self.percents.add(pct)
        if label_width is not None and horizontal:  # right-align labels in a fixed column
            for t in self.labels:
                t.align_to(self.axis.get_start() + 0.15 * LEFT, RIGHT)
        self.add(self.axis, self.bars, self.labels, self.percents)

    def target_for(self, new_probs: Sequence[float], new_labels: Optional[Sequence[str]] = None, **overrides) -> "ProbabilityBars":
        """A copy drawn with new probabilities (and labels / colours), its axis where this one's is."""
        kwargs = {**self.bar_kwargs, **overrides}
        other = ProbabilityBars(new_labels if new_labels is not None else self.labels_text, new_probs, **kwargs)
        other.shift(self.axis.get_start() - other.axis.get_start())
        return other

    def animate_to(self, new_probs: Sequence[float], new_labels: Optional[Sequence[str]] = None, **overrides):
        """An animation (Transform) from the current bars to ``new_probs``; after it has played,
        this object shows (and its ``.probs`` holds) the new numbers."""
        other = self.target_for(new_probs, new_labels, **overrides)
        self.probs = list(other.probs)
        self.labels_text = list(other.labels_text)
        self.bar_kwargs = other.bar_kwargs
        return Transform(self, other)

    def highlight(self, i: int, color=BAR_CHOSEN) -> VGroup:
        """A box around bar i (label and percentage included), to show the token that was picked."""
        group = VGroup(self.labels[i], self.bars[i], self.percents[i])
        return RoundedRectangle(corner_radius=0.08, width=group.width + 0.25, height=group.height + 0.12,
                                stroke_color=color, stroke_width=3).move_to(group)


# ------------------------------------------------------------------ heat


def heat_color(value: float, vmin: float = 0.0, vmax: float = 1.0) -> ManimColor:
    """Sequential colour for value in [vmin, vmax]: dark -> magenta -> gold."""
    t = 0.0 if vmax <= vmin else min(max((value - vmin) / (vmax - vmin), 0.0), 1.0)
    low, mid, high = ManimColor(HEAT_LOW), ManimColor(HEAT_MID), ManimColor(HEAT_HIGH)
    return interpolate_color(low, mid, t / 0.5) if t < 0.5 else interpolate_color(mid, high, (t - 0.5) / 0.5)


def diverging_color(value: float, vmax: float = 1.0) -> ManimColor:
    """Diverging colour: NEG_COLOR for -vmax, ZERO_COLOR for 0, POS_COLOR for +vmax."""
    t = 0.0 if vmax <= 0 else min(max(value / vmax, -1.0), 1.0)
    end = POS_COLOR if t >= 0 else NEG_COLOR
    return interpolate_color(ManimColor(ZERO_COLOR), ManimColor(end), abs(t) ** 0.8)


def _readable_on(color) -> str:
    r, g, b = ManimColor(color).to_rgb()
    return "#111111" if 0.299 * r + 0.587 * g + 0.114 * b > 0.55 else FG


class Heatmap(VGroup):
    """A matrix as coloured squares, with optional row/column labels and numbers.

    matrix:      rows of numbers (list of lists or anything with .tolist()); None or NaN = masked.
    row_labels / col_labels: texts (drawn with ``show_token``) beside the rows / above the columns.
    diverging:   colour by sign around 0 (embeddings) instead of low -> high (probabilities).
    show_values: write each number in its cell with ``fmt``.

    Parts: ``.cells`` (VGroup of rows, ``cell(i, j)``), ``.values``, ``.row_labels``, ``.col_labels``.
    """

    def __init__(self, matrix, row_labels: Optional[Sequence[str]] = None, col_labels: Optional[Sequence[str]] = None,
                 cell_size: float = 0.5, show_values: bool = False, fmt: str = "{:.2f}", vmin: Optional[float] = None,
                 vmax: Optional[float] = None, diverging: bool = False, font_size: float = TINY_SIZE,
                 label_size: float = SMALL_SIZE, label_colors=None, gap: float = 0.04):
        super().__init__()
        rows = matrix.tolist() if hasattr(matrix, "tolist") else [list(r) for r in matrix]
        self.matrix = rows
        finite = [v for r in rows for v in r if v is not None and not math.isnan(v)]
        if diverging:
            vmax = vmax if vmax is not None else max([abs(v) for v in finite] or [1.0])
        else:
            vmin = vmin if vmin is not None else min(finite or [0.0])
            vmax = vmax if vmax is not None else max(finite or [1.0])
        self.cells, self.values = VGroup(), VGroup()
        step = cell_size + gap
        for i, r in enumerate(rows):
            row = VGroup()
            for j, v in enumerate(r):
                sq = Square(side_length=cell_size).move_to(RIGHT * j * step + DOWN * i * step)
                masked = v is None or math.isnan(v)
                fill = FAINT if masked else (diverging_color(v, vmax) if diverging else heat_color(v, vmin, vmax))
                sq.set_fill(fill, opacity=0.35 if masked else 1.0).set_stroke(FAINT, width=1)
                row.add(sq)
                if show_values and not masked:
                    num = make_text(fmt.format(v), font_size=font_size, color=_readable_on(fill))
                    if num.width > cell_size * 0.9:
                        num.scale_to_fit_width(cell_size * 0.9)
                    self.values.add(num.move_to(sq))
            self.cells.add(row)
        self.add(self.cells, self.values)
        self.row_labels, self.col_labels = VGroup(), VGroup()
        if row_labels is not None:
            for i, lab in enumerate(row_labels):
                c = label_colors[i] if label_colors else FG
                t = make_text(show_token(str(lab)), font_size=label_size, color=c, mono=True)
                self.row_labels.add(t.next_to(self.cells[i], LEFT, buff=0.15))
            self.add(self.row_labels)
        if col_labels is not None:
            for j, lab in enumerate(col_labels):
                c = label_colors[j] if label_colors else FG
                t = make_text(show_token(str(lab)), font_size=label_size, color=c, mono=True)
                self.col_labels.add(t.next_to(self.cells[0][j], UP, buff=0.12))
            self.add(self.col_labels)

    def cell(self, i: int, j: int) -> Square:
        return self.cells[i][j]


def matrix_image(matrix, vmax: Optional[float] = None, height: float = 3.0, width: float = 3.0,
                 diverging: bool = True) -> VGroup:
    """A big matrix (e.g. a whole embedding table) drawn like an image, one colour per number
    (diverging colours, or the sequential heat with ``diverging=False``), at little cost: each row
    is a single rectangle whose fill is a stepped gradient through its numbers' colours, so a
    128 x 128 table is 128 mobjects, not 16,384. (Manim's ImageMobject would do too, but it fails
    with recent Pillow releases.) Returns a VGroup of the row rectangles, top row first."""
    rows = matrix.tolist() if hasattr(matrix, "tolist") else [list(r) for r in matrix]
    if not rows or not all(len(r) == len(rows[0]) and r for r in rows):
        raise ValueError("matrix_image needs a non-empty matrix with rows of equal length")
    values = [v for r in rows for v in r]
    if diverging:
        vmax = vmax if vmax is not None else max(abs(v) for v in values) or 1.0
        color_of = lambda v: diverging_color(v, vmax)  # noqa: E731
    else:
        lo, hi = min(values), vmax if vmax is not None else max(values)
        color_of = lambda v: heat_color(v, lo, hi)  # noqa: E731
    h = height / len(rows)
    group = VGroup()
    for i, r in enumerate(rows):
        rect = Rectangle(width=width, height=h).set_stroke(width=0)
        colors = [c for v in r for c in (color_of(v), color_of(v))]  # each twice: sharp steps, not blends
        rect.set_fill(colors if len(colors) > 1 else colors[0], opacity=1.0)
        rect.set_sheen_direction(RIGHT)
        group.add(rect.move_to(DOWN * (i + 0.5) * h))
    return group.move_to(ORIGIN)


def vector_column(values: Sequence[float], cell_size: float = 0.3, vmax: Optional[float] = None,
                  show_values: bool = False, fmt: str = "{:+.1f}", direction=DOWN, outline=None,
                  font_size: float = TINY_SIZE) -> VGroup:
    """A vector as a strip of coloured cells (diverging colours: red > 0, blue < 0).

    direction: DOWN for a column (default), RIGHT for a row. ``outline`` draws a frame of that
    colour around the strip. Returns a VGroup with ``.cells`` (and ``.frame`` if outlined).
    """
    values = values.tolist() if hasattr(values, "tolist") else list(values)
    vmax = vmax if vmax is not None else max([abs(v) for v in values] or [1.0]) or 1.0
    cells = VGroup()
    for k, v in enumerate(values):
        sq = Square(side_length=cell_size).set_fill(diverging_color(v, vmax), opacity=1.0).set_stroke(FAINT, width=1)
        sq.move_to(direction * k * cell_size)
        if show_values:
            num = make_text(fmt.format(v), font_size=font_size, color=FG)
            if num.width > cell_size * 0.92:
                num.scale_to_fit_width(cell_size * 0.92)
            cells.add(VGroup(sq, num.move_to(sq)))
        else:
            cells.add(sq)
    group = VGroup(cells)
    group.cells = cells
    group.values = values
    if outline is not None:
        frame = Rectangle(width=cells.width + 0.08, height=cells.height + 0.08, stroke_color=outline,
                          stroke_width=2.5).move_to(cells)
        group.add(frame)
        group.frame = frame
    return group


def vector_row(values: Sequence[float], **kwargs) -> VGroup:
    """``vector_column`` laid out left to right."""
    return vector_column(values, direction=RIGHT, **kwargs)


# ------------------------------------------------------------------ arrows and boxes


def arrow_between(a: VMobject, b: VMobject, color=MUTED, buff: float = 0.1, stroke_width: float = 3,
                  **kwargs) -> Arrow:
    """An arrow from the side of ``a`` that faces ``b`` to the side of ``b`` that faces ``a``."""
    d = b.get_center() - a.get_center()
    if abs(d[0]) * a.height >= abs(d[1]) * a.width:  # mostly sideways
        start, end = (a.get_right(), b.get_left()) if d[0] > 0 else (a.get_left(), b.get_right())
    else:
        start, end = (a.get_top(), b.get_bottom()) if d[1] > 0 else (a.get_bottom(), b.get_top())
    return Arrow(start, end, buff=buff, color=color, stroke_width=stroke_width,
                 max_tip_length_to_length_ratio=0.2, **kwargs)


def model_box(label: str = "GPT", width: float = 2.4, height: float = 1.4, color=ACCENT,
              sublabel: Optional[str] = None) -> VGroup:
    """The model drawn as a box with a name (and an optional smaller line under it)."""
    box = RoundedRectangle(corner_radius=0.15, width=width, height=height, stroke_color=color, stroke_width=3,
                           fill_color=color, fill_opacity=0.08)
    parts = VGroup(make_text(label, font_size=BODY_SIZE + 4, weight="BOLD"))
    if sublabel:
        parts.add(make_text(sublabel, font_size=TINY_SIZE, color=MUTED))
        parts.arrange(DOWN, buff=0.1)
    _fit_width(parts, width - 0.2)
    parts.move_to(box)
    group = VGroup(box, parts)
    group.box, group.label = box, parts
    return group


__all__ = [
    "BG", "FG", "MUTED", "FAINT", "ACCENT", "HIGHLIGHT", "TOKEN_COLORS", "QUERY_COLOR", "KEY_COLOR", "VALUE_COLOR",
    "OUTPUT_COLOR", "POS_EMB_COLOR", "TOK_EMB_COLOR", "POS_COLOR", "NEG_COLOR", "ZERO_COLOR", "HEAT_LOW",
    "HEAT_MID", "HEAT_HIGH", "BAR_COLOR", "BAR_CHOSEN", "FONT", "MONO", "CJK_FONT", "TITLE_SIZE", "SUBTITLE_SIZE",
    "BODY_SIZE", "SMALL_SIZE", "TINY_SIZE", "token_color", "make_text", "show_token", "has_latex", "formula",
    "CourseScene", "step_title", "caption", "footnote", "token_box", "TokenRow", "ProbabilityBars", "heat_color",
    "diverging_color", "Heatmap", "matrix_image", "vector_column", "vector_row", "arrow_between", "model_box",
]
