"""Rotary position embeddings (RoPE), with a real query and key of SmolLM2-135M-Instruct.

A head vector is cut into pairs of numbers; at position m each pair is turned by the angle
m · θᵢ, every pair at its own speed θᵢ = base^(-2i/D). A query at m and a key at n then score
q·k as a function of m − n only: move both by the same number of places and the score stays.
The vectors and scores are the model's own (layer 0, head 0), computed by ``numbers_chat``.

    manim -qm animations/rope.py RotaryPositions
"""

import math

from manim import *

import numbers_chat
from style import *

PAIRS = (0, 4)       # a fast pair (1 radian per position) and a slower one
POSITIONS = 6        # positions shown turning
RADIUS = 1.45        # length of a drawn pair (directions are the model's; lengths are scaled)


def plane(centre, label: str) -> VGroup:
    """A circle with axes, where a pair of numbers is drawn as an arrow from the centre."""
    circle = Circle(radius=RADIUS, stroke_color=FAINT, stroke_width=2).move_to(centre)
    axes = VGroup(Line(centre + LEFT * (RADIUS + 0.2), centre + RIGHT * (RADIUS + 0.2), stroke_color=FAINT, stroke_width=1),
                  Line(centre + DOWN * (RADIUS + 0.2), centre + UP * (RADIUS + 0.2), stroke_color=FAINT, stroke_width=1))
    title = make_text(label, font_size=SMALL_SIZE, color=MUTED).next_to(circle, UP, buff=0.3)
    return VGroup(circle, axes, title)


def pair_arrow(centre, xy, color) -> Arrow:
    angle = math.atan2(xy[1], xy[0])
    tip = centre + RADIUS * np.array([math.cos(angle), math.sin(angle), 0.0])
    return Arrow(centre, tip, buff=0, color=color, stroke_width=5, max_tip_length_to_length_ratio=0.15)


class RotaryPositions(CourseScene):
    gallery_at = 0.93

    def construct(self):
        self.data = numbers_chat.rope_numbers(pairs=PAIRS)
        self.add(footnote(numbers_chat.provenance()))
        self.show_title("RoPE: positions as rotations", "queries and keys are turned by their position")
        self.turning()
        self.clear_stage()
        self.relative()
        self.wait(1.5)

    def turning(self):
        d = self.data
        centres = [LEFT * 3.3 + DOWN * 0.4, RIGHT * 3.3 + DOWN * 0.4]
        planes, arrows = VGroup(), []
        for centre, p in zip(centres, d["pairs"]):
            planes.add(plane(centre, f"pair {p['pair']}: θ = {p['theta']:.3g} rad per position"))
            arrows.append(pair_arrow(centre, p["q"], QUERY_COLOR))
        position = make_text("position m = 0", font_size=BODY_SIZE, color=ACCENT).move_to(DOWN * 0.4)
        self.play(FadeIn(planes), *[GrowArrow(a) for a in arrows], FadeIn(position),
                  self.say(f"two of the {d['head_size'] // 2} pairs of a real query of layer 0, each drawn as an arrow"),
                  run_time=1.2)
        self.wait(0.6)
        self.play(self.say("at position m, pair i turns by m · θᵢ: the first pairs fast, the last ones slowly"),
                  run_time=0.6)
        for m in range(1, POSITIONS):
            ghosts = [a.copy().set_opacity(0.25) for a in arrows]
            self.add(*ghosts)
            new_label = make_text(f"position m = {m}", font_size=BODY_SIZE, color=ACCENT).move_to(position)
            self.play(*[Rotate(a, p["theta"], about_point=c) for a, p, c in zip(arrows, d["pairs"], centres)],
                      Transform(position, new_label), run_time=0.7)
        self.wait(1.0)

    def relative(self):
        d = self.data
        pair = d["pairs"][0]
        centre = LEFT * 2.6 + DOWN * 0.5
        self.play(FadeIn(plane(centre, f"pair {pair['pair']} of a query and a key")),
                  self.say(f"the query of {show_token(d['query_token'])!s} and the key of "
                           f"{show_token(d['key_token'])!s}, {d['offset']} tokens apart"), run_time=0.8)
        q, k = pair_arrow(centre, pair["q"], QUERY_COLOR), pair_arrow(centre, pair["k"], KEY_COLOR)
        legend = VGroup(make_text("query", font_size=SMALL_SIZE, color=QUERY_COLOR),
                        make_text("key", font_size=SMALL_SIZE, color=KEY_COLOR)).arrange(RIGHT, buff=0.4)
        legend.next_to(centre + DOWN * RADIUS, DOWN, buff=0.35)
        self.play(GrowArrow(q), GrowArrow(k), FadeIn(legend), run_time=0.8)
        rows = VGroup()
        first = d["scores"][0]
        self.play(Rotate(q, first["m"] * pair["theta"], about_point=centre),
                  Rotate(k, first["n"] * pair["theta"], about_point=centre), run_time=1.0)
        header = make_text("query at m, key at n → score q·k (all 32 pairs)", font_size=SMALL_SIZE, color=MUTED)
        header.move_to(RIGHT * 3.1 + UP * 1.4)
        self.play(FadeIn(header), run_time=0.4)
        previous = first
        for i, s in enumerate(d["scores"]):
            if i:
                shift = s["m"] - previous["m"]
                self.play(Rotate(q, shift * pair["theta"], about_point=centre),
                          Rotate(k, shift * pair["theta"], about_point=centre),
                          self.say(f"both move {shift} places on: each turns by the same angle"), run_time=1.0)
            row = make_text(f"m = {s['m']:>2}, n = {s['n']:>2}   m − n = {s['m'] - s['n']}   q·k = {s['score']:.3f}",
                            font_size=SMALL_SIZE, mono=True)
            row.next_to(header, DOWN, buff=0.35 + 0.5 * i).align_to(header, LEFT)
            rows.add(row)
            self.play(FadeIn(row, shift=0.1 * RIGHT), run_time=0.5)
            previous = s
        box = SurroundingRectangle(VGroup(*[r for r in rows]), color=ACCENT, buff=0.15)
        self.play(Create(box), self.say("the angle between them, and so the score, depends only on the offset m − n"),
                  run_time=0.8)
