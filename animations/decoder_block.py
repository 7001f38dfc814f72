"""A decoder block, and the stack of them, with the shipped model's own numbers.

One token's vector travels through a block: LayerNorm → attention → add back to the residual
stream → LayerNorm → MLP → add back. Under each stage, the first few numbers of the vector and
its length, straight from the model's hidden states. Then the whole model: embeddings, the stack
of blocks, the final LayerNorm, the LM head and the softmax's most likely next tokens.

    manim -qm animations/decoder_block.py DecoderBlock
"""

from manim import *

import numbers_block
import shipped_model
from style import *

SENTENCE = "To be, or"
LAYER = 1   # the block whose inside is shown (0-based: the second block)
DIMS = 5    # how many of the vector's numbers are written out
STREAM_Y = 1.75
BRANCH_Y = 0.8
STREAM_COLOR = "#7aa2f7"
BLOCK_COLOR = "#4fc3c9"


def op_box(label: str, color, width: float = 1.5, height: float = 0.62) -> VGroup:
    """A sub-layer of the block (LayerNorm, attention, MLP) as a labelled box."""
    t = make_text(label, font_size=SMALL_SIZE)
    box = RoundedRectangle(corner_radius=0.1, width=max(width, t.width + 0.3), height=height, stroke_color=color,
                           stroke_width=2.5, fill_color=color, fill_opacity=0.12)
    return VGroup(box, t.move_to(box))


def plus_node(color=STREAM_COLOR) -> VGroup:
    c = Circle(radius=0.2, stroke_color=color, stroke_width=3).set_fill(BG, opacity=1)
    return VGroup(c, make_text("+", font_size=BODY_SIZE, color=color).move_to(c))


def stage_column(values, vmax: float, name: str, norm: float, color) -> VGroup:
    """The first DIMS numbers of a vector as a column of cells, its name above, its length below."""
    col = vector_column(values[:DIMS], cell_size=0.46, vmax=vmax, show_values=True, fmt="{:+.2f}", outline=color,
                        font_size=14)
    head = make_text(name, font_size=TINY_SIZE - 1, color=color).next_to(col, UP, buff=0.1)
    foot = make_text(f"‖·‖ = {norm:.1f}", font_size=TINY_SIZE - 1, color=FG).next_to(col, DOWN, buff=0.1)
    return VGroup(col, head, foot)


def path_through(points) -> VMobject:
    return VMobject().set_points_as_corners([np.array(p, dtype=float) for p in points])


