"""Teacher forcing against free running, and exposure bias.

While training, the decoder is fed the true reply so far (teacher forcing) and learns the next
token at every step at once. When it answers, nobody hands it the truth: it is fed its own
words (free running), so one early mistake changes everything it reads after it. The scene
shows, for a held-out question, the model's probability of each right token both ways; then
the teacher-forcing ratio and scheduled sampling, which feed the model some of its own guesses
while training; then the gap averaged over many held-out questions. Numbers from
``numbers_seq2seq`` (the shipped "qa-en" encoder–decoder, and the "gru-en" baseline).

    manim -qm animations/teacher_forcing.py TeacherForcing
"""

import math

from manim import *

import numbers_seq2seq
from style import *

MAX_STEPS = 24      # reply tokens shown
RATIO = 0.5         # the teacher-forcing ratio of the scheduled-sampling example
SEED = 0
SCHEDULE_K = 300    # the inverse-sigmoid schedule drawn: k / (k + exp(step / k))
SCHEDULE_STEPS = 4000
COMPARE = (numbers_seq2seq.MODEL_NAME, numbers_seq2seq.GRU_NAME)  # models whose averages are drawn
RIGHT_COLOR = "#63c787"
WRONG_COLOR = POS_COLOR
FREE_COLOR = "#f28c54"


def char_row(tokens, colors, x_left: float, y: float, width: float) -> TokenRow:
    row = TokenRow(tokens, colors=colors, font_size=SMALL_SIZE, height=0.4, buff=0.05, min_width=0.3)
    if row.width > width:
        row.scale_to_fit_width(width)
    return row.move_to([x_left, y, 0], aligned_edge=LEFT)


def bars_under(row: TokenRow, probs, base_y: float, height: float, color) -> VGroup:
    """A vertical bar under each token of ``row``: its probability (None: no bar, the model had stopped)."""
    bars = VGroup()
    for box, p in zip(row.boxes, probs):
        if p is None:
            continue
        bar = Rectangle(width=box.width * 0.7, height=max(height * p, 0.01)).set_stroke(width=0)
        bar.set_fill(color, opacity=0.9)
        bars.add(bar.move_to([box.get_center()[0], base_y, 0], aligned_edge=DOWN))
    axis = Line([row.get_left()[0], base_y, 0], [row.get_right()[0], base_y, 0], stroke_color=MUTED, stroke_width=1.5)
    top = DashedLine([row.get_left()[0], base_y + height, 0], [row.get_right()[0], base_y + height, 0],
                     stroke_color=FAINT, stroke_width=1)
    return VGroup(axis, top, bars)


def side_label(text: str, anchor, color=MUTED) -> Text:
    return make_text(text, font_size=TINY_SIZE, color=color).next_to(anchor, LEFT, buff=0.2)


