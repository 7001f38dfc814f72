"""The chat template and the loss mask: which tokens a chat model learns from, and what fine-tuning changes.

A held-out DailyDialog conversation (a system prompt made from the reply's labels, two exchanges)
is written in the course's template, one token at a time: <|system|>, <|user|> and <|assistant|>
open each message, <|end|> closes it. The loss mask keeps only the last reply, its <|end|>
included (label = the token's id); every other token is context (label -100). Then the real loss
of each trained token under the base model (before fine-tuning, the chat tokens just added) and
under the shipped chat model (after): the words change a little, <|end|> a lot. Numbers from
``numbers_sft`` (dailydialog-base and dailydialog-chat run through ``minigpt.sft``).

    manim -qm animations/loss_mask.py LossMask
"""

import math

from manim import *

import numbers_sft
from style import *

ROLE_COLORS = {"template": MUTED, "system": "#f28c54", "user": "#5b9cf5", "assistant": "#d569c4"}
TRAINED_COLOR = "#9be564"   # the outline of a token the loss learns from
BEFORE_COLOR = "#8b909a"    # the base model's bars
AFTER_COLOR = "#63c787"     # the chat model's bars
NATS_PER_UNIT = 1 / 0.3     # bar height: 0.3 scene units per nat
CHART_BOTTOM = -2.05        # where the bars stand


def bubble(role: str, text: str) -> VGroup:
    label = make_text(f"{role}: {text}", font_size=SMALL_SIZE)
    box = RoundedRectangle(corner_radius=0.15, width=label.width + 0.4, height=label.height + 0.26,
                           stroke_color=ROLE_COLORS[role], fill_color=ROLE_COLORS[role], fill_opacity=0.15)
    return VGroup(box, label.move_to(box))


def message_rows(d: dict, width: float = 10.4) -> VGroup:
    """One row of token boxes per message (its opening and <|end|> included), coloured by role.
    ``.boxes[k]`` is the box of token k of the conversation."""
    rows, boxes = [], []
    for k, (t, role) in enumerate(zip(d["tokens"], d["roles"])):
        if k == 0 or d["message"][k] != d["message"][k - 1]:
            rows.append(VGroup())
        box = token_box(t, ROLE_COLORS[role], font_size=TINY_SIZE, height=0.46, min_width=0.3)
        rows[-1].add(box)
        boxes.append(box)
    group = VGroup(*[r.arrange(RIGHT, buff=0.05) for r in rows]).arrange(DOWN, buff=0.22, aligned_edge=LEFT)
    if group.width > width:
        group.scale_to_fit_width(width)
    group.boxes = boxes
    return group


def loss_text(v: float) -> str:
    return f"{v:.1f}"


def loss_bars(losses, centres, color, ghost: bool = False) -> VGroup:
    """One bar per trained token, standing on CHART_BOTTOM at x = ``centres``, height = loss, its
    value above it (``.numbers``, one Text per bar). ``ghost``: outlines only, no numbers."""
    bars, numbers = VGroup(), VGroup()
    for v, x in zip(losses, centres):
        h = max(0.02, v / NATS_PER_UNIT)
        bar = Rectangle(width=0.42, height=h).move_to([x, CHART_BOTTOM + h / 2, 0])
        if ghost:
            bar.set_fill(opacity=0).set_stroke(color, width=1.5, opacity=0.8)
        else:
            bar.set_fill(color, opacity=0.9).set_stroke(width=0)
            numbers.add(make_text(loss_text(v), font_size=12, color=FG).next_to(bar, UP, buff=0.06))
        bars.add(bar)
    group = VGroup(bars, numbers)
    group.bars, group.numbers = bars, numbers
    return group


def percent(p: float) -> str:
    """A probability as a percentage with two significant digits: 0.0016%, 87%."""
    return f"{100 * p:.2g}%"


def end_note(e: dict) -> VGroup:
    """The <|end|> token before and after, from ``loss_mask_numbers()["end"]``: its loss, its
    probability, and what the base model would have written instead."""
    return VGroup(make_text(f"<|end|>: {e['base']:.2f} → {e['chat']:.2f} nats", font_size=SMALL_SIZE, color=ACCENT),
                  make_text(f"p(<|end|>): {percent(e['prob_base'])} → {percent(e['prob_chat'])}",
                            font_size=TINY_SIZE, color=FG),
                  make_text(f"(the base model would go on with {show_token(e['top_base'][0])!r}, "
                            f"{percent(e['top_base'][1])})", font_size=TINY_SIZE, color=MUTED)
                  ).arrange(DOWN, buff=0.1, aligned_edge=RIGHT)


