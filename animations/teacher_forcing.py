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

import functools
import math

from manim import *

import numbers_seq2seq
from style import *

MAX_STEPS = 24      # reply tokens shown at most (fewer when long word pieces would not fit)
MIN_SCALE = 0.75    # token rows shrink at most this much to fit; longer replies are cut instead
ROW_WIDTH = 10.0    # room for a row of reply tokens, leaving some for its mean on the right
RATIO = 0.5         # the teacher-forcing ratio of the scheduled-sampling example
SEED = 0
SCHEDULE_K = 300    # the inverse-sigmoid schedule drawn: k / (k + exp(step / k))
SCHEDULE_STEPS = 4000
COMPARE = (numbers_seq2seq.MODEL_NAME, numbers_seq2seq.GRU_NAME)  # models whose averages are drawn
MIN_WRITING = 0.1   # a step's averages are drawn while at least this share of the replies goes on
RIGHT_COLOR = "#63c787"
WRONG_COLOR = POS_COLOR
FREE_COLOR = "#f28c54"
BOX = {"font_size": SMALL_SIZE, "height": 0.4, "buff": 0.05, "min_width": 0.3}  # a reply token's box


def _column_widths(rows) -> list[float]:
    """The width of each reply step's column: its widest token box over ``rows`` (lists of token
    strings, the t-th token of each at step t), so a step sits at the same x in every row."""
    n = max(map(len, rows))
    return [max(_box_width(r[t]) for r in rows if t < len(r)) for t in range(n)]


@functools.cache
def _box_width(token: str) -> float:
    return token_box(token, font_size=BOX["font_size"], height=BOX["height"], min_width=BOX["min_width"]).width


def steps_that_fit(rows, width: float = ROW_WIDTH, min_scale: float = MIN_SCALE) -> int:
    """How many reply steps of ``rows`` fit in ``width``, shrunk at most to ``min_scale`` (all of them: len)."""
    x = 0.0
    for t, w in enumerate(_column_widths(rows)):
        x += w + (BOX["buff"] if t else 0.0)
        if x * min_scale > width:
            return t
    return max(map(len, rows))


def step_rows(rows, colors, x_left: float, ys, width: float = ROW_WIDTH) -> list[VGroup]:
    """Token rows whose boxes stand in shared columns, one per reply step (a column as wide as its
    widest token, so " going" fits and "?" stands under it), their left edges at ``x_left``, row i
    at ``ys[i]``; all shrunk alike when they are wider than ``width``.
    Returns one VGroup of token boxes per row, with ``.boxes`` as a TokenRow has."""
    widths = _column_widths(rows)
    lefts = [sum(widths[:t]) + BOX["buff"] * t for t in range(len(widths))]
    scale = min(1.0, width / (lefts[-1] + widths[-1]))
    out = []
    for tokens, cols, y in zip(rows, colors, ys):
        boxes = [token_box(tok, color, font_size=BOX["font_size"], height=BOX["height"],
                           min_width=widths[t]).move_to([lefts[t] + widths[t] / 2, 0, 0])
                 for t, (tok, color) in enumerate(zip(tokens, cols))]
        row = VGroup(*boxes).scale(scale, about_point=ORIGIN).shift([x_left, y, 0])
        row.boxes = boxes
        out.append(row)
    return out


def bars_under(row: TokenRow, probs, base_y: float, height: float, color) -> VGroup:
    """A vertical bar under each token of ``row``: its probability (None: no bar, the model had stopped)."""
    bars = VGroup()
    for box, p in zip(row.boxes, probs):
        if p is None:
            continue
        bar = Rectangle(width=min(box.width * 0.7, 0.45), height=max(height * p, 0.01)).set_stroke(width=0)
        bar.set_fill(color, opacity=0.9)
        bars.add(bar.move_to([box.get_center()[0], base_y, 0], aligned_edge=DOWN))
    axis = Line([row.get_left()[0], base_y, 0], [row.get_right()[0], base_y, 0], stroke_color=MUTED, stroke_width=1.5)
    top = DashedLine([row.get_left()[0], base_y + height, 0], [row.get_right()[0], base_y + height, 0],
                     stroke_color=FAINT, stroke_width=1)
    return VGroup(axis, top, bars)


