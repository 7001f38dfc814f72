"""Decoding strategies, as a tree of candidates with the shipped model's own probabilities.

From one prompt: greedy (always the most likely character), sampling (a seeded draw at
temperature 1, as ``mg.generate`` makes it) and beam search (``mg.beam_search``, keeping the best
few partial texts). Each step's candidates are the model's real top choices; at the end, the
probability of each whole continuation.

    manim -qm animations/decoding.py DecodingStrategies
"""

import math

from manim import *

import numbers_sampling
import shipped_model
from style import *

# Prompts to draw from: the first where beam search beats greedy is shown (the point of beam
# search), else the first. All real model numbers; re-training the model may change the pick.
PROMPTS = ("To be, or not to", "My lord, I", "What is", "I pray you, sir", "O Romeo, Romeo")
STEPS = 4         # characters to add
K = 3             # candidates shown per step for greedy and sampling
BEAM_WIDTH = 2
SEED = 0
ROOT_X = -5.1     # centre of the prompt box
COL_X0, COL_DX = -2.5, 2.2
ROW_Y0, ROW_DY = 1.3, 0.85   # the top candidate row, and the gap between rows
RESULT_Y = {"greedy": -2.0, "sampling": -2.45, "beam": -2.9}  # where each strategy's result line stays
KEPT, DROPPED = ACCENT, FAINT
GREEDY_COLOR, SAMPLE_COLOR, BEAM_COLOR = "#5b9cf5", "#63c787", "#d569c4"


def node(token: str, text: str, color=FG, stroke=MUTED) -> VGroup:
    """A candidate: the token in a box, a number (its probability) to the right."""
    box = token_box(token, stroke, font_size=SMALL_SIZE + 2, height=0.5, min_width=0.5)
    label = make_text(text, font_size=TINY_SIZE, color=color).next_to(box, RIGHT, buff=0.1)
    g = VGroup(box, label)
    g.box, g.label = box, label
    return g


def edge(a: Mobject, b: Mobject, color=MUTED, width: float = 2) -> Line:
    return Line(a.get_right() + RIGHT * 0.04, b.get_left() + LEFT * 0.04, stroke_color=color, stroke_width=width)


def pick_example() -> dict:
    """decoding_paths of the first prompt in PROMPTS where beam search finds a likelier text than greedy."""
    runs = [numbers_sampling.decoding_paths(p, steps=STEPS, k=K, beam_width=BEAM_WIDTH, seed=SEED) for p in PROMPTS]
    for d in runs:
        if d["beam"]["results"][0]["logprob"] > d["greedy"]["logprob"] + 1e-6:
            return d
    return runs[0]


def pct(p: float) -> str:
    return f"{100 * p:.1f}%" if p >= 0.001 else f"{100 * p:.2f}%"


