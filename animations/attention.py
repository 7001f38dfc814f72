"""Self-attention, one query at a time, with the shipped model's real numbers.

One token (the query) asks every token before it (the keys) how relevant it is: a dot product
of its query vector with each key vector, scaled by 1/sqrt(d_head), turned into weights by a
softmax; the answer is the weighted sum of the value vectors. The layer and head are picked
from the model at render time: the one whose query looks back hardest at a single earlier token.

    manim -qm animations/attention.py SelfAttention
"""

import math

from manim import *

import numbers_attention
import shipped_model
from style import *

TEXT = "To be, or not to be"
QUERY_POS = TEXT.rindex("b")  # the second 'b': what should follow it?
DIMS = 8                      # vector dimensions drawn (of d_head = 32)

ROW_H = 0.23                  # the table: one row per key
TOP_Y = 1.6
CELL = 0.24
X_TOKEN, X_K, X_SCORE, X_SCALED, X_BAR, X_V, X_OUT = -6.35, -5.75, -2.95, -1.95, -1.25, 2.05, 4.75
BAR_MAX = 2.2


def pick_head(att: dict, q: int) -> tuple[int, int]:
    """(layer, head) whose query at position q puts the most weight on one earlier token."""
    best = None
    for layer in range(att["n_layer"]):
        for head in range(att["n_head"]):
            w = att["weights"][layer][head][q]
            score = max(w[:q]) if q > 0 else w[q]
            if best is None or score > best[0]:
                best = (score, layer, head)
    return best[1], best[2]


def row_y(j: int) -> float:
    return TOP_Y - j * ROW_H


def vec_row(values, left_x: float, y: float, vmax: float, outline=None) -> VGroup:
    v = vector_row(values[:DIMS], cell_size=CELL, vmax=vmax, outline=outline)
    return v.move_to([left_x + v.width / 2, y, 0])


def number(s: str, x: float, y: float, color=FG, size: float = 15) -> Text:
    return make_text(s, font_size=size, color=color, mono=True).move_to([x, y, 0])