def effect(mean_clean: float, mean_wrong: float) -> str:
    """What one wrong input did to the later true tokens' mean probability, in the percentages shown."""
    clean, wrong = round(100 * mean_clean), round(100 * mean_wrong)
    if wrong < clean:
        return "one wrong input pulls them down"
    return "here the mean barely moves: the model shrugs the wrong input off" if wrong == clean else \
        "here the wrong input even helps them, by chance"


def side_label(text: str, anchor, color=MUTED) -> Text:
    return make_text(text, font_size=TINY_SIZE, color=color).next_to(anchor, LEFT, buff=0.2)


class TeacherForcing(CourseScene):
    gallery_at = 0.97

    def construct(self):
        self.unit = numbers_seq2seq.token_unit()   # "character" or "token" (BPE word pieces)
        self.steps = self.steps_shown()
        self.tf = numbers_seq2seq.teacher_forcing_numbers(max_steps=self.steps)
        self.add(footnote(numbers_seq2seq.provenance(*COMPARE)))
        self.show_title("Teacher forcing", "fed the truth while training; fed its own words when it answers")
        self.forced_and_free()
        self.clear_stage()
        self.one_mistake()
        self.clear_stage()
        self.scheduled_sampling()
        self.clear_stage()
        self.averages()
        self.wait(1.5)

    @staticmethod
    def steps_shown() -> int:
        """The most reply steps (at most MAX_STEPS) whose token rows, in every part of the scene, fit
        across the frame without shrinking below MIN_SCALE: long word pieces mean fewer steps."""
        n = MAX_STEPS
        while True:
            tf = numbers_seq2seq.teacher_forcing_numbers(max_steps=n)
            rows = [tf["gold"], tf["own"][:len(tf["gold"])]]
            if len(tf["gold"]) >= 3:  # long enough for the mistake on purpose and scheduled sampling
                m = numbers_seq2seq.one_mistake_numbers(max_steps=n)
                s = numbers_seq2seq.scheduled_sampling_numbers(ratio=RATIO, seed=SEED, max_steps=n)
                rows += [m["prefix"] + [m["right"]] + m["clean_continuation"],
                         m["prefix"] + [m["wrong"]] + m["wrong_continuation"],
                         s["gold_input"], s["predicted"], s["mixed"]]
            fit = steps_that_fit(rows)
            if fit >= len(tf["gold"]) or n <= 4:
                return n
            n = max(4, min(n - 1, fit))

    def forced_and_free(self):
        d, unit = self.tf, self.unit
        x0 = -4.2
        q = make_text(f"question (held out): {d['question']}", font_size=SMALL_SIZE).move_to(UP * 2.25)
        own = d["own"][:len(d["gold"])]
        colors = [RIGHT_COLOR if o == g else WRONG_COLOR for o, g in zip(own, d["gold"])]
        gold, own_row = step_rows([d["gold"], own], [[KEY_COLOR] * len(d["gold"]), colors], x0, (1.55, -0.55))
        whole = d["gold"][-1] == "<eos>"
        n = len(d["gold"]) - whole
        told = ("the reply that really followed, one character per token" if unit == "character" else
                f"the reply that really followed, {n} tokens: words and pieces of words (␣ marks a space)")
        told += ", then <eos>" if whole else f" (its first {n})"
        self.play(FadeIn(q), FadeIn(gold, lag_ratio=0.03), FadeIn(side_label("true reply", gold, KEY_COLOR)),
                  self.say(told), run_time=1.1)
        self.wait(0.6)
        forced = bars_under(gold, d["forced"], 0.1, 1.0, BAR_COLOR)
        mean_f = make_text(f"mean {100 * d['mean_forced']:.0f}%", font_size=TINY_SIZE, color=BAR_COLOR)
        self.play(FadeIn(forced, lag_ratio=0.02), FadeIn(side_label("fed the true reply", forced)),
                  FadeIn(mean_f.next_to(forced, RIGHT, buff=0.15)),
                  self.say(f"teacher forcing: fed the true reply so far, the model's probability of each right "
                           f"{unit}; all steps in one pass"), run_time=1.3)
        self.wait(1.5)

        self.play(FadeIn(own_row, lag_ratio=0.05), FadeIn(side_label("its own reply", own_row, FREE_COLOR)),
                  self.say(f"free running: it writes its own reply (greedy), each {unit} fed back in"),
                  run_time=1.3)
        self.wait(0.8)
        k = d["first_mistake"]
        if k is not None and k < len(own_row.boxes):
            mark = SurroundingRectangle(own_row.boxes[k], color=ACCENT, buff=0.04)
            self.play(Create(mark), self.say(f"its first wrong {unit} is at step {k + 1}: "
                                             f"{show_token(own[k])!r} instead of {show_token(d['gold'][k])!r}"),
                      run_time=0.8)
            self.wait(1.0)
        free = bars_under(gold, d["free"], -2.45, 1.0, FREE_COLOR)
        mean_o = make_text(f"mean {100 * d['mean_free']:.0f}%", font_size=TINY_SIZE, color=FREE_COLOR)
        self.play(FadeIn(free, lag_ratio=0.02), FadeIn(side_label("fed its own words", free)),
                  FadeIn(mean_o.next_to(free, RIGHT, buff=0.15)),
                  self.say(f"fed its own words, the right {unit}'s probability at each step: after one "
                           f"mistake it reads a sentence it was never trained to continue"), run_time=1.3)
        self.wait(2.2)
        self.play(self.say(f"the same model, the same question: {100 * d['mean_forced']:.0f}% fed the truth, "
                           f"{100 * d['mean_free']:.0f}% fed itself. That gap is exposure bias"), run_time=0.8)
        self.wait(2.0)

    def one_mistake(self):
        m = numbers_seq2seq.one_mistake_numbers(max_steps=self.steps)
        x0 = -4.2
        k = m["at"]
        clean = m["prefix"] + [m["right"]] + m["clean_continuation"]
        wrong = m["prefix"] + [m["wrong"]] + m["wrong_continuation"]
        colors = lambda n: [KEY_COLOR] * (k + 1) + [FREE_COLOR] * n  # noqa: E731
        # the two replies and the true one below them, in the same columns (one per step)
        row_a, row_b, gold = step_rows(
            [clean, wrong, self.tf["gold"]],
            [colors(len(m["clean_continuation"])), colors(len(m["wrong_continuation"])),
             [KEY_COLOR] * len(self.tf["gold"])], x0, (1.85, 1.0, -0.15))
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
                bar = Rectangle(width=min(box.width * 0.36, 0.3), height=max(height * p, 0.01)).set_stroke(width=0)
                bar.set_fill(color, opacity=0.9)
                bars.add(bar.move_to([box.get_center()[0], base, 0] + side * (bar.width / 2 + 0.02),
                                     aligned_edge=DOWN))
        axis = Line([gold.get_left()[0], base, 0], [gold.get_right()[0], base, 0], stroke_color=MUTED,
                    stroke_width=1.5)
        means = VGroup(make_text(f"after the right one: mean {100 * m['mean_clean']:.0f}%", font_size=TINY_SIZE,
                                 color=BAR_COLOR),
                       make_text(f"after the wrong one: mean {100 * m['mean_wrong']:.0f}%", font_size=TINY_SIZE,
                                 color=WRONG_COLOR)).arrange(DOWN, aligned_edge=LEFT, buff=0.08)
        means.next_to(gold, DOWN, buff=0.12).align_to(gold, RIGHT)
        self.play(FadeIn(gold), FadeIn(side_label("true reply", gold, KEY_COLOR)), FadeIn(axis),
                  FadeIn(bars, lag_ratio=0.02), FadeIn(means),
                  self.say(f"fed the true reply everywhere else, each later true {self.unit}'s probability: "
                           + effect(m["mean_clean"], m["mean_wrong"])), run_time=1.4)
        self.wait(2.5)

    def scheduled_sampling(self):
        s = numbers_seq2seq.scheduled_sampling_numbers(ratio=RATIO, seed=SEED, max_steps=self.steps)
        x0 = -3.6
        gold, guess, mixed = step_rows(
            [s["gold_input"], s["predicted"], s["mixed"]],
            [[KEY_COLOR] * len(s["gold_input"]), [FREE_COLOR] * len(s["predicted"]),
             [FREE_COLOR if o else KEY_COLOR for o in s["own"]]], x0, (1.9, 1.1, -0.25))
        self.play(FadeIn(gold), FadeIn(side_label("true input", gold, KEY_COLOR)),
                  FadeIn(guess), FadeIn(side_label("the model's guess", guess, FREE_COLOR)),
                  self.say(f"scheduled sampling: first the model guesses every next {self.unit} from the true input"),
                  run_time=1.2)
        self.wait(1.0)
        coins = VGroup()
        for box, own in zip(gold.boxes, s["own"]):
            dot = Circle(radius=0.09).set_stroke(FREE_COLOR if own else KEY_COLOR, width=2)
            dot.set_fill(FREE_COLOR if own else KEY_COLOR, opacity=1.0 if own else 0.0)
            coins.add(dot.move_to([box.get_center()[0], 0.45, 0]))
        n = len(s["own"]) - 1
        self.play(FadeIn(coins, lag_ratio=0.05), FadeIn(side_label(f"a coin, ratio {RATIO}", coins)),
                  self.say(f"then a coin per position: with probability {RATIO} the true {self.unit}, else the "
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
        # a mean over the few replies that are still going is noise: draw the steps most still reach
        drawn = [[v if share >= MIN_WRITING else None for v, share in zip(r[key], r["still_writing"])]
                 for r in results for key in ("forced", "free")]
        last = max([2] + [s for line in drawn for s, v in zip(steps, line) if v is not None])
        top = max(v for line in drawn for v in line if v is not None)
        top = min(1.0, math.ceil(top * 10) / 10)
        x = lambda i: origin + RIGHT * w * (i - 1) / (last - 1)  # noqa: E731
        axes = VGroup(Line(origin, origin + RIGHT * w, stroke_color=MUTED, stroke_width=2),
                      Line(origin, origin + UP * h, stroke_color=MUTED, stroke_width=2))
        labels = VGroup(
            make_text(f"{100 * top:.0f}%", font_size=TINY_SIZE, color=MUTED).next_to(origin + UP * h, LEFT, buff=0.1),
            make_text("0%", font_size=TINY_SIZE, color=MUTED).next_to(origin, LEFT, buff=0.1),
            make_text(f"mean probability of the right {self.unit}", font_size=TINY_SIZE, color=MUTED)
            .next_to(origin + UP * h, UP, buff=0.1).align_to(origin, LEFT),
            make_text(f"reply step (1 … {last}: while at least {100 * MIN_WRITING:.0f}% of the replies go on)",
                      font_size=TINY_SIZE, color=MUTED).next_to(origin + RIGHT * w / 2, DOWN, buff=0.15),
        )
        self.play(Create(axes), FadeIn(labels), run_time=0.8)
        legend = VGroup()
        lines = iter(drawn)
        for r, style in zip(results, ("solid", "dashed")):
            for key, color, how in (("forced", BAR_COLOR, "fed the truth"), ("free", FREE_COLOR, "fed its own words")):
                pts = [x(s) + UP * h * v / top for s, v in zip(steps, next(lines)) if v is not None]
                sample = Line(ORIGIN, RIGHT * 0.5, stroke_color=color, stroke_width=4)
                if style == "dashed":
                    sample = DashedVMobject(sample, num_dashes=3)
                entry = make_text(f"{r['name']}, {how}: mean {100 * r['mean_' + key]:.0f}%", font_size=TINY_SIZE,
                                  color=color)
                legend.add(VGroup(sample, entry).arrange(RIGHT, buff=0.12))
                if len(pts) >= 2:
                    line = VMobject(stroke_color=color, stroke_width=4).set_points_as_corners(pts)
                    if style == "dashed":
                        line = DashedVMobject(line, num_dashes=40)
                    self.play(Create(line), run_time=1.0)
        legend.arrange(DOWN, aligned_edge=LEFT, buff=0.15).move_to(origin + RIGHT * (w + 0.3) + UP * h, aligned_edge=UL)
        room = config.frame_width / 2 - 0.2 - legend.get_left()[0]
        if legend.width > room:
            legend.scale(room / legend.width, about_edge=LEFT)
        r = results[0]
        self.play(FadeIn(legend), self.say(f"over {r['n_pairs']} held-out questions the first wrong {self.unit} "
                                           f"comes at step {r['first_mistake_median']} (median); the right one gets "
                                           f"{100 * r['mean_forced']:.0f}% fed the truth, {100 * r['mean_free']:.0f}% "
                                           f"fed its own words"), run_time=1.0)
        self.wait(2.5)
