"""The causal mask and multi-head attention, with the shipped model's own numbers.

CausalMask: one head's score matrix (q·k / √d for every query and key) fills in row by row;
the future is set to −∞; then a softmax turns each row into attention weights, and −∞ becomes 0.
MultiHeadAttention: all heads of one layer side by side, each with its own pattern; each head's
output for one token, the heads concatenated, and the output projection back to the stream.

    manim -qm animations/multihead.py CausalMask
    manim -qm animations/multihead.py MultiHeadAttention
"""

import math

from manim import *

import numbers_attention
import shipped_model
from style import *

SENTENCE = "To be, or"   # short enough for a readable 9 x 9 matrix
NEG_INF = "−∞"


def focused_head(att: dict) -> tuple:
    """(layer, head) whose attention on the sentence is the most focused (lowest mean entropy of
    its rows that see at least 3 keys): the clearest picture of what a mask and a softmax do."""
    def entropy(row):
        return -sum(p * math.log(p) for p in row if p and p > 0)

    scores = {(l, h): sum(entropy(r) for r in att["weights"][l][h][2:])
              for l in range(att["n_layer"]) for h in range(att["n_head"])}
    return min(scores, key=scores.get)


def most_varied_layer(att: dict) -> int:
    """The layer whose heads' attention maps differ the most from one another (mean L1 distance)."""
    def dist(a, b):
        return sum(abs(x - y) for ra, rb in zip(a, b) for x, y in zip(ra, rb))

    def spread(layer):
        maps = att["weights"][layer]
        return sum(dist(maps[i], maps[j]) for i in range(len(maps)) for j in range(i + 1, len(maps)))

    return max(range(att["n_layer"]), key=spread)


def matrix_cells(rows, cell: float, fill, text, font_size: float = TINY_SIZE, gap: float = 0.04) -> VGroup:
    """A grid of squares, one VGroup(square, number) per cell, grouped by row.

    rows: [T][T] values (None = masked); fill(i, j, v) -> colour; text(i, j, v) -> (str, colour) or None.
    """
    grid = VGroup()
    step = cell + gap
    for i, r in enumerate(rows):
        row = VGroup()
        for j, v in enumerate(r):
            sq = Square(side_length=cell).move_to(RIGHT * j * step + DOWN * i * step)
            colour = fill(i, j, v)
            sq.set_fill(colour, opacity=1.0).set_stroke(FAINT, width=1)
            cellg = VGroup(sq)
            label = text(i, j, v)
            if label is not None:
                s, c = label
                t = make_text(s, font_size=font_size, color=c)
                if t.width > cell * 0.9:
                    t.scale_to_fit_width(cell * 0.9)
                cellg.add(t.move_to(sq))
            row.add(cellg)
        grid.add(row)
    return grid


def token_labels(grid: VGroup, tokens, side, font_size: float = SMALL_SIZE, buff: float = 0.15) -> VGroup:
    """Token labels beside the rows (side=LEFT) or above the columns (side=UP) of ``grid``."""
    labels = VGroup()
    for k, tok in enumerate(tokens):
        anchor = grid[k][0] if side is LEFT else grid[0][k]
        t = make_text(show_token(tok), font_size=font_size, color=token_color(k), mono=True)
        labels.add(t.next_to(anchor, side, buff=buff))
    return labels


def _fmt_score(v: float) -> str:
    return f"{v:+.1f}".replace("-", "−")