class DecoderBlock(CourseScene):
    gallery_at = 0.58

    def construct(self):
        self.add(footnote(shipped_model.provenance()))
        self.inside_block()
        self.clear_stage()
        self.the_stack()

    # ------------------------------------------------------------------ one block, stage by stage

    def inside_block(self):
        data = numbers_block.block_stages(SENTENCE, LAYER, -1)
        tok = show_token(data["tokens"][data["pos"]])
        self.show_title(f"Inside decoder block {LAYER + 1}",
                        f"the last token “{tok}”: its vector on the residual stream, "
                        f"the first {DIMS} of its {data['n_embd']} numbers written out")

        # the diagram: the stream runs left to right; each sub-layer branches off and adds back
        xs = {"x": -6.2, "ln1": -4.5, "attn": -2.6, "add1": -0.8, "ln2": 0.9, "mlp": 2.8, "add2": 4.6, "out": 6.2}
        stream = Line([xs["x"], STREAM_Y, 0], [xs["out"], STREAM_Y, 0], stroke_color=STREAM_COLOR, stroke_width=5)
        stream_l = make_text("residual stream", font_size=TINY_SIZE, color=STREAM_COLOR)
        stream_l.next_to(stream.get_start(), UP, buff=0.12).align_to(stream, LEFT)
        ln1 = op_box("LayerNorm", MUTED).move_to([xs["ln1"], BRANCH_Y, 0])
        attn = op_box("Attention", QUERY_COLOR).move_to([xs["attn"], BRANCH_Y, 0])
        ln2 = op_box("LayerNorm", MUTED).move_to([xs["ln2"], BRANCH_Y, 0])
        mlp = op_box("MLP", VALUE_COLOR).move_to([xs["mlp"], BRANCH_Y, 0])
        add1 = plus_node().move_to([xs["add1"], STREAM_Y, 0])
        add2 = plus_node().move_to([xs["add2"], STREAM_Y, 0])
        fork1, fork2 = xs["ln1"] - 1.1, xs["ln2"] - 1.1
        wire = dict(color=MUTED, width=3)
        wires = VGroup(
            path_through([(fork1, STREAM_Y, 0), (fork1, BRANCH_Y, 0),
                          (ln1.get_left()[0], BRANCH_Y, 0)]).set_stroke(**wire),
            Arrow(ln1.get_right(), attn.get_left(), buff=0.05, color=MUTED, stroke_width=3),
            path_through([(attn.get_right()[0], BRANCH_Y, 0), (xs["add1"], BRANCH_Y, 0),
                          (xs["add1"], STREAM_Y - 0.2, 0)]).set_stroke(**wire),
            path_through([(fork2, STREAM_Y, 0), (fork2, BRANCH_Y, 0),
                          (ln2.get_left()[0], BRANCH_Y, 0)]).set_stroke(**wire),
            Arrow(ln2.get_right(), mlp.get_left(), buff=0.05, color=MUTED, stroke_width=3),
            path_through([(mlp.get_right()[0], BRANCH_Y, 0), (xs["add2"], BRANCH_Y, 0),
                          (xs["add2"], STREAM_Y - 0.2, 0)]).set_stroke(**wire),
        )
        frame = SurroundingRectangle(VGroup(ln1, add2, stream), color=BLOCK_COLOR, buff=0.3, corner_radius=0.1,
                                     stroke_width=2)
        frame_l = make_text(f"block {LAYER + 1}", font_size=TINY_SIZE, color=BLOCK_COLOR)
        frame_l.next_to(frame, UP, buff=0.05).align_to(frame, RIGHT)
        self.play(Create(stream), FadeIn(stream_l), run_time=0.8)
        self.play(Create(wires), FadeIn(VGroup(ln1, attn, ln2, mlp, add1, add2)), Create(frame), FadeIn(frame_l),
                  run_time=1.5)

        # the columns: the vector after each stage, under the place where it exists
        vmax = max(abs(v) for s in data["stages"] for v in s["vector"][:DIMS])
        colors = [STREAM_COLOR, MUTED, QUERY_COLOR, STREAM_COLOR, MUTED, VALUE_COLOR, STREAM_COLOR]
        names = ["x (in)", "LayerNorm(x)", "attention", "x + attention", "LayerNorm", "MLP", "out"]
        places = [xs["x"] + 0.35, xs["ln1"], xs["attn"], xs["add1"], xs["ln2"], xs["mlp"], xs["add2"] + 0.9]
        cols = [stage_column(s["vector"], vmax, n, s["norm"], c).move_to([x, -1.5, 0])
                for s, n, c, x in zip(data["stages"], names, colors, places)]
        dot = Dot([xs["x"], STREAM_Y, 0], radius=0.11, color=ACCENT)
        self.play(FadeIn(cols[0], shift=0.2 * UP), FadeIn(dot),
                  self.say("The block reads the stream and adds back to it; nothing else changes the stream"),
                  run_time=0.9)
        self.wait(0.8)

        def travel(branch_points):
            """The dot goes down the branch while a copy stays on the stream: both meet at the plus."""
            ghost = dot.copy().set_color(STREAM_COLOR)
            self.add(ghost)
            return ghost, [MoveAlongPath(dot, path_through(branch_points)),
                           ghost.animate.move_to([branch_points[-1][0], STREAM_Y, 0])]

        # attention half: LayerNorm, attention, add
        self.play(MoveAlongPath(dot, path_through([(xs["x"], STREAM_Y, 0), (fork1, STREAM_Y, 0), (fork1, BRANCH_Y, 0),
                                                   (xs["ln1"], BRANCH_Y, 0)])),
                  run_time=0.9)
        self.play(Indicate(ln1), FadeIn(cols[1], shift=0.2 * UP),
                  self.say("LayerNorm rescales the vector: mean 0, spread 1 "
                            "(then a learned scale and shift)"), run_time=0.9)
        self.wait(1.3)
        self.play(dot.animate.move_to([xs["attn"], BRANCH_Y, 0]), run_time=0.5)
        self.play(Indicate(attn, color=QUERY_COLOR), FadeIn(cols[2], shift=0.2 * UP),
                  self.say("Attention writes what this token gathered from the tokens before it"),
                  run_time=0.9)
        self.wait(1.3)
        ghost, anims = travel([(xs["attn"], BRANCH_Y, 0), (xs["add1"], BRANCH_Y, 0), (xs["add1"], STREAM_Y, 0)])
        ghost.move_to([fork1, STREAM_Y, 0])
        self.play(*anims, run_time=0.9)
        self.remove(ghost)
        self.play(Flash(add1, color=ACCENT), FadeIn(cols[3], shift=0.2 * UP),
                  self.say("Residual add: x + attention(LayerNorm(x)). "
                            "The stream keeps x and gains the update"), run_time=0.9)
        self.wait(1.5)

        # MLP half: LayerNorm, MLP, add
        self.play(MoveAlongPath(dot, path_through([(xs["add1"], STREAM_Y, 0), (fork2, STREAM_Y, 0),
                                                   (fork2, BRANCH_Y, 0), (xs["ln2"], BRANCH_Y, 0)])), run_time=0.8)
        self.play(Indicate(ln2), FadeIn(cols[4], shift=0.2 * UP), run_time=0.7)
        self.play(dot.animate.move_to([xs["mlp"], BRANCH_Y, 0]), run_time=0.5)
        self.play(Indicate(mlp, color=VALUE_COLOR), FadeIn(cols[5], shift=0.2 * UP),
                  self.say(f"The MLP works on each token alone: {data['n_embd']} → "
                            f"{4 * data['n_embd']} → GELU → {data['n_embd']}"), run_time=0.9)
        self.wait(1.3)
        ghost, anims = travel([(xs["mlp"], BRANCH_Y, 0), (xs["add2"], BRANCH_Y, 0), (xs["add2"], STREAM_Y, 0)])
        ghost.move_to([fork2, STREAM_Y, 0])
        self.play(*anims, run_time=0.9)
        self.remove(ghost)
        self.play(Flash(add2, color=ACCENT), dot.animate.move_to([xs["out"], STREAM_Y, 0]),
                  FadeIn(cols[6], shift=0.2 * UP),
                  self.say(f"Out of block {LAYER + 1}: the model's own hidden state, "
                            f"ready for the next block"), run_time=1.0)
        self.wait(2.5)

    # ------------------------------------------------------------------ the whole model

    def the_stack(self):
        data = numbers_block.stack_and_head(SENTENCE, -1, 5)
        tok = show_token(data["tokens"][data["pos"]])
        n = data["n_layer"]
        self.show_title("The whole model", f"{n} blocks, then LayerNorm, the LM head and a softmax")

        row = TokenRow(data["tokens"], font_size=SMALL_SIZE, height=0.45).move_to([-4.2, -2.75, 0])
        mark = SurroundingRectangle(row.boxes[data["pos"]], color=ACCENT, buff=0.04)
        names = ["embeddings (token + position)"] + [f"block {b + 1}" for b in range(n)] + ["final LayerNorm"]
        colors = [TOK_EMB_COLOR] + [BLOCK_COLOR] * n + [MUTED]
        boxes = VGroup(*[op_box(s, c, width=3.6, height=0.5) for s, c in zip(names, colors)])
        boxes.arrange(UP, buff=0.24).next_to(row, UP, buff=0.4)
        arrows = VGroup(Arrow(row.get_top(), boxes[0].get_bottom(), buff=0.04, color=MUTED, stroke_width=3),
                        *[Arrow(a.get_top(), b.get_bottom(), buff=0.03, color=MUTED, stroke_width=3,
                                max_tip_length_to_length_ratio=0.35) for a, b in zip(boxes, boxes[1:])])
        norms = data["hidden_norms"] + [data["ln_f_norm"]]
        norm_l = VGroup(*[make_text(f"‖x‖ = {v:.1f}", font_size=TINY_SIZE, color=FG).next_to(b, RIGHT, buff=0.25)
                          for v, b in zip(norms, boxes)])
        self.play(FadeIn(row), Create(mark), run_time=0.6)
        for k, (b, a, nl) in enumerate(zip(boxes, arrows, norm_l)):
            anims = [GrowArrow(a), FadeIn(b, shift=0.15 * UP), FadeIn(nl)]
            if k == 1:
                anims.append(self.say(f"Every block adds to the stream of “{tok}”: its length ‖x‖ after each"))
            self.play(*anims, run_time=0.55)
        self.wait(1.2)

        # LM head and softmax
        head = op_box(f"LM head  {data['n_embd']} → {data['vocab_size']}", OUTPUT_COLOR, height=0.5)
        head.move_to([0.9, boxes[-1].get_center()[1], 0])
        a_head = Arrow(norm_l[-1].get_right(), head.get_left(), buff=0.15, color=MUTED, stroke_width=3)
        logits = VGroup(*[make_text(f"{show_token(t)}  {v:+.2f}", font_size=TINY_SIZE, mono=True)
                          for t, v in zip(data["top_tokens"], data["top_logits"])])
        logits.arrange(DOWN, aligned_edge=LEFT, buff=0.16).next_to(head, DOWN, buff=0.5)
        logits_l = make_text(f"{data['vocab_size']} logits (top 5)", font_size=TINY_SIZE, color=MUTED)
        logits_l.next_to(logits, UP, buff=0.12)
        self.play(GrowArrow(a_head), FadeIn(head), run_time=0.7)
        self.play(FadeIn(logits_l), LaggedStart(*[FadeIn(t, shift=0.1 * DOWN) for t in logits], lag_ratio=0.12),
                  self.say("The LM head scores every token of the vocabulary (it reuses the "
                            "token embedding matrix)"), run_time=1.0)
        self.wait(1.2)
        bars = ProbabilityBars(data["top_tokens"], data["top_probs"], bar_length=3.0, font_size=SMALL_SIZE)
        bars.next_to(logits, RIGHT, buff=1.6).align_to(logits, UP)
        soft = make_text("softmax", font_size=SMALL_SIZE, color=ACCENT)
        a_soft = Arrow(logits.get_right(), bars.get_left(), buff=0.2, color=MUTED, stroke_width=3)
        soft.next_to(a_soft, UP, buff=0.08)
        rest = make_text(f"all other {data['vocab_size'] - 5} tokens: {100 * data['rest']:.1f}%", font_size=TINY_SIZE,
                         color=MUTED).next_to(bars, DOWN, buff=0.2).align_to(bars, LEFT)
        self.play(GrowArrow(a_soft), FadeIn(soft), FadeIn(bars), FadeIn(rest),
                  self.say(f"After “{SENTENCE}” the model expects "
                            f"“{show_token(data['top_tokens'][0])}” "
                            f"with probability {100 * data['top_probs'][0]:.0f}%"), run_time=1.2)
        self.play(Create(bars.highlight(0)), run_time=0.5)
        self.wait(3.0)
