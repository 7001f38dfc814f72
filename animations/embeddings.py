"""Embeddings: each token id picks a row of the token table, each position a row of the position
table; their sum is what the first block reads.

The tables are the shipped model's real ``wte`` and ``wpe`` (drawn whole, one pixel per number),
and the columns are their real rows (the first few of the 128 dimensions).

    manim -qm animations/embeddings.py EmbeddingsAndPositions
"""

from manim import *

import numbers_tokens
import shipped_model
from style import *

TEXT = "Romeo"   # 'o' twice: the same token vector, two different positions
DIMS = 8         # dimensions drawn of each vector
CELL = 0.3
TOKEN_X0, TOKEN_DX = -1.6, 1.75   # where the token columns stand
TABLE_CENTRE = LEFT * 5.0 + DOWN * 0.55
TABLE_SIZE = (2.7, 3.4)           # width, height on screen


class EmbeddingsAndPositions(CourseScene):
    gallery_at = 0.72

    def construct(self):
        self.add(footnote(shipped_model.provenance()))
        self.show_title("Embeddings and positions", "an id picks a row of a table of learned numbers")
        emb = numbers_tokens.embeddings(TEXT)
        info = shipped_model.model_info()
        T = len(emb["ids"])
        vmax = max(abs(v) for key in ("wte", "wpe", "sum") for row in emb[key] for v in row[:DIMS])

        # the tokens and their ids
        xs = [TOKEN_X0 + TOKEN_DX * t for t in range(T)]
        boxes = VGroup(*[token_box(s, token_color(t)).move_to([x, 2.05, 0]) for t, (s, x) in
                         enumerate(zip(emb["tokens"], xs))])
        ids = VGroup(*[make_text(f"id {i}", font_size=SMALL_SIZE, color=MUTED, mono=True).next_to(b, DOWN, buff=0.1)
                       for i, b in zip(emb["ids"], boxes)])
        self.play(LaggedStart(*[FadeIn(b, shift=0.2 * DOWN) for b in boxes], lag_ratio=0.1),
                  LaggedStart(*[FadeIn(i) for i in ids], lag_ratio=0.1), run_time=1.2)

        # token embeddings: a row of wte per id
        wte = numbers_tokens.embedding_table("wte")["rows"]
        table, table_label = self.table(wte, f"token table  wte\n{info['vocab_size']} tokens × {info['n_embd']} dims")
        note = caption(f"Each id picks its row of the token table ({info['n_embd']} learned numbers; "
                       f"the first {DIMS} are drawn, red > 0 > blue)")
        self.play(FadeIn(table), FadeIn(table_label), FadeIn(note), run_time=1.0)
        tok_cols = []
        for t in range(T):
            col = vector_column(emb["wte"][t][:DIMS], cell_size=CELL, vmax=vmax, outline=TOK_EMB_COLOR)
            col.next_to(ids[t], DOWN, buff=0.25)
            tok_cols.append(self.lift_row(table, emb["ids"][t], len(wte), col, run_time=0.9 if t < 2 else 0.6))
        dim_labels = VGroup(make_text("dim 0", font_size=TINY_SIZE, color=MUTED).next_to(tok_cols[0].cells[0], LEFT, buff=0.15),
                            make_text(f"dim {DIMS - 1}", font_size=TINY_SIZE, color=MUTED)
                            .next_to(tok_cols[0].cells[-1], LEFT, buff=0.15))
        self.play(FadeIn(dim_labels), run_time=0.3)
        same = [t for t in range(T) if emb["ids"].count(emb["ids"][t]) > 1]
        if same:
            marks = VGroup(*[SurroundingRectangle(tok_cols[t], color=ACCENT, buff=0.06) for t in same])
            same_note = caption(f"The same token, the same row: both '{emb['tokens'][same[0]]}' get identical "
                                f"vectors. So far, nothing says where a token stands")
            self.play(Create(marks), FadeOut(note), FadeIn(same_note), run_time=0.8)
            self.wait(1.6)
            self.play(FadeOut(marks), run_time=0.4)
            note = same_note

        # position embeddings: a row of wpe per position
        wpe = numbers_tokens.embedding_table("wpe")["rows"]
        pos_table, pos_label = self.table(wpe, f"position table  wpe\n{info['block_size']} positions × {info['n_embd']} dims")
        pos_note = caption("Each position picks its row of a second table, learned the same way")
        self.play(FadeOut(table), FadeOut(table_label), FadeIn(pos_table), FadeIn(pos_label),
                  FadeOut(note), FadeIn(pos_note), run_time=0.9)
        pos_cols, plus = [], VGroup()
        for t in range(T):
            col = vector_column(emb["wpe"][t][:DIMS], cell_size=CELL, vmax=vmax, outline=POS_EMB_COLOR)
            col.next_to(tok_cols[t], RIGHT, buff=0.42)
            plus.add(make_text("+", font_size=BODY_SIZE, color=MUTED).move_to(
                (tok_cols[t].get_right() + col.get_left()) / 2))
            pos_cols.append(self.lift_row(pos_table, t, len(wpe), col, run_time=0.8 if t < 2 else 0.5))
            self.add(plus[t])
        pos_labels = VGroup(*[make_text(f"pos {t}", font_size=TINY_SIZE, color=POS_EMB_COLOR)
                              .next_to(pos_cols[t], DOWN, buff=0.1) for t in range(T)])
        self.play(FadeIn(pos_labels), run_time=0.4)
        self.wait(1.0)

        # the sum: what block 1 reads
        sums = [vector_column(emb["sum"][t][:DIMS], cell_size=CELL, vmax=vmax, outline=OUTPUT_COLOR)
                .move_to([xs[t], tok_cols[t].get_center()[1], 0]) for t in range(T)]
        sum_note = caption(f"Add them: x = token vector + position vector. Now the two "
                           f"'{emb['tokens'][same[0]]}' differ" if same else
                           "Add them: x = token vector + position vector")
        self.play(*[ReplacementTransform(VGroup(tok_cols[t], pos_cols[t], plus[t]), sums[t]) for t in range(T)],
                  FadeOut(pos_labels), FadeOut(pos_note), FadeIn(sum_note), run_time=1.4)
        self.remove(*tok_cols, *pos_cols, *plus)  # transformed into the sums, which now stand in their place
        if same:
            marks = VGroup(*[SurroundingRectangle(sums[t], color=ACCENT, buff=0.06) for t in same])
            self.play(Create(marks), run_time=0.6)
            self.wait(1.2)
            self.play(FadeOut(marks), run_time=0.4)
        brace = Brace(VGroup(*sums), DOWN, color=MUTED)
        shape = make_text(f"{T} tokens × {info['n_embd']} numbers: the input of the first block",
                          font_size=SMALL_SIZE, color=FG).next_to(brace, DOWN, buff=0.1)
        self.play(GrowFromCenter(brace), FadeIn(shape), FadeOut(pos_table), FadeOut(pos_label), run_time=0.9)
        self.wait(2.5)

    def table(self, rows, label: str):
        """A whole embedding table as a pixel image, with its name above it."""
        image = matrix_image(rows, width=TABLE_SIZE[0], height=TABLE_SIZE[1]).move_to(TABLE_CENTRE)
        frame = SurroundingRectangle(image, color=FAINT, buff=0.03, stroke_width=1.5)
        text = make_text(label, font_size=SMALL_SIZE - 2, color=MUTED, line_spacing=0.8).next_to(frame, UP, buff=0.15)
        return VGroup(image, frame), text

    def lift_row(self, table, row: int, n_rows: int, column: VGroup, run_time: float = 0.8) -> VGroup:
        """Highlight row ``row`` of ``table`` and lift a copy of it out into ``column``; returns the column."""
        image = table[0]
        h = image.height / n_rows
        y = image.get_top()[1] - (row + 0.5) * h
        mark = Rectangle(width=image.width + 0.12, height=max(h, 0.05), stroke_color=ACCENT, stroke_width=2.5)
        mark.move_to([image.get_center()[0], y, 0])
        strip = column.copy().rotate(PI / 2).stretch_to_fit_width(image.width).stretch_to_fit_height(max(h, 0.05))
        strip.move_to(mark)
        self.play(Create(mark), run_time=run_time * 0.4)
        self.play(ReplacementTransform(strip, column), FadeOut(mark), run_time=run_time * 0.6)
        return column