class LossMask(CourseScene):
    def construct(self):
        self.data = numbers_sft.loss_mask_numbers()
        self.add(footnote(numbers_sft.provenance()))
        self.show_title("The chat template and the loss mask", "which tokens a chat model learns from")
        rows = self.template()
        reply = self.mask(rows)
        self.losses(rows, reply)
        self.wait(2.0)

    def template(self) -> VGroup:
        d = self.data
        bubbles = VGroup(*[bubble(m["role"], m["content"]) for m in d["messages"]]).arrange(DOWN, buff=0.18,
                                                                                            aligned_edge=LEFT)
        if bubbles.width > 12.4:
            bubbles.scale_to_fit_width(12.4)
        bubbles.move_to(DOWN * 0.2)
        self.play(FadeIn(bubbles, shift=0.2 * UP),
                  self.say("a held-out DailyDialog conversation; the system prompt states the real labels "
                           "of the last reply"), run_time=1.0)
        self.wait(1.4)
        rows = message_rows(d).move_to(DOWN * 0.1 + RIGHT * 0.55)
        names = VGroup(*[make_text(m["role"], font_size=TINY_SIZE, color=ROLE_COLORS[m["role"]])
                         .next_to(r, LEFT, buff=0.3) for m, r in zip(d["messages"], rows)])
        for n in names:
            n.align_to(rows, LEFT).shift(LEFT * (0.3 + n.width))
        self.play(ReplacementTransform(bubbles, rows), FadeIn(names),
                  self.say(f"the template writes it as one text of {d['n_tokens']} tokens: <|system|>, <|user|>, "
                           f"<|assistant|> open a message, <|end|> closes it"), run_time=1.4)
        self.wait(1.8)
        rows.names = names
        return rows

    def mask(self, rows: VGroup) -> list:
        d = self.data
        fade, light = [], []
        for box, trained in zip(rows.boxes, d["trained"]):
            if trained:
                light.append(box.box.animate.set_stroke(TRAINED_COLOR, width=4).set_fill(opacity=0.4))
            else:
                fade.append(box.animate.set_opacity(0.28))
        tags = VGroup()  # a column right of the rows: each message's labels
        for row in rows[:-1]:
            tags.add(make_text("-100", font_size=TINY_SIZE, color=MUTED, mono=True).next_to(row, RIGHT, buff=0.25))
        tags.add(make_text("= ids", font_size=TINY_SIZE, color=TRAINED_COLOR, mono=True).next_to(rows[-1], RIGHT,
                                                                                                  buff=0.25))
        for t in tags:
            t.align_to(rows, RIGHT).shift(RIGHT * (0.25 + t.width))
        heading = make_text("labels", font_size=TINY_SIZE, color=MUTED).next_to(tags, UP, buff=0.2)
        self.play(*fade, self.say("context, not to be written by the model: system prompt, user, template tokens "
                                  "get the label -100, which the loss skips"), run_time=1.2)
        self.play(*light, FadeIn(tags), FadeIn(heading),
                  self.say(f"{d['n_trained']} of {d['n_tokens']} tokens are learned from: the reply's words and "
                           f"its <|end|>, each labelled with its own id"), run_time=1.2)
        self.wait(1.8)
        earlier = [k for k, (role, m) in enumerate(zip(d["roles"], d["message"]))
                   if role == "assistant" and m != d["message"][-1]]
        frame = SurroundingRectangle(VGroup(*[rows.boxes[k] for k in earlier]), color=MUTED, buff=0.05,
                                     corner_radius=0.08)
        self.play(Create(frame), self.say("the earlier reply is context here: the system prompt describes "
                                          "only the last one, so only it is trained"), run_time=1.0)
        self.wait(1.8)
        end = rows.boxes[-1]
        ring = SurroundingRectangle(end, color=ACCENT, buff=0.06, corner_radius=0.08)
        self.play(FadeOut(frame), Create(ring),
                  self.say("the reply's <|end|> is trained too: writing it is how the model learns to stop"),
                  run_time=1.0)
        self.wait(1.8)
        self.play(FadeOut(ring), run_time=0.3)
        return [rows.boxes[k] for k in d["reply"]["positions"]]

    def losses(self, rows: VGroup, reply: list):
        d, r = self.data, self.data["reply"]
        n = len(r["tokens"])
        step = min(0.66, 12.4 / n)
        centres = [(i - (n - 1) / 2) * step + 0.2 for i in range(n)]
        labels = VGroup(*[token_box(t, ROLE_COLORS["assistant"], font_size=TINY_SIZE, height=0.42, min_width=0.3)
                          for t in r["tokens"]])
        # one size for the words (a template token, longer, is shrunk on its own to fit)
        shrink = min([1.0] + [(step - 0.05) / lab.width for lab, t in zip(labels, r["tokens"]) if t != "<|end|>"])
        for lab, x in zip(labels, centres):
            lab.scale(shrink)
            if lab.width > step - 0.05:
                lab.scale_to_fit_width(step - 0.05)
            lab.move_to([x, CHART_BOTTOM - 0.32, 0])
            lab.box.set_stroke(TRAINED_COLOR, width=3)
        rest = [m for m in self.mobjects if m is not self.title_group and not getattr(m, "is_footnote", False)
                and m is not self.note]
        self.play(*[FadeOut(m) for m in rest], *[ReplacementTransform(b.copy(), lab) for b, lab in zip(reply, labels)],
                  self.say("the loss of each trained token: -log p(token | the tokens before it)"), run_time=1.4)
        axis_x = centres[0] - 0.45
        top = 12
        axis = Line([axis_x, CHART_BOTTOM, 0], [axis_x, CHART_BOTTOM + top / NATS_PER_UNIT, 0], color=MUTED,
                    stroke_width=2)
        base_line = Line([axis_x, CHART_BOTTOM, 0], [centres[-1] + 0.35, CHART_BOTTOM, 0], color=MUTED, stroke_width=2)
        ticks = VGroup(*[make_text(str(v), font_size=12, color=MUTED)
                         .next_to([axis_x, CHART_BOTTOM + v / NATS_PER_UNIT, 0], LEFT, buff=0.1) for v in (0, 4, 8, 12)])
        unit = make_text("nats", font_size=12, color=MUTED).next_to(axis, UP, buff=0.1)
        before = loss_bars(r["base"], centres, BEFORE_COLOR)
        legend = VGroup(
            VGroup(Square(0.18, fill_color=BEFORE_COLOR, fill_opacity=0.9, stroke_width=0),
                   make_text("before: dailydialog-base, chat tokens just added", font_size=TINY_SIZE, color=MUTED))
            .arrange(RIGHT, buff=0.1),
            VGroup(Square(0.18, fill_color=AFTER_COLOR, fill_opacity=0.9, stroke_width=0),
                   make_text("after: dailydialog-chat, fine-tuned", font_size=TINY_SIZE, color=MUTED))
            .arrange(RIGHT, buff=0.1)).arrange(DOWN, buff=0.12, aligned_edge=LEFT)
        legend.move_to([axis_x + 0.3, 2.15, 0], aligned_edge=LEFT)
        self.play(Create(axis), Create(base_line), FadeIn(ticks), FadeIn(unit), FadeIn(legend[0]), run_time=0.8)
        self.play(LaggedStart(*[GrowFromEdge(b, DOWN) for b in before.bars], lag_ratio=0.06),
                  LaggedStart(*[FadeIn(t) for t in before.numbers], lag_ratio=0.06),
                  self.say(f"before fine-tuning: {d['mean']['base']:.2f} nats a token on average; it has never seen "
                           f"the template, and its highest loss is on <|end|>"), run_time=2.0)
        self.wait(2.0)
        after = loss_bars(r["chat"], centres, AFTER_COLOR)
        ghost = loss_bars(r["base"], centres, BEFORE_COLOR, ghost=True)
        self.add(ghost)
        self.play(ReplacementTransform(before.bars, after.bars), ReplacementTransform(before.numbers, after.numbers),
                  FadeIn(legend[1]),
                  self.say(f"after fine-tuning: {d['mean']['chat']:.2f} nats on average; the words change a little, "
                           f"the format a lot"), run_time=1.8)
        self.wait(2.0)
        self.after = after
        e = d["end"]
        ring = SurroundingRectangle(VGroup(ghost.bars[-1], labels[-1]), color=ACCENT, buff=0.08, corner_radius=0.08)
        note = end_note(e)
        note.move_to([centres[-1] + 0.3, 2.0, 0], aligned_edge=RIGHT)
        self.play(Create(ring), FadeIn(note),
                  self.say("the end of the turn: the base model all but rules it out; the chat model now expects it, "
                           "so it stops"), run_time=1.2)
        self.wait(2.0)
        first = SurroundingRectangle(VGroup(ghost.bars[0], labels[0]), color=MUTED, buff=0.08, corner_radius=0.08)
        self.play(Create(first),
                  self.say(f"and the first word after <|assistant|>: {r['base'][0]:.1f} → {r['chat'][0]:.1f} nats, "
                           f"once the model knows that a reply starts there"), run_time=1.0)
