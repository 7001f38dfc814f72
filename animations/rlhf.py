"""The RLHF loop: how PPO turns a reward model's score into an update of the chat model.

A message goes to the policy (the fine-tuned chat model), which writes an answer;
the reward model scores the whole answer once; the frozen reference (the policy before PPO)
reads the same tokens, and each token's log-ratio is its KL penalty; reward, values and GAE
give every token an advantage; one step on the clipped objective makes the tokens with a
positive advantage more likely and the others less; and the loop repeats, the score climbing
while the KL to the reference is spent. Every number is from a real PPO run of ``minigpt.align``
on dailydialog-chat with the shipped reward model (``numbers_align``).

    manim -qm animations/rlhf.py RLHFLoop
"""

from manim import *

import numbers_align
from style import *

POLICY_COLOR = "#63c787"
REFERENCE_COLOR = "#8b909a"
REWARD_COLOR = "#ffcc4d"
STEP = 0.9             # width of one answer token's column
MAX_TOKENS = 10        # columns shown
X0 = -3.35             # the first column


def cell(value: float, vmax: float, fmt: str = "{:+.2f}", width: float = STEP - 0.08, height: float = 0.42) -> VGroup:
    """A number in a box coloured by its sign and size (red > 0, blue < 0)."""
    box = Rectangle(width=width, height=height).set_fill(diverging_color(value, vmax), 1.0).set_stroke(FAINT, 1)
    text = make_text(fmt.format(value), font_size=TINY_SIZE - 2, color=FG)
    if text.width > width * 0.9:
        text.scale_to_fit_width(width * 0.9)
    return VGroup(box, text.move_to(box))


def number_row(values, xs, y: float, vmax: float, fmt: str = "{:+.2f}") -> VGroup:
    return VGroup(*[cell(v, vmax, fmt).move_to([x, y, 0]) for v, x in zip(values, xs)])


def row_label(s: str, row: VGroup, color=MUTED) -> Text:
    return make_text(s, font_size=TINY_SIZE, color=color).next_to(row, LEFT, buff=0.25)