class SelfAttention(CourseScene):
    gallery_at = 0.76

    def construct(self):
        self.add(footnote(shipped_model.provenance()))
        att = numbers_attention.all_attention(TEXT)
        layer, head = pick_head(att, QUERY_POS)
        d = numbers_attention.qkv_for(TEXT, layer, head, QUERY_POS)
        self.d, self.layer, self.head = d, layer, head
        self.show_title("Self-attention: one query",
                        f"layer {layer + 1}, head {head + 1} of the shipped model, "
                        f"the query is the second '{d['tokens'][QUERY_POS]}'")
        row = self.projections()
        self.table(row)
        self.attention_map()
        self.wait(1.5)

    # ------------------------------------------------------------------ x -> q, k, v

    def projections(self) -> TokenRow:
        d = self.d
        tokens = d["tokens"]
        row = TokenRow(tokens, height=0.5, font_size=SMALL_SIZE + 2).move_to(UP * 1.9)
        q_box = row.boxes[QUERY_POS]
        for j in range(QUERY_POS + 1, len(tokens)):
            row.boxes[j].set_opacity(0.3)
        mark = SurroundingRectangle(q_box, color=QUERY_COLOR, buff=0.05)
        self.play(FadeIn(row), run_time=0.8)
        self.play(Create(mark), run_time=0.5)

        x = d["x"][QUERY_POS]
        x_vec = vector_row(x[:16], cell_size=0.28, outline=MUTED).move_to(LEFT * 3.3 + DOWN * 0.4)
        x_label = make_text("x: the query token's vector (16 of 128 dims)", font_size=SMALL_SIZE, color=MUTED)
        x_label.next_to(x_vec, DOWN, buff=0.2)
        self.play(TransformFromCopy(q_box, x_vec), FadeIn(x_label), run_time=0.9)
        vmax = max(abs(v) for key in ("q", "output") for v in d[key][:DIMS])
        vmax = max([vmax] + [abs(v) for key in ("k", "v") for r in d[key] for v in r[:DIMS]])
        self.vmax = vmax
        outs = VGroup()
        arrows = VGroup()
        for name, values, color, y in (("q", d["q"], QUERY_COLOR, 0.75), ("k", d["k"][QUERY_POS], KEY_COLOR, -0.4),
                                       ("v", d["v"][QUERY_POS], VALUE_COLOR, -1.55)):
            vec = vector_row(values[:DIMS], cell_size=0.3, vmax=vmax, outline=color).move_to(RIGHT * 2.9 + UP * y)
            label = make_text(f"{name} = x · W_{name}", font_size=SMALL_SIZE, color=color).next_to(vec, RIGHT, buff=0.25)
            arrow = Arrow(x_vec.get_right(), vec.get_left(), buff=0.15, color=color, stroke_width=3)
            outs.add(VGroup(vec, label))
            arrows.add(arrow)
        note = caption(f"Three learned matrices turn x into a query, a key and a value: {d['d_head']} numbers "
                       f"each for this head ({DIMS} drawn). Every token gets its own k and v too")
        self.play(LaggedStart(*[AnimationGroup(GrowArrow(a), FadeIn(o, shift=0.2 * RIGHT))
                                for a, o in zip(arrows, outs)], lag_ratio=0.3), FadeIn(note), run_time=2.0)
        self.wait(2.2)
        self.play(*[FadeOut(m) for m in (x_vec, x_label, outs, arrows, note, mark)], run_time=0.6)
        return row

    # ------------------------------------------------------------------ the table: one row per key

    def table(self, row: TokenRow):
        d, vmax = self.d, self.vmax
        tokens, n = d["tokens"], len(d["tokens"])
        keys = range(QUERY_POS + 1)
        # the sentence stands up: one row per token
        labels = VGroup(*[token_box(t, token_color(j), height=ROW_H - 0.03, min_width=0.34, font_size=15)
                          .move_to([X_TOKEN, row_y(j), 0]) for j, t in enumerate(tokens)])
        for j in range(QUERY_POS + 1, n):
            labels[j].set_opacity(0.3)
        self.play(*[ReplacementTransform(row.boxes[j], labels[j]) for j in range(n)], run_time=1.2)
        self.remove(row)  # the labels took the boxes' places inside the row: stand them on their own
        self.add(*labels)

        headers = VGroup(
            make_text("key", font_size=TINY_SIZE, color=MUTED).move_to([X_TOKEN, row_y(-1) + 0.03, 0]),
            make_text(f"k  ({DIMS} of {d['d_head']})", font_size=TINY_SIZE, color=KEY_COLOR)
            .move_to([X_K + DIMS * CELL / 2, row_y(-1) + 0.03, 0]),
        )
        k_rows = VGroup(*[vec_row(d["k"][j], X_K, row_y(j), vmax) for j in keys])
        future = VGroup(*[make_text("future: masked", font_size=TINY_SIZE, color=FAINT)
                          .move_to([X_K + DIMS * CELL / 2, row_y(j), 0]) for j in range(QUERY_POS + 1, n)])
        q_vec = vec_row(d["q"], X_K, row_y(-2.4), vmax, outline=QUERY_COLOR)
        q_label = make_text(f"q of '{tokens[QUERY_POS]}'", font_size=TINY_SIZE + 2, color=QUERY_COLOR)
        q_label.next_to(q_vec, LEFT, buff=0.2)
        note = caption("Every token before the query (and the query itself) offers a key; "
                       "later tokens are hidden: the model may not read the future")
        self.play(FadeIn(headers), LaggedStart(*[FadeIn(k, shift=0.1 * RIGHT) for k in k_rows], lag_ratio=0.04),
                  FadeIn(future), FadeIn(note), run_time=1.6)
        self.play(TransformFromCopy(labels[QUERY_POS], q_vec), FadeIn(q_label), run_time=0.8)
        self.wait(0.8)

        # scores: q . k
        y_head = row_y(-1) + 0.03
        scores = VGroup(*[number(f"{d['scores'][j]:.1f}", X_SCORE, row_y(j)) for j in keys])
        masked = VGroup(*[number("−∞", X_SCORE, row_y(j), color=FAINT) for j in range(QUERY_POS + 1, n)])
        h_score = make_text("q·k", font_size=TINY_SIZE, color=FG).move_to([X_SCORE, y_head, 0])
        note2 = caption("score = q · k (multiply the numbers pairwise, add them up): "
                        "how well each key matches what the query looks for")
        self.play(FadeIn(h_score), LaggedStart(*[FadeIn(s) for s in scores], lag_ratio=0.04), FadeIn(masked),
                  FadeOut(note), FadeIn(note2), run_time=1.6)
        self.wait(1.6)

        # scaled
        root = math.sqrt(d["d_head"])
        scaled = VGroup(*[number(f"{d['scaled'][j]:.2f}", X_SCALED, row_y(j)) for j in keys])
        h_scaled = make_text(f"÷ √{d['d_head']}", font_size=TINY_SIZE, color=FG).move_to([X_SCALED, y_head, 0])
        note3 = caption(f"Divide by √d_head = √{d['d_head']} ≈ {root:.2f}, so the scores do not grow with the "
                        f"vector size and the softmax stays soft")
        self.play(FadeIn(h_scaled), *[TransformFromCopy(s, t) for s, t in zip(scores, scaled)],
                  FadeOut(note2), FadeIn(note3), run_time=1.4)
        self.wait(1.4)

        # softmax -> weights
        w = d["weights"]
        wmax = max(w)
        bars = VGroup(*[Rectangle(width=max(0.01, BAR_MAX * w[j]), height=ROW_H * 0.7)
                        .set_fill(heat_color(w[j], 0, wmax), 1).set_stroke(width=0)
                        .move_to([X_BAR + BAR_MAX * w[j] / 2, row_y(j), 0]) for j in keys])
        pcts = VGroup(*[make_text(f"{100 * w[j]:.0f}%", font_size=13, color=FG)
                        .next_to(bars[j], RIGHT, buff=0.08) for j in keys])
        zeros = VGroup(*[make_text("0%", font_size=13, color=FAINT).move_to([X_BAR + 0.2, row_y(j), 0])
                         for j in range(QUERY_POS + 1, n)])
        h_w = make_text("softmax → weight", font_size=TINY_SIZE, color=FG).move_to([X_BAR + 0.9, y_head, 0])
        note4 = caption("softmax turns the scores into weights: positive, summing to 1 "
                        "(a masked score of −∞ gets exactly 0)")
        self.play(FadeIn(h_w), *[GrowFromEdge(b, LEFT) for b in bars], FadeIn(pcts), FadeIn(zeros),
                  *[labels[j].box.animate.set_fill(heat_color(w[j], 0, wmax), opacity=0.9) for j in keys],
                  FadeOut(note3), FadeIn(note4), run_time=1.6)
        top = sorted(keys, key=lambda j: -w[j])[:3]
        marks = VGroup(*[SurroundingRectangle(VGroup(labels[j], pcts[j]), color=ACCENT, buff=0.03,
                                              stroke_width=2) for j in top])
        self.play(Create(marks), run_time=0.7)
        self.wait(1.6)
        self.play(FadeOut(marks), run_time=0.4)

        # values and their weighted sum
        v_rows = VGroup(*[vec_row(d["v"][j], X_V, row_y(j), vmax) for j in keys])
        h_v = make_text(f"v  ({DIMS} of {d['d_head']})", font_size=TINY_SIZE, color=VALUE_COLOR)
        h_v.move_to([X_V + DIMS * CELL / 2, y_head, 0])
        self.play(FadeIn(h_v), LaggedStart(*[FadeIn(v, shift=0.1 * LEFT) for v in v_rows], lag_ratio=0.03),
                  run_time=1.2)
        out_y = row_y(QUERY_POS // 2)
        output = vector_column(d["output"][:DIMS], cell_size=0.3, vmax=vmax, outline=OUTPUT_COLOR)
        output.move_to([X_OUT + 1.3, out_y - 0.4, 0])
        out_label = make_text("output\n= Σ weight · v", font_size=TINY_SIZE + 2, color=OUTPUT_COLOR,
                              line_spacing=0.8).next_to(output, UP, buff=0.2)
        copies = [v_rows[j].copy().set_opacity(min(1.0, 0.15 + w[j] / wmax)) for j in keys]
        note5 = caption(f"The output for '{tokens[QUERY_POS]}' is the values added up, each times its weight: "
                        f"mostly the values of the keys it attends to")
        self.play(*[c.animate.rotate(-PI / 2).move_to(output).set_opacity(0) for c in copies],
                  FadeIn(output, run_time=1.6), FadeIn(out_label), FadeOut(note4), FadeIn(note5), run_time=1.8)
        self.remove(*copies)
        self.wait(2.5)

    # ------------------------------------------------------------------ every query at once

    def attention_map(self):
        self.clear_stage()
        a = numbers_attention.attention(TEXT, self.layer, self.head)
        T = len(a["tokens"])
        masked = [[a["weights"][i][j] if j <= i else None for j in range(T)] for i in range(T)]
        brightest = max(v for row in masked[1:] for v in row if v is not None)  # row 0 is always 1
        hm = Heatmap(masked, row_labels=a["tokens"], col_labels=a["tokens"], cell_size=0.2, gap=0.02,
                     vmin=0.0, vmax=brightest, label_size=14, label_colors=[token_color(j) for j in range(T)])
        hm.move_to(DOWN * 0.3 + LEFT * 1.6)
        query_mark = SurroundingRectangle(hm.cells[QUERY_POS], color=QUERY_COLOR, buff=0.03)
        side = VGroup(make_text("rows: queries", font_size=SMALL_SIZE, color=QUERY_COLOR),
                      make_text("columns: keys", font_size=SMALL_SIZE, color=KEY_COLOR),
                      make_text("each row sums to 1", font_size=SMALL_SIZE, color=MUTED),
                      make_text("above the diagonal: masked", font_size=SMALL_SIZE, color=MUTED),
                      VGroup(make_text("0%", font_size=TINY_SIZE, color=MUTED),
                             *[Square(0.22).set_fill(heat_color(t, 0, 1), 1).set_stroke(width=0) for t in
                               (0, 0.25, 0.5, 0.75, 1.0)],
                             make_text(f"{100 * brightest:.0f}% or more", font_size=TINY_SIZE, color=MUTED))
                      .arrange(RIGHT, buff=0.06))
        side.arrange(DOWN, aligned_edge=LEFT, buff=0.25).next_to(hm, RIGHT, buff=0.6)
        note = caption(f"Every token is a query at the same time: the attention map of layer {self.layer + 1}, "
                       f"head {self.head + 1} (the row we followed is outlined)")
        self.play(FadeIn(hm), run_time=1.2)
        self.play(Create(query_mark), FadeIn(side), FadeIn(note), run_time=0.9)
        self.wait(3.0)