class DecodingStrategies(CourseScene):
    gallery_at = 0.78

    def construct(self):
        self.data = pick_example()
        self.prompt = self.data["prompt"]
        self.add(footnote(shipped_model.provenance()))
        self.show_title("Decoding strategies", "which character comes next? three ways to choose")
        self.root = token_box(self.prompt, ACCENT, font_size=SMALL_SIZE, height=0.6, raw=True)
        self.root.move_to([ROOT_X, ROW_Y0 - ROW_DY, 0])
        self.play(FadeIn(self.root), run_time=0.6)
        results = VGroup()
        g = self.path("greedy", "Greedy: always take the most likely character", GREEDY_COLOR)
        results.add(g)
        s = self.path("sampling", f"Sampling: draw from the probabilities (temperature "
                      f"{self.data['sampling']['temperature']:g}, seed {SEED})", SAMPLE_COLOR)
        results.add(s)
        b = self.beam()
        results.add(b)
        self.compare(results)

    # ------------------------------------------------------------------ greedy and sampling: one path

    def path(self, key: str, title: str, color) -> VGroup:
        d = self.data[key]
        head = make_text(title, font_size=SUBTITLE_SIZE, color=color).move_to(UP * 2.15)
        note = caption(f"Each column: the model's {K} most likely next characters, most likely on top")
        self.play(FadeIn(head), FadeIn(note), run_time=0.6)
        parent, drawn = self.root, VGroup()
        for s, st in enumerate(d["steps"]):
            x = COL_X0 + s * COL_DX
            nodes = VGroup()
            for r, (t, p) in enumerate(zip(st["tokens"], st["probs"])):
                nodes.add(node(t, pct(p)).move_to([x + 0.3, ROW_Y0 - r * ROW_DY, 0]))
            chosen_rank = st["chosen_rank"]
            if chosen_rank is None:  # a draw from outside the top k: give it a row of its own
                nodes.add(node(st["chosen"], pct(st["chosen_prob"])).move_to([x + 0.3, ROW_Y0 - K * ROW_DY, 0]))
                chosen_rank = K
            edges = VGroup(*[edge(parent, n.box) for n in nodes])
            self.play(LaggedStart(*[AnimationGroup(Create(e), FadeIn(n)) for e, n in zip(edges, nodes)],
                                  lag_ratio=0.2), run_time=0.9 if s == 0 else 0.6)
            pick = nodes[chosen_rank]
            others = VGroup(*[VGroup(e, n) for r, (e, n) in enumerate(zip(edges, nodes)) if r != chosen_rank])
            self.play(pick.box.box.animate.set_stroke(color, width=4),
                      edges[chosen_rank].animate.set_stroke(color, width=4),
                      others.animate.set_opacity(0.25), run_time=0.5 if s == 0 else 0.35)
            drawn.add(edges, nodes)
            parent = pick
            self.wait(0.6 if s == 0 else 0.2)
        result = self.result_line(key, d["text"], d["logprob"], color)
        self.play(FadeIn(result, shift=0.1 * UP), run_time=0.6)
        self.wait(1.6)
        self.play(FadeOut(drawn), FadeOut(head), FadeOut(note), run_time=0.5)
        return result

    def result_line(self, key: str, new_text: str, logprob: float, color) -> VGroup:
        names = {"greedy": "greedy", "sampling": "sampling", "beam": f"beam search (width {BEAM_WIDTH})"}
        g = VGroup(make_text(f"{names[key]}:", font_size=SMALL_SIZE, color=color),
                   make_text(f"“{show_token(new_text)}”", font_size=SMALL_SIZE, mono=True),
                   make_text(f"p(all {len(new_text)} characters) = {pct(math.exp(logprob))}", font_size=SMALL_SIZE,
                             color=MUTED)).arrange(RIGHT, buff=0.25)
        return g.move_to([-6.5, RESULT_Y[key], 0], aligned_edge=LEFT)

    # ------------------------------------------------------------------ beam search: several paths

    def beam(self) -> VGroup:
        d = self.data["beam"]
        head = make_text(f"Beam search: keep the {BEAM_WIDTH} most likely texts at every step",
                         font_size=SUBTITLE_SIZE, color=BEAM_COLOR).move_to(UP * 2.15)
        note = caption("The number is the probability of the whole text so far: the product along its path")
        self.play(FadeIn(head), FadeIn(note), run_time=0.6)
        prev_beams = [self.root]  # the node of each running beam
        drawn = VGroup()
        best_nodes = []
        for s, st in enumerate(d["steps"]):
            x = COL_X0 + s * COL_DX
            cands = st["candidates"]
            n = len(cands)
            top = (ROW_Y0 - ROW_DY) + (n - 1) * 0.4
            nodes, edges = VGroup(), VGroup()
            for c_i, c in enumerate(cands):
                nd = node(c["token"], pct(math.exp(c["total_logprob"])))
                nd.move_to([x + 0.3, top - c_i * 0.8, 0])
                nodes.add(nd)
                edges.add(edge(prev_beams[c["parent"]], nd.box))
            self.play(LaggedStart(*[AnimationGroup(Create(e), FadeIn(nd)) for e, nd in zip(edges, nodes)],
                                  lag_ratio=0.15), run_time=0.9 if s == 0 else 0.7)
            kept = set(st["beams"])
            anims = []
            for c_i, c in enumerate(cands):
                if c_i in kept:
                    anims += [nodes[c_i].box.box.animate.set_stroke(BEAM_COLOR, width=4),
                              edges[c_i].animate.set_stroke(BEAM_COLOR, width=3.5)]
                else:
                    anims.append(VGroup(edges[c_i], nodes[c_i]).animate.set_opacity(0.25))
            self.play(*anims, run_time=0.5)
            drawn.add(edges, nodes)
            prev_beams = [nodes[i] for i in st["beams"]]
            best_nodes.append(nodes)
            self.wait(0.7 if s == 0 else 0.3)
        best = d["results"][0]
        result = self.result_line("beam", best["text"], best["logprob"], BEAM_COLOR)
        self.play(FadeIn(result, shift=0.1 * UP), run_time=0.6)
        self.wait(1.6)
        self.play(FadeOut(drawn), FadeOut(head), FadeOut(note), run_time=0.5)
        return result

    # ------------------------------------------------------------------ the three side by side

    def compare(self, results: VGroup):
        head = make_text("The same model, three different texts", font_size=SUBTITLE_SIZE, color=FG).move_to(UP * 2.15)
        target = results.copy().arrange(DOWN, aligned_edge=LEFT, buff=0.4).scale(1.2).move_to(DOWN * 0.3)
        self.play(FadeIn(head), *[Transform(r, t) for r, t in zip(results, target)],
                  self.root.animate.move_to(UP * 1.2), run_time=1.0)
        g, b = self.data["greedy"]["logprob"], self.data["beam"]["results"][0]["logprob"]
        if b > g + 1e-6:
            verdict = "Beam search found a likelier text: the best first step is not always the best path"
        elif abs(b - g) <= 1e-6:
            verdict = "Here beam search agrees with greedy; sampling trades probability for variety"
        else:
            verdict = "Greedy's text is the likeliest here; beam search ranks whole texts"
        self.play(FadeIn(caption(verdict)), run_time=0.6)
        self.wait(3.0)