class RLHFLoop(CourseScene):
    gallery_at = 0.62

    def construct(self):
        self.d = numbers_align.rlhf_numbers()
        self.add(footnote(numbers_align.provenance()))
        self.show_title("RLHF with PPO", "answer → reward model → advantage → update, on a leash to the reference")
        self.rollout()
        self.score()
        self.kl()
        self.advantages()
        self.update()
        self.clear_stage()
        self.loop()
        self.wait(1.5)

    # ------------------------------------------------------------------ prompt -> policy -> answer

    def rollout(self):
        d = self.d
        n = min(len(d["tokens"]), MAX_TOKENS)
        self.n = n
        prompt = make_text(f"user: {d['prompt']}", font_size=SMALL_SIZE)
        if prompt.width > 4.4:
            prompt.scale_to_fit_width(4.4)
        bubble = RoundedRectangle(corner_radius=0.15, width=prompt.width + 0.4, height=prompt.height + 0.35,
                                  stroke_color="#5b9cf5", fill_color="#5b9cf5", fill_opacity=0.15)
        self.prompt = VGroup(bubble, prompt.move_to(bubble)).to_edge(LEFT, buff=0.4).set_y(2.05)
        self.policy = model_box("policy π", sublabel="dailydialog-chat, being trained", width=2.4, height=1.0,
                                color=POLICY_COLOR).move_to(LEFT * 5.45 + UP * 0.55)
        self.play(FadeIn(self.prompt, shift=0.2 * DOWN), self.say("a user's message, as in the DailyDialog conversations PPO trains on"),
                  run_time=0.8)
        self.play(FadeIn(self.policy), GrowArrow(arrow_between(self.prompt, self.policy)), run_time=0.7)
        self.xs = [X0 + STEP * i for i in range(n)]
        self.answer = VGroup(*[token_box(t, POLICY_COLOR, font_size=TINY_SIZE, height=0.45, min_width=STEP - 0.1)
                               for t in d["tokens"][:n]])
        for box, x in zip(self.answer, self.xs):
            if box.width > STEP - 0.08:
                box.scale_to_fit_width(STEP - 0.08)
            box.move_to([x, 0.55, 0])
        self.play(GrowArrow(Arrow(self.policy.get_right(), self.answer.get_left(), buff=0.15, color=MUTED,
                                  stroke_width=3, max_tip_length_to_length_ratio=0.15)),
                  self.say(f"the policy writes an answer, sampling one token at a time ({len(d['tokens'])} tokens)"),
                  run_time=0.6)
        self.play(LaggedStart(*[FadeIn(b, shift=0.1 * DOWN) for b in self.answer], lag_ratio=0.15), run_time=1.4)
        self.wait(0.6)

    # ------------------------------------------------------------------ the reward model's one score

    def score(self):
        d = self.d
        rm = model_box("reward model", sublabel="trained on preference pairs", width=2.4, height=1.0,
                       color=REWARD_COLOR).move_to(RIGHT * 5.45 + UP * 2.05)
        arrow = Arrow(self.answer[-1].get_top(), rm.get_bottom(), buff=0.12, color=MUTED, stroke_width=3,
                      max_tip_length_to_length_ratio=0.15)
        self.score_text = make_text(f"score {d['score']:+.2f}", font_size=BODY_SIZE, color=REWARD_COLOR,
                                    weight="BOLD").move_to(RIGHT * 2.0 + UP * 2.05)
        self.play(FadeIn(rm), GrowArrow(arrow),
                  self.say("the reward model reads prompt and answer and gives one number, at the last token"),
                  run_time=0.9)
        self.play(FadeIn(self.score_text, scale=1.3), run_time=0.6)
        self.wait(0.8)

    # ------------------------------------------------------------------ the reference and the KL per token

    def kl(self):
        d = self.d
        n = self.n
        self.reference = model_box("reference π_ref", sublabel="frozen copy of the start", width=2.4, height=1.0,
                                   color=REFERENCE_COLOR).move_to(LEFT * 5.45 + DOWN * 0.75)
        self.kl_row = number_row(d["kl"][:n], self.xs, -0.75, max(0.5, max(abs(v) for v in d["kl"][:n])))
        self.ref_arrow = arrow_between(self.reference, self.kl_row)
        self.play(FadeIn(self.reference), GrowArrow(self.ref_arrow), run_time=0.6)
        self.play(LaggedStart(*[FadeIn(c, shift=0.1 * DOWN) for c in self.kl_row], lag_ratio=0.08),
                  self.say(f"the frozen reference reads the same tokens; log π − log π_ref is each token's KL: "
                           f"{sum(d['kl']):+.2f} nats for the whole answer"), run_time=1.3)
        self.wait(1.2)

    # ------------------------------------------------------------------ rewards, values, advantages

    def advantages(self):
        d = self.d
        n = self.n
        vmax = max(abs(v) for v in d["rewards"] + d["advantages"] + d["values"]) or 1.0
        rewards = number_row(d["rewards"][:n], self.xs, -1.3, vmax)
        values = number_row(d["values"][:n], self.xs, -1.85, vmax)
        adv = number_row(d["advantages"][:n], self.xs, -2.4, vmax)
        self.play(FadeOut(self.reference), FadeOut(self.ref_arrow), FadeIn(row_label("log π − log π_ref", self.kl_row)),
                  FadeIn(rewards), FadeIn(row_label("reward", rewards)),
                  self.say(f"reward per token: −β·KL (β = {d['kl_coef']:g}), plus the score at the last token"),
                  run_time=1.0)
        self.wait(1.0)
        self.play(FadeIn(values), FadeIn(row_label("value V", values)),
                  self.say("the value head guesses, at every token, the reward still to come"), run_time=0.8)
        self.wait(0.8)
        self.play(LaggedStart(*[FadeIn(c) for c in reversed(adv)], lag_ratio=0.1), FadeIn(row_label("advantage A", adv)),
                  self.say(f"GAE from the end backwards: A_t = δ_t + γλ·A_(t+1), δ_t = r_t + γ·V_(t+1) − V_t "
                           f"(γ = {d['gamma']:g}, λ = {d['lam']:g})"), run_time=1.4)
        self.adv_row = adv
        self.wait(1.4)

    # ------------------------------------------------------------------ one step on the clipped objective

    def update(self):
        d = self.d
        n = self.n
        arrows = VGroup()
        for k in range(n):
            before, after = d["prob_before"][k], d["prob_after"][k]
            up = after >= before
            colour = POLICY_COLOR if up else "#ef6f7a"
            a = Arrow(ORIGIN, (UP if up else DOWN) * 0.45, buff=0, color=colour, stroke_width=4,
                      max_tip_length_to_length_ratio=0.35)
            a.move_to([self.xs[k], 1.35, 0])
            arrows.add(a)
        k = max(range(n), key=lambda i: abs(d["prob_after"][i] - d["prob_before"][i]))
        self.play(LaggedStart(*[GrowArrow(a) for a in arrows], lag_ratio=0.08),
                  self.say("one step on the clipped objective pushes tokens with A > 0 up and the others down "
                           "(they share weights, so not every token follows)"), run_time=1.4)
        change = make_text(f"'{show_token(d['tokens'][k])}': p {d['prob_before'][k]:.4f} → {d['prob_after'][k]:.4f}, "
                           f"ratio {d['ratio'][k]:.2f} (clipped at {1 - d['clip']:g} and {1 + d['clip']:g})",
                           font_size=TINY_SIZE, color=FG)
        if change.width > 4.3:
            change.scale_to_fit_width(4.3)
        change.move_to(RIGHT * 2.0 + UP * 2.05)
        self.play(FadeOut(self.score_text), FadeIn(change), run_time=0.5)
        self.wait(1.6)

    # ------------------------------------------------------------------ the loop, repeated

    def loop(self):
        d = self.d
        h = d["history"]
        steps = h["iter"]
        k = max(1, len(steps) // 4)
        first = {key: sum(h[key][:k]) / k for key in ("score", "kl")}
        last = {key: sum(h[key][-k:]) / k for key in ("score", "kl")}
        self.show_title("…and again", f"{len(steps)} PPO steps on dailydialog-chat, {d['batch_size']} answers each")
        score_ax = self.curve(steps, h["score"], "mean reward-model score", REWARD_COLOR).move_to(LEFT * 3.4 + DOWN * 0.2)
        kl_ax = self.curve(steps, h["kl"], "mean KL to the reference (nats)", POLICY_COLOR).move_to(RIGHT * 3.4 + DOWN * 0.2)
        self.play(Create(score_ax), Create(kl_ax), run_time=2.0)
        self.play(self.say(f"over the first {k} steps and the last {k}: the score goes from {first['score']:+.2f} to "
                           f"{last['score']:+.2f}, the KL spent from {first['kl']:.2f} to {last['kl']:.2f} nats"),
                  run_time=0.8)
        self.wait(1.5)

    def curve(self, xs, ys, label: str, color) -> VGroup:
        lo, hi = min(ys), max(ys)
        pad = (hi - lo) * 0.15 or 0.1
        axes = Axes(x_range=[xs[0], xs[-1], max(1, (xs[-1] - xs[0]) // 4 or 1)], y_range=[lo - pad, hi + pad],
                    x_length=5.4, y_length=3.2, tips=False,
                    axis_config={"color": MUTED, "include_ticks": False, "stroke_width": 2})
        line = axes.plot_line_graph(xs, ys, line_color=color, add_vertex_dots=len(xs) <= 30,
                                    vertex_dot_radius=0.04, vertex_dot_style={"fill_color": color})
        title = make_text(label, font_size=SMALL_SIZE, color=color).next_to(axes, UP, buff=0.15)
        first = make_text(f"{ys[0]:+.2f}", font_size=TINY_SIZE, color=MUTED).next_to(axes.c2p(xs[0], ys[0]), LEFT, 0.1)
        last = make_text(f"{ys[-1]:+.2f}", font_size=TINY_SIZE, color=FG).next_to(axes.c2p(xs[-1], ys[-1]), RIGHT, 0.1)
        step = make_text("PPO step", font_size=TINY_SIZE, color=MUTED).next_to(axes, DOWN, buff=0.1)
        return VGroup(axes, line, title, first, last, step)