class CausalMask(CourseScene):
    gallery_at = 0.93

    def construct(self):
        data = numbers_attention.masked_scores(SENTENCE, *focused_head(numbers_attention.all_attention(SENTENCE)))
        tokens, scores, weights = data["tokens"], data["masked"], data["weights"]
        T = len(tokens)
        self.add(footnote(shipped_model.provenance()))
        self.show_title("The causal mask", "a token may look at itself and the past, never the future")

        # ------------------------------------------------------------ the empty matrix
        cell = 0.52
        vmax = max(abs(v) for r in scores for v in r if v is not None)
        score_grid = matrix_cells(
            scores, cell,
            fill=lambda i, j, v: FAINT if v is None else diverging_color(v, vmax),
            text=lambda i, j, v: (NEG_INF, MUTED) if v is None else (_fmt_score(v), FG))
        score_grid.move_to(LEFT * 3.4 + DOWN * 0.5)
        frame = VGroup(*[Square(side_length=cell).set_stroke(FAINT, width=1).move_to(c[0])
                         for r in score_grid for c in r])
        rows_l = token_labels(score_grid, tokens, LEFT)
        cols_l = token_labels(score_grid, tokens, UP)
        q_note = make_text("queries", font_size=TINY_SIZE, color=QUERY_COLOR)
        q_note.rotate(PI / 2).next_to(rows_l, LEFT, buff=0.2)
        k_note = make_text("keys", font_size=TINY_SIZE, color=KEY_COLOR).next_to(cols_l, UP, buff=0.1)
        k_note.align_to(cols_l, LEFT)

        panel_x = 0.9
        lines = VGroup(
            make_text(f"layer {data['layer'] + 1}, head {data['head'] + 1} of the shipped model",
                      font_size=SMALL_SIZE, color=MUTED),
            make_text("(its most focused head on this text)", font_size=TINY_SIZE, color=MUTED),
            formula(f"score = q · k / √{data['d_head']}", font_size=BODY_SIZE),
        ).arrange(DOWN, aligned_edge=LEFT, buff=0.18)
        lines.move_to(RIGHT * panel_x + UP * 1.55, aligned_edge=LEFT)
        self.play(FadeIn(frame), FadeIn(rows_l), FadeIn(cols_l), FadeIn(q_note), FadeIn(k_note),
                  FadeIn(lines), run_time=1.0)

        # ------------------------------------------------------------ scores, row by row
        row_box = SurroundingRectangle(VGroup(rows_l[0], score_grid[0]), color=ACCENT, buff=0.05)
        explain = self.panel_text([f"row 1: query “{show_token(tokens[0])}”",
                                   "sees key 1 only; the rest is future"], UP * 0.3, panel_x)
        self.play(Create(row_box), FadeIn(explain), run_time=0.6)
        for i in range(T):
            visible = [score_grid[i][j] for j in range(i + 1)]
            future = [score_grid[i][j] for j in range(i + 1, T)]
            target = SurroundingRectangle(VGroup(rows_l[i], score_grid[i]), color=ACCENT, buff=0.05)
            anims = [Transform(row_box, target)] if i else []
            if i == 1:
                new_explain = self.panel_text(["each row: one query against every key",
                                               f"future keys get {NEG_INF}"], UP * 0.3, panel_x)
                anims += [FadeOut(explain), FadeIn(new_explain)]
                explain = new_explain
            anims.append(LaggedStart(*[FadeIn(c, scale=0.6) for c in visible], lag_ratio=0.15))
            if future:  # the last row has no future
                anims.append(LaggedStart(*[FadeIn(c) for c in future], lag_ratio=0.1))
            self.play(*anims, run_time=1.2 if i == 0 else 0.7)
            if i == 0:
                self.wait(1.0)
        self.remove(frame)
        self.play(FadeOut(row_box), run_time=0.3)
        tri = self.panel_text([f"{T * (T - 1) // 2} of {T * T} cells are the future:",
                               f"set to {NEG_INF} before the softmax"], UP * 0.3, panel_x)
        self.play(FadeOut(explain), FadeIn(tri),
                  *[Indicate(score_grid[i][j], color=MUTED, scale_factor=1.08)
                    for i in range(T) for j in range(i + 1, T)], run_time=1.2)
        self.wait(1.2)

        # ------------------------------------------------------------ softmax, row by row
        weight_grid = matrix_cells(
            [[None if j > i else weights[i][j] for j in range(T)] for i in range(T)], cell,
            fill=lambda i, j, v: FAINT if v is None else heat_color(v),
            text=lambda i, j, v: ("0", MUTED) if v is None else (f"{v:.2f}", "#111111" if v > 0.55 else FG))
        weight_grid.move_to(score_grid)
        sm = self.panel_text(["softmax of each row:", "weights = e^score / Σ e^score",
                              f"e^({NEG_INF}) = 0: no weight on the future"], DOWN * 0.9, panel_x)
        self.play(FadeIn(sm), run_time=0.6)
        row_box = SurroundingRectangle(VGroup(rows_l[0], score_grid[0]), color=ACCENT, buff=0.05)
        total = make_text("", font_size=SMALL_SIZE)
        self.play(Create(row_box), run_time=0.3)
        for i in range(T):
            target = SurroundingRectangle(VGroup(rows_l[i], score_grid[i]), color=ACCENT, buff=0.05)
            new_total = make_text(f"row {i + 1} sums to {sum(weights[i][: i + 1]):.2f}", font_size=SMALL_SIZE,
                                  color=ACCENT).move_to(RIGHT * panel_x + DOWN * 2.7, aligned_edge=LEFT)
            # squares change colour in place; numbers cross-fade (morphing digits reads as noise)
            cells = [anim for old, new in zip(score_grid[i], weight_grid[i])
                     for anim in (Transform(old[0], new[0]), FadeOut(old[1]), FadeIn(new[1]))]
            self.play(Transform(row_box, target), *cells,
                      Transform(total, new_total) if i else FadeIn(new_total), run_time=1.0 if i == 0 else 0.65)
            if i == 0:
                self.remove(total)
                total = new_total
                self.wait(0.6)
        self.play(FadeOut(row_box), run_time=0.3)
        self.play(FadeIn(caption("Each token's output mixes only the values of itself and the tokens before it")),
                  run_time=0.6)
        self.wait(2.5)

    def panel_text(self, lines, at, x: float) -> VGroup:
        g = VGroup(*[make_text(s, font_size=SMALL_SIZE, color=FG if k == 0 else MUTED) for k, s in enumerate(lines)])
        g.arrange(DOWN, aligned_edge=LEFT, buff=0.14)
        return g.move_to(RIGHT * x + at, aligned_edge=LEFT)


