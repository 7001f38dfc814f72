"""Training, with the shipped model's own numbers.

Teacher forcing on a real line (inputs, and the same line shifted by one as targets); the loss
at every position (the model's real cross-entropy) and their mean; gradients flowing back through
the stack (real gradient norms); gradient clipping shrinking an oversized gradient to the clip
radius; and the loss curve recorded while the shipped model trained.

    manim -qm animations/training.py Training
"""

import math

from manim import *

import numbers_training
import shipped_model
from style import *

LINE = "To be, or not to be"
GRAD_COLOR = "#ef6f7a"
LOSS_LOW, LOSS_HIGH = "#63c787", "#ef6f7a"


def label_left(s: str, of: Mobject, color=MUTED) -> Text:
    return make_text(s, font_size=SMALL_SIZE, color=color).next_to(of, LEFT, buff=0.35)


def loss_color(v: float, vmax: float):
    return interpolate_color(ManimColor(LOSS_LOW), ManimColor(LOSS_HIGH), min(1.0, max(0.0, v / vmax)))


class Training(CourseScene):
    gallery_at = 0.36

    def construct(self):
        self.add(footnote(shipped_model.provenance()))
        self.teacher_forcing()
        self.clear_stage()
        self.backward_and_clipping()
        self.clear_stage()
        self.loss_curve()

    # ------------------------------------------------------------------ inputs, targets, loss per position

    def teacher_forcing(self):
        data = numbers_training.position_losses(LINE)
        n = len(data["inputs"])
        self.show_title("Training: teacher forcing",
                        "every position learns to predict the character after it, all at once")
        line = TokenRow(data["inputs"] + [data["targets"][-1]], font_size=SMALL_SIZE, height=0.5).move_to(UP * 1.7)
        line.shift(LEFT * 0.1)
        self.play(LaggedStart(*[FadeIn(b, shift=0.1 * DOWN) for b in line.boxes], lag_ratio=0.04), run_time=1.0)
        inputs = VGroup(*line.boxes[:-1])
        in_l = label_left("input", inputs)
        # the targets: the same line, moved down and one place to the left
        targets = VGroup(*[b.copy() for b in line.boxes[1:]])
        shifted = VGroup(*[t.copy().move_to(line.boxes[k]).shift(DOWN * 0.95) for k, t in enumerate(targets)])
        tg_l = label_left("target", shifted)
        self.play(FadeIn(in_l), FadeOut(line.boxes[-1]), run_time=0.5)
        self.play(*[t.animate.move_to(s) for t, s in zip(targets, shifted)], FadeIn(tg_l),
                  self.say("Targets = the same text shifted by one: position t must predict character t + 1"),
                  run_time=1.4)
        arrows = VGroup(*[Arrow(i.get_bottom(), t.get_top(), buff=0.05, color=FAINT, stroke_width=2,
                                max_tip_length_to_length_ratio=0.3) for i, t in zip(inputs, targets)])
        self.play(LaggedStart(*[GrowArrow(a) for a in arrows], lag_ratio=0.03), run_time=0.8)
        self.wait(1.5)

        # the loss at each position: -log p(target)
        losses = data["losses"]
        vmax = max(losses)
        base_y, unit = -2.85, min(0.5, 2.0 / vmax)
        base = Line([inputs.get_left()[0] - 0.1, base_y, 0], [inputs.get_right()[0] + 0.1, base_y, 0],
                    stroke_color=MUTED, stroke_width=2)
        bars, values = VGroup(), VGroup()
        for k, v in enumerate(losses):
            w = inputs[k].width * 0.7
            bar = Rectangle(width=w, height=max(0.01, v * unit)).set_fill(loss_color(v, vmax), 0.9).set_stroke(width=0)
            bar.move_to([inputs[k].get_center()[0], base_y, 0], aligned_edge=DOWN)
            bars.add(bar)
            t = make_text(f"{v:.1f}", font_size=TINY_SIZE - 2, color=FG)
            values.add(t.next_to(bar, UP, buff=0.06))
        loss_l = label_left("−log p", base.copy().shift(UP * 0.6))
        self.play(Create(base), FadeIn(loss_l),
                  self.say("Loss at each position: −log p(target). Small for a confident right guess"),
                  LaggedStart(*[GrowFromEdge(b, DOWN) for b in bars], lag_ratio=0.05),
                  LaggedStart(*[FadeIn(v) for v in values], lag_ratio=0.05), run_time=2.0)
        self.wait(1.5)
        worst = max(range(n), key=losses.__getitem__)
        best = min(range(n), key=losses.__getitem__)
        ctx = "".join(data["inputs"][: worst + 1])
        box_w = SurroundingRectangle(VGroup(targets[worst], bars[worst]), color=ACCENT, buff=0.06)
        note3 = (f"After “{show_token(ctx[-8:])}” the model gave “{show_token(data['targets'][worst])}” only "
                 f"{100 * data['target_probs'][worst]:.1f}%; “{show_token(data['targets'][best])}” "
                 f"got {100 * data['target_probs'][best]:.0f}%")
        self.play(Create(box_w), self.say(note3), run_time=0.8)
        self.wait(2.0)
        mean_y = base_y + data["mean_loss"] * unit
        mean = DashedLine([base.get_left()[0], mean_y, 0], [base.get_right()[0], mean_y, 0], color=ACCENT,
                          dash_length=0.1)
        mean_t = make_text(f"mean = {data['mean_loss']:.2f}", font_size=SMALL_SIZE, color=ACCENT)
        mean_t.next_to(mean, RIGHT, buff=0.15)
        self.play(FadeOut(box_w), Create(mean), FadeIn(mean_t),
                  self.say(f"The line's loss: the mean over its {n} positions, "
                            f"the one number training pushes down"), run_time=1.0)
        self.wait(2.0)

    # ------------------------------------------------------------------ backward pass and clipping

    def backward_and_clipping(self):
        clip = numbers_training.train_config_defaults()["grad_clip"] or 1.0
        hist = numbers_training.grad_norm_history(clip)
        init = numbers_training.gradient_norms(LINE, which="initial")
        self.show_title("Gradients flow back", "backpropagation from the loss to every weight, then clipping")

        # left: the stack, loss on top, with the gradient's size in each part
        names = ["loss"] + [p["name"] for p in reversed(init["parts"])]
        boxes = VGroup()
        for s in names:
            color = GRAD_COLOR if s == "loss" else (MUTED if "LayerNorm" in s else
                                                    TOK_EMB_COLOR if s == "embeddings" else "#4fc3c9")
            t = make_text(s, font_size=SMALL_SIZE)
            box = RoundedRectangle(corner_radius=0.1, width=2.5, height=0.46, stroke_color=color, stroke_width=2.5,
                                   fill_color=color, fill_opacity=0.12)
            boxes.add(VGroup(box, t.move_to(box)))
        boxes.arrange(DOWN, buff=0.2).move_to([-5.35, -0.45, 0])
        norms = {p["name"]: p["norm"] for p in init["parts"]}
        labels = VGroup(*[make_text(f"loss {init['loss']:.2f}" if s == "loss" else f"‖∇‖ {norms[s]:.2f}",
                                    font_size=TINY_SIZE, color=GRAD_COLOR).next_to(b, RIGHT, buff=0.15)
                          for s, b in zip(names, boxes)])
        arrows = VGroup(*[Arrow(a.get_bottom(), b.get_top(), buff=0.02, color=GRAD_COLOR, stroke_width=4,
                                max_tip_length_to_length_ratio=0.5) for a, b in zip(boxes, boxes[1:])])
        self.play(FadeIn(boxes), FadeIn(labels[0]),
                  self.say("A freshly initialised model on this line: the gradient's size in each part"),
                  run_time=0.8)
        self.play(LaggedStart(*[AnimationGroup(GrowArrow(a), FadeIn(l, shift=0.1 * DOWN))
                                for a, l in zip(arrows, labels[1:])], lag_ratio=0.35), run_time=2.4)
        self.wait(1.2)

        # right: the whole gradient as a 2-D vector (attention weights, all other weights), then clipped
        gx, gy, total = init["attn_norm"], init["other_norm"], init["total_norm"]
        unit = 3.8 / max(gx, gy)
        origin = np.array([-1.9, -2.75, 0])
        ax = Arrow(origin, origin + RIGHT * (gx * unit + 0.5), buff=0, color=MUTED, stroke_width=2,
                   max_tip_length_to_length_ratio=0.04)
        ay = Arrow(origin, origin + UP * (gy * unit + 0.3), buff=0, color=MUTED, stroke_width=2,
                   max_tip_length_to_length_ratio=0.04)
        ax_l = make_text("attention weights", font_size=TINY_SIZE, color=MUTED).next_to(ax, DOWN, buff=0.1)
        ax_l.align_to(ax, RIGHT)
        ay_l = make_text("all other weights", font_size=TINY_SIZE, color=MUTED).rotate(PI / 2)
        ay_l.next_to(ay, LEFT, buff=0.1).align_to(ay, UP)
        radius = clip * unit
        circle = Circle(radius=radius, color=ACCENT, stroke_width=2.5).move_to(origin)
        circle_l = make_text(f"clip radius {clip:g}", font_size=TINY_SIZE, color=ACCENT)
        circle_l.move_to(origin + RIGHT * (radius + 0.12) + UP * 0.18, aligned_edge=LEFT)
        vec = Arrow(origin, origin + unit * np.array([gx, gy, 0]), buff=0, color=GRAD_COLOR, stroke_width=6,
                    max_tip_length_to_length_ratio=0.08)
        calc = VGroup(
            make_text(f"g = ({gx:.2f}, {gy:.2f})", font_size=SMALL_SIZE, color=GRAD_COLOR),
            make_text(f"‖g‖ = √({gx:.2f}² + {gy:.2f}²) = {total:.2f}", font_size=SMALL_SIZE),
        ).arrange(DOWN, aligned_edge=LEFT, buff=0.15)
        calc.move_to([1.9, 1.2, 0], aligned_edge=UL)
        self.play(GrowArrow(ax), GrowArrow(ay), FadeIn(ax_l), FadeIn(ay_l),
                  self.say("Every weight's gradient as one vector: its length is the gradient norm"),
                  run_time=0.8)
        self.play(GrowArrow(vec), FadeIn(calc), run_time=1.0)
        self.wait(1.2)
        scale = clip / total if total > clip else 1.0
        clipped = unit * np.array([gx * scale, gy * scale, 0])
        if total > clip:
            rule = VGroup(make_text(f"{total:.2f} > {clip:g}, so scale g by", font_size=SMALL_SIZE, color=ACCENT),
                          make_text(f"{clip:g} / {total:.2f} = {scale:.3f}", font_size=SMALL_SIZE, color=ACCENT))
        else:
            rule = VGroup(make_text(f"{total:.2f} ≤ {clip:g}: left as it is", font_size=SMALL_SIZE, color=ACCENT))
        rule.add(make_text(f"clipped g = ({gx * scale:.2f}, {gy * scale:.2f})", font_size=SMALL_SIZE, color=ACCENT))
        rule.arrange(DOWN, aligned_edge=LEFT, buff=0.15).next_to(calc, DOWN, buff=0.35, aligned_edge=LEFT)
        self.play(Create(circle), FadeIn(circle_l), FadeIn(rule[:-1]),
                  self.say("Clipping: a gradient longer than the radius is scaled down to it; "
                            "its direction stays"), run_time=1.0)
        short = Arrow(origin, origin + clipped, buff=0, color=GRAD_COLOR, stroke_width=6,
                      max_tip_length_to_length_ratio=0.35)
        self.play(Transform(vec, short), FadeIn(rule[-1]), run_time=1.5)
        # the clipped gradient is small on this scale: a magnified copy of the circle beside it
        zoom = 2.5
        reach = radius * 1.25
        inset = VGroup(Line(origin + LEFT * reach, origin + RIGHT * reach, stroke_color=MUTED, stroke_width=2),
                       Line(origin + DOWN * reach, origin + UP * reach, stroke_color=MUTED, stroke_width=2),
                       circle.copy(), vec.copy())
        inset_frame = Square(side_length=2 * reach, stroke_color=FAINT, stroke_width=2).move_to(origin)
        inset = VGroup(inset_frame, inset).scale(zoom, about_point=origin).move_to([5.4, -2.05, 0])
        inset_l = make_text(f"× {zoom:g}", font_size=TINY_SIZE, color=MUTED).next_to(inset_frame, LEFT, buff=0.1)
        inset_l.align_to(inset_frame, DOWN)
        self.play(FadeIn(inset, shift=0.2 * RIGHT), FadeIn(inset_l), run_time=0.8)
        if hist["steps"]:
            real = (f"In the real run, {hist['clipped']} of {hist['steps']} steps were clipped "
                           f"(largest norm {hist['max_norm']:.2f}, at step {hist['max_iter']})")
            self.play(self.say(real), run_time=0.6)
        self.wait(2.5)

    # ------------------------------------------------------------------ the loss curve

    def loss_curve(self):
        data = numbers_training.loss_curve()
        _, tok = shipped_model.model_and_tokenizer()
        iters, loss = data["iter"], data["loss"]
        self.show_title("The loss falls", "the curve recorded while the shipped model trained")
        x_max = max(iters[-1] if iters else 1, data["eval_iter"][-1] if data["eval_iter"] else 1)
        uniform = math.log(tok.vocab_size)
        y_max = math.ceil(max(loss + data["val_loss"] + [uniform]) * 2) / 2
        axes = Axes(x_range=[0, x_max, x_max], y_range=[0, y_max, 1], x_length=9.6, y_length=4.3,
                    tips=False, axis_config={"color": MUTED, "stroke_width": 2, "include_ticks": False})
        axes.move_to(DOWN * 0.3 + LEFT * 0.2)
        ticks = VGroup()
        step_x = _nice_step(x_max)
        for v in range(0, int(x_max) + 1, step_x):
            ticks.add(make_text(f"{v:,}", font_size=TINY_SIZE, color=MUTED).next_to(axes.c2p(v, 0), DOWN, buff=0.12))
        for v in range(0, int(y_max) + 1):
            ticks.add(make_text(f"{v}", font_size=TINY_SIZE, color=MUTED).next_to(axes.c2p(0, v), LEFT, buff=0.12))
        x_l = make_text("training step", font_size=SMALL_SIZE, color=MUTED).next_to(axes.x_axis, DOWN, buff=0.5)
        y_l = make_text("loss", font_size=SMALL_SIZE, color=MUTED).next_to(axes.y_axis, UP, buff=0.1)
        self.play(Create(axes), FadeIn(ticks), FadeIn(x_l), FadeIn(y_l), run_time=1.0)

        guess = DashedLine(axes.c2p(0, uniform), axes.c2p(x_max, uniform), color=MUTED, dash_length=0.08)
        guess_l = make_text(f"ln {tok.vocab_size} = {uniform:.2f}: guessing uniformly", font_size=TINY_SIZE,
                            color=MUTED).next_to(guess, UP, buff=0.06).align_to(guess, RIGHT)
        self.play(Create(guess), FadeIn(guess_l), run_time=0.6)
        curve = VMobject(stroke_color=BAR_COLOR, stroke_width=2.5)
        curve.set_points_as_corners([axes.c2p(x, y) for x, y in zip(iters, loss)])
        train_l = make_text("train loss (each step's batch)", font_size=TINY_SIZE, color=BAR_COLOR)
        val = VGroup(*[Dot(axes.c2p(x, y), radius=0.06, color=ACCENT)
                       for x, y in zip(data["eval_iter"], data["val_loss"])])
        val_l = make_text("validation loss (held-out text)", font_size=TINY_SIZE, color=ACCENT)
        legend = VGroup(train_l, val_l).arrange(DOWN, aligned_edge=LEFT, buff=0.12)
        legend.move_to(axes.c2p(x_max * 0.5, (uniform + max(loss[-1], data["val_loss"][-1] if data["val_loss"] else 0))
                                / 2), aligned_edge=LEFT)
        self.play(Create(curve), FadeIn(train_l), run_time=3.5, rate_func=linear)
        self.play(LaggedStart(*[FadeIn(d, scale=0.5) for d in val], lag_ratio=0.1), FadeIn(val_l), run_time=1.2)
        if data["val_loss"]:
            last = data["val_loss"][-1]
            end = make_text(f"{last:.2f}", font_size=SMALL_SIZE, color=ACCENT).next_to(val[-1], UP, buff=0.12)
            self.play(FadeIn(end), FadeIn(caption(
                f"Validation loss {data['val_loss'][0]:.2f} → {last:.2f}: as unsure as a fair pick among "
                f"e^{last:.2f} ≈ {math.exp(last):.1f} characters, not {tok.vocab_size}")), run_time=0.8)
        self.wait(3.0)


def _nice_step(x_max: float) -> int:
    """A round tick spacing giving 4 to 10 ticks up to x_max."""
    for step in (1, 2, 5, 10, 20, 50, 100, 200, 250, 500, 1000, 2000, 2500, 5000, 10000, 20000, 50000):
        if x_max / step <= 8:
            return step
    return int(x_max // 5) or 1