class TeacherForcing(CourseScene):
    gallery_at = 0.97

    def construct(self):
        self.tf = numbers_seq2seq.teacher_forcing_numbers(max_steps=MAX_STEPS)
        self.add(footnote(numbers_seq2seq.provenance()))
        self.show_title("Teacher forcing", "fed the truth while training; fed its own words when it answers")
        self.forced_and_free()
        self.clear_stage()
        self.one_mistake()
        self.clear_stage()
        self.scheduled_sampling()
        self.clear_stage()
        self.averages()
        self.wait(1.5)

    def forced_and_free(self):
        d = self.tf
        x0, width = -4.2, 10.6
        q = make_text(f"question (held out): {d['question']}", font_size=SMALL_SIZE).move_to(UP * 2.25)
        gold = char_row(d["gold"], [KEY_COLOR] * len(d["gold"]), x0, 1.55, width)
        self.play(FadeIn(q), FadeIn(gold, lag_ratio=0.03), FadeIn(side_label("true reply", gold, KEY_COLOR)),
                  self.say("the reply that really followed, one character per token, then <eos>"), run_time=1.1)
        self.wait(0.6)
        forced = bars_under(gold, d["forced"], 0.1, 1.0, BAR_COLOR)
        mean_f = make_text(f"mean {100 * d['mean_forced']:.0f}%", font_size=TINY_SIZE, color=BAR_COLOR)
        self.play(FadeIn(forced, lag_ratio=0.02), FadeIn(side_label("fed the true reply", forced)),
                  FadeIn(mean_f.next_to(forced, RIGHT, buff=0.15)),
                  self.say("teacher forcing: fed the true reply so far, the model's probability of each right "
                           "character; all steps in one pass"), run_time=1.3)
        self.wait(1.5)

        own = d["own"][:len(d["gold"])]
        colors = [RIGHT_COLOR if o == g else WRONG_COLOR for o, g in zip(own, d["gold"])]
        own_row = char_row(own, colors, x0, -0.55, width)
        own_row.align_to(gold, LEFT)
        self.play(FadeIn(own_row, lag_ratio=0.05), FadeIn(side_label("its own reply", own_row, FREE_COLOR)),
                  self.say("free running: it writes its own reply (greedy), each character fed back in"),
                  run_time=1.3)
        self.wait(0.8)
        k = d["first_mistake"]
        if k is not None and k < len(own_row.boxes):
            mark = SurroundingRectangle(own_row.boxes[k], color=ACCENT, buff=0.04)
            self.play(Create(mark), self.say(f"its first wrong character is at step {k + 1}: "
                                             f"{show_token(own[k])!r} instead of {show_token(d['gold'][k])!r}"),
                      run_time=0.8)
            self.wait(1.0)
        free = bars_under(gold, d["free"], -2.45, 1.0, FREE_COLOR)
        mean_o = make_text(f"mean {100 * d['mean_free']:.0f}%", font_size=TINY_SIZE, color=FREE_COLOR)
        self.play(FadeIn(free, lag_ratio=0.02), FadeIn(side_label("fed its own words", free)),
                  FadeIn(mean_o.next_to(free, RIGHT, buff=0.15)),
                  self.say("fed its own words, the right character's probability at each step: after one "
                           "mistake it reads a sentence it was never trained to continue"), run_time=1.3)
        self.wait(2.2)
        self.play(self.say(f"the same model, the same question: {100 * d['mean_forced']:.0f}% fed the truth, "
                           f"{100 * d['mean_free']:.0f}% fed itself. That gap is exposure bias"), run_time=0.8)
        self.wait(2.0)

    def one_mistake(self):
        m = numbers_seq2seq.one_mistake_numbers(max_steps=MAX_STEPS)
        x0, width = -4.2, 10.6
        k = m["at"]
        clean = m["prefix"] + [m["right"]] + m["clean_continuation"]
        wrong = m["prefix"] + [m["wrong"]] + m["wrong_continuation"]
        colors = lambda n: [KEY_COLOR] * (k + 1) + [FREE_COLOR] * n  # noqa: E731
        gold = char_row(self.tf["gold"], [KEY_COLOR] * len(self.tf["gold"]), x0, -0.15, width)
        scale = gold.boxes[0].height / 0.4
        row_a = char_row(clean, colors(len(m["clean_continuation"])), x0, 1.85, width * 2)
        row_b = char_row(wrong, colors(len(m["wrong_continuation"])), x0, 1.0, width * 2)
        for row in (row_a, row_b):  # the same size and columns as the true reply below
            row.scale(scale)
            for box, ref in zip(row.boxes, gold.boxes):
                box.move_to([ref.get_center()[0], row.get_center()[1], 0])
        row_b.boxes[k].box.set_stroke(WRONG_COLOR)
        mark = SurroundingRectangle(row_b.boxes[k], color=ACCENT, buff=0.04)
        self.play(FadeIn(row_a[:k + 1]), FadeIn(side_label("the true start", row_a, KEY_COLOR)),
                  self.say(f"now one mistake on purpose: the true reply up to step {k + 1}, and the same with "
                           f"{show_token(m['wrong'])!r} for {show_token(m['right'])!r} there "
                           f"(the model's own {100 * m['wrong_prob']:.0f}% guess)"), run_time=1.0)
        self.play(FadeIn(row_b[:k + 1]), FadeIn(side_label("one wrong", row_b, WRONG_COLOR)), Create(mark),
                  run_time=0.8)
        self.wait(1.0)
        self.play(FadeIn(row_a[k + 1:], lag_ratio=0.1), FadeIn(row_b[k + 1:], lag_ratio=0.1),
                  self.say("left to continue on its own, the two replies go different ways"), run_time=1.6)
        self.wait(1.2)
        base, height = -2.45, 1.2
        bars = VGroup()
        for t, (pc, pw) in enumerate(zip(m["clean_next"], m["wrong_next"]), start=k + 1):
            box = gold.boxes[t]
            for p, color, side in ((pc, BAR_COLOR, LEFT), (pw, WRONG_COLOR, RIGHT)):
                bar = Rectangle(width=box.width * 0.36, height=max(height * p, 0.01)).set_stroke(width=0)
                bar.set_fill(color, opacity=0.9)
                bars.add(bar.move_to([box.get_center()[0], base, 0] + side * box.width * 0.2, aligned_edge=DOWN))
        axis = Line([gold.get_left()[0], base, 0], [gold.get_right()[0], base, 0], stroke_color=MUTED,
                    stroke_width=1.5)
        means = VGroup(make_text(f"after the right one: mean {100 * m['mean_clean']:.0f}%", font_size=TINY_SIZE,
                                 color=BAR_COLOR),
                       make_text(f"after the wrong one: mean {100 * m['mean_wrong']:.0f}%", font_size=TINY_SIZE,
                                 color=WRONG_COLOR)).arrange(DOWN, aligned_edge=LEFT, buff=0.08)
        means.next_to(gold, DOWN, buff=0.12).align_to(gold, RIGHT)
        self.play(FadeIn(gold), FadeIn(side_label("true reply", gold, KEY_COLOR)), FadeIn(axis),
                  FadeIn(bars, lag_ratio=0.02), FadeIn(means),
                  self.say("fed the true reply everywhere else, each later true character's probability: "
                           + ("one wrong input pulls them down" if m["mean_wrong"] < m["mean_clean"]
                              else "here the model shrugs the wrong input off")), run_time=1.4)
        self.wait(2.5)

    def scheduled_sampling(self):
        s = numbers_seq2seq.scheduled_sampling_numbers(ratio=RATIO, seed=SEED, max_steps=MAX_STEPS)
        x0, width = -3.6, 10.0
        gold = char_row(s["gold_input"], [KEY_COLOR] * len(s["gold_input"]), x0, 1.9, width)
        guess = char_row(s["predicted"], [FREE_COLOR] * len(s["predicted"]), x0, 1.1, width)
        guess.align_to(gold, LEFT)
        self.play(FadeIn(gold), FadeIn(side_label("true input", gold, KEY_COLOR)),
                  FadeIn(guess), FadeIn(side_label("the model's guess", guess, FREE_COLOR)),
                  self.say("scheduled sampling: first the model guesses every next character from the true input"),
                  run_time=1.2)
        self.wait(1.0)
        coins = VGroup()
        for box, own in zip(gold.boxes, s["own"]):
            dot = Circle(radius=0.09).set_stroke(FREE_COLOR if own else KEY_COLOR, width=2)
            dot.set_fill(FREE_COLOR if own else KEY_COLOR, opacity=1.0 if own else 0.0)
            coins.add(dot.move_to([box.get_center()[0], 0.45, 0]))
        mixed = TokenRow(s["mixed"], colors=[FREE_COLOR if o else KEY_COLOR for o in s["own"]], font_size=SMALL_SIZE,
                         height=0.4, buff=0.05, min_width=0.3)
        for box, ref in zip(mixed.boxes, gold.boxes):
            box.match_width(ref, stretch=True).move_to([ref.get_center()[0], -0.25, 0])
        n = len(s["own"]) - 1
        self.play(FadeIn(coins, lag_ratio=0.05), FadeIn(side_label(f"a coin, ratio {RATIO}", coins)),
                  self.say(f"then a coin per position: with probability {RATIO} the true character, else the "
                           f"model's own guess ({s['n_own']} of {n} here)"), run_time=1.3)
        self.play(FadeIn(mixed, lag_ratio=0.05), FadeIn(side_label("what it is fed", mixed)), run_time=1.0)
        self.wait(1.2)
        self.play(self.say("teacher_forcing_ratio = 1 is pure teacher forcing; 0 feeds only its own guesses"),
                  run_time=0.6)
        self.wait(1.2)
        self.play(*[FadeOut(m) for m in (gold, guess, coins, mixed)],
                  *[FadeOut(m) for m in self.mobjects if isinstance(m, Text) and m.font_size <= TINY_SIZE + 0.5
                    and not getattr(m, "is_footnote", False)], run_time=0.5)
        self.schedule()

    def schedule(self):
        ratios = numbers_seq2seq.inverse_sigmoid_schedule(SCHEDULE_STEPS, SCHEDULE_K)
        w, h = 7.0, 2.6
        origin = DOWN * 2.3 + LEFT * 3.5
        axes = VGroup(Line(origin, origin + RIGHT * w, stroke_color=MUTED, stroke_width=2),
                      Line(origin, origin + UP * h, stroke_color=MUTED, stroke_width=2))
        every = max(1, SCHEDULE_STEPS // 200)
        curve = VMobject(stroke_color=ACCENT, stroke_width=4).set_points_as_corners(
            [origin + RIGHT * w * i / SCHEDULE_STEPS + UP * h * r for i, r in enumerate(ratios) if i % every == 0])
        labels = VGroup(
            make_text("1", font_size=TINY_SIZE, color=MUTED).next_to(origin + UP * h, LEFT, buff=0.1),
            make_text("0", font_size=TINY_SIZE, color=MUTED).next_to(origin, LEFT, buff=0.1),
            make_text("teacher-forcing ratio", font_size=TINY_SIZE, color=MUTED).next_to(origin + UP * h, UP, buff=0.1),
            make_text(f"training step (0 … {SCHEDULE_STEPS:,})", font_size=TINY_SIZE, color=MUTED)
            .next_to(origin + RIGHT * w / 2, DOWN, buff=0.15),
            make_text(f"k / (k + exp(step / k)),  k = {SCHEDULE_K}", font_size=SMALL_SIZE, color=ACCENT)
            .next_to(origin + RIGHT * w + UP * h, DOWN + LEFT, buff=0.0),
        )
        self.play(Create(axes), FadeIn(labels), self.say("a schedule lowers the ratio as training goes on: "
                                                         "the truth first, the model's own words later"), run_time=1.0)
        self.play(Create(curve), run_time=1.6)
        self.wait(1.5)

    def averages(self):
        results = [numbers_seq2seq.exposure_bias(name) for name in COMPARE]
        w, h = 7.2, 4.0
        origin = DOWN * 2.3 + LEFT * 5.2
        steps = results[0]["steps"]
        top = max(v for r in results for v in r["forced"] + r["free"] if v is not None)
        top = min(1.0, math.ceil(top * 10) / 10)
        x = lambda i: origin + RIGHT * w * (i - 1) / (len(steps) - 1)  # noqa: E731
        axes = VGroup(Line(origin, origin + RIGHT * w, stroke_color=MUTED, stroke_width=2),
                      Line(origin, origin + UP * h, stroke_color=MUTED, stroke_width=2))
        labels = VGroup(
            make_text(f"{100 * top:.0f}%", font_size=TINY_SIZE, color=MUTED).next_to(origin + UP * h, LEFT, buff=0.1),
            make_text("0%", font_size=TINY_SIZE, color=MUTED).next_to(origin, LEFT, buff=0.1),
            make_text("mean probability of the right character", font_size=TINY_SIZE, color=MUTED)
            .next_to(origin + UP * h, UP, buff=0.1).align_to(origin, LEFT),
            make_text(f"reply step (1 … {steps[-1]})", font_size=TINY_SIZE, color=MUTED)
            .next_to(origin + RIGHT * w / 2, DOWN, buff=0.15),
        )
        self.play(Create(axes), FadeIn(labels), run_time=0.8)
        legend = VGroup()
        for r, style in zip(results, ("solid", "dashed")):
            for key, color, how in (("forced", BAR_COLOR, "fed the truth"), ("free", FREE_COLOR, "fed its own words")):
                pts = [x(s) + UP * h * v / top for s, v in zip(steps, r[key]) if v is not None]
                line = VMobject(stroke_color=color, stroke_width=4).set_points_as_corners(pts)
                sample = Line(ORIGIN, RIGHT * 0.5, stroke_color=color, stroke_width=4)
                if style == "dashed":
                    line, sample = DashedVMobject(line, num_dashes=40), DashedVMobject(sample, num_dashes=3)
                entry = make_text(f"{r['name']}, {how}: mean {100 * r['mean_' + key]:.0f}%", font_size=TINY_SIZE,
                                  color=color)
                legend.add(VGroup(sample, entry).arrange(RIGHT, buff=0.12))
                self.play(Create(line), run_time=1.0)
        legend.arrange(DOWN, aligned_edge=LEFT, buff=0.15).move_to(origin + RIGHT * (w + 0.3) + UP * h, aligned_edge=UL)
        room = config.frame_width / 2 - 0.2 - legend.get_left()[0]
        if legend.width > room:
            legend.scale(room / legend.width, about_edge=LEFT)
        r = results[0]
        self.play(FadeIn(legend), self.say(f"over {r['n_pairs']} held-out questions the first wrong character "
                                           f"comes at step {r['first_mistake_median']} (median); the right one gets "
                                           f"{100 * r['mean_forced']:.0f}% fed the truth, {100 * r['mean_free']:.0f}% "
                                           f"fed its own words"), run_time=1.0)
        self.wait(2.5)