class MultiHeadAttention(CourseScene):
    gallery_at = 0.5

    def construct(self):
        layer = most_varied_layer(numbers_attention.all_attention(SENTENCE))
        data = numbers_attention.head_outputs(SENTENCE, layer, -1)
        tokens, H, D, C = data["tokens"], data["n_head"], data["d_head"], data["n_embd"]
        T, pos = len(tokens), data["pos"]
        self.add(footnote(shipped_model.provenance()))
        self.show_title("Multi-head attention",
                        f"layer {layer + 1}: {H} heads read the same tokens, each in its own way")

        # ------------------------------------------------------------ the heads' patterns
        cell = 0.3
        maps = VGroup()
        for h in range(H):
            w = data["weights"][h]
            grid = matrix_cells([[None if j > i else w[i][j] for j in range(T)] for i in range(T)], cell,
                                fill=lambda i, j, v: FAINT if v is None else heat_color(v),
                                text=lambda i, j, v: None, gap=0.03)
            cols = token_labels(grid, tokens, UP, font_size=TINY_SIZE - 2, buff=0.08)
            name = make_text(f"head {h + 1}", font_size=SMALL_SIZE, color=token_color(h + 4))
            name.next_to(cols, UP, buff=0.12)
            maps.add(VGroup(grid, cols, name))
        maps.arrange(RIGHT, buff=0.4).move_to(UP * 0.4)
        rows = token_labels(maps[0][0], tokens, LEFT, font_size=TINY_SIZE - 2, buff=0.14)
        self.play(LaggedStart(*[FadeIn(m, shift=0.2 * UP) for m in maps], lag_ratio=0.25), FadeIn(rows),
                  self.say(f"Each head has its own W_Q, W_K, W_V ({C} → {D} numbers each): its own pattern"),
                  run_time=2.2)
        self.wait(4.0)

        # ------------------------------------------------------------ one token: each head's output
        query = f"“{show_token(tokens[pos])}”"
        marks = VGroup(*[SurroundingRectangle(m[0][pos], color=ACCENT, buff=0.03) for m in maps])
        outs = VGroup()
        vmax = max(abs(v) for hv in data["head_out"] for v in hv)
        for h in range(H):
            strip = vector_row(data["head_out"][h], cell_size=maps[h][0].width / D, vmax=vmax)
            strip.stretch_to_fit_height(0.32).next_to(maps[h][0], DOWN, buff=0.5)
            frame = SurroundingRectangle(strip, color=token_color(h + 4), buff=0.03, stroke_width=2)
            outs.add(VGroup(strip, frame))
        self.play(Create(marks), self.say(f"For the last token {query}: each head mixes its values → {D} numbers"),
                  run_time=0.8)
        self.play(LaggedStart(*[GrowFromEdge(o, UP) for o in outs], lag_ratio=0.2), run_time=1.4)
        self.wait(2.5)

        # ------------------------------------------------------------ concatenate, project
        self.play(FadeOut(maps), FadeOut(rows), FadeOut(marks), outs.animate.move_to(UP * 2.0), run_time=0.9)
        heads_l = VGroup(*[make_text(f"head {h + 1} · {D}", font_size=TINY_SIZE, color=token_color(h + 4))
                           .next_to(outs[h], UP, buff=0.1) for h in range(H)])
        self.play(FadeIn(heads_l), run_time=0.4)
        width = config.frame_width - 2.2
        concat = VGroup()
        for h in range(H):
            strip = vector_row(data["head_out"][h], cell_size=width / C, vmax=vmax).stretch_to_fit_height(0.4)
            concat.add(VGroup(strip, SurroundingRectangle(strip, color=token_color(h + 4), buff=0.02,
                                                          stroke_width=2)))
        concat.arrange(RIGHT, buff=0.0).move_to(UP * 0.75)
        concat_l = make_text(f"concatenated: {H} × {D} = {C} numbers", font_size=SMALL_SIZE, color=FG)
        concat_l.next_to(concat, UP, buff=0.15)
        self.play(*[ReplacementTransform(outs[h], concat[h]) for h in range(H)], FadeOut(heads_l),
                  FadeIn(concat_l), self.say("The heads' outputs side by side: one vector as wide as the stream"),
                  run_time=1.4)
        self.wait(2.0)

        proj_t = make_text(f"output projection W_O  ({C} × {C})", font_size=SMALL_SIZE).move_to(DOWN * 0.45)
        proj_box = RoundedRectangle(corner_radius=0.1, width=proj_t.width + 0.5, height=0.62,
                                    stroke_color=OUTPUT_COLOR, fill_color=OUTPUT_COLOR, fill_opacity=0.1)
        proj_box.move_to(proj_t)
        projected = vector_row(data["projected"], cell_size=width / C).stretch_to_fit_height(0.4)
        projected = VGroup(projected, SurroundingRectangle(projected, color=OUTPUT_COLOR, buff=0.02, stroke_width=2))
        projected.move_to(DOWN * 1.65)
        a1 = Arrow(concat.get_bottom(), proj_box.get_top(), buff=0.08, color=MUTED, stroke_width=3)
        a2 = Arrow(proj_box.get_bottom(), projected.get_top(), buff=0.08, color=MUTED, stroke_width=3)
        proj_l = make_text(f"attention output for {query}: length {data['projected_norm']:.2f}, "
                           f"added to the residual stream", font_size=SMALL_SIZE, color=FG)
        proj_l.next_to(projected, DOWN, buff=0.15)
        self.play(GrowArrow(a1), FadeIn(proj_box), FadeIn(proj_t), run_time=0.8)
        self.play(GrowArrow(a2), FadeIn(projected, shift=0.2 * DOWN), FadeIn(proj_l),
                  self.say("W_O mixes what the heads found into one update for the token"),
                  run_time=1.2)
        self.wait(3.0)
