"""The encoder–decoder: the question is read whole by the encoder, the reply is written token by
token by the decoder, and at every step cross-attention says where in the question it looks.

The encoder's self-attention is bidirectional: a token of the question looks at the ones after
it as well as before. The decoder writes the reply greedily; each step's cross-attention
row (the last decoder layer, the head that looks most sharply) fills one row of the map under
the question. Numbers from ``numbers_seq2seq`` (the shipped "qa-en" Transformer encoder–decoder
on a question from DailyDialog's test split).

    manim -qm animations/encoder_decoder.py EncoderDecoder
"""

from manim import *

import numbers_seq2seq
from style import *

MAX_STEPS = 18      # reply rows drawn
SLOW_STEPS = 3      # steps told one by one, with their numbers
TOP_Y = 2.3         # the question row
LEFT_EDGE = -4.8    # right of the decoder box: where the reply's token labels may start
RIGHT_EDGE = 6.9
MAP_WIDTH = 7.0     # a question narrower than this is drawn larger


def question_row(tokens, label_width: float) -> TokenRow:
    """The question's tokens in boxes (a box as wide as its token, so " going" fits and stays
    readable), centred right of the decoder box and of a column ``label_width`` wide for the reply's
    tokens; shrunk only when the question is too long for the frame."""
    row = TokenRow(tokens, colors=[KEY_COLOR] * len(tokens), font_size=SMALL_SIZE, height=0.42, buff=0.05,
                   min_width=0.32)
    left = LEFT_EDGE + label_width + 0.15
    if row.width < MAP_WIDTH:  # a short question: larger, so the map under it is not a postage stamp
        row.scale(min(1.3, MAP_WIDTH / row.width))
    if row.width > RIGHT_EDGE - left:
        row.scale_to_fit_width(RIGHT_EDGE - left)
    row.move_to(UP * TOP_Y + RIGHT * 0.6)
    if row.get_left()[0] < left:
        row.shift(RIGHT * (left - row.get_left()[0]))
    return row


def reply_labels(tokens, height: float) -> VGroup:
    """One label per reply token, in the row height (the labels column's width sets the layout).
    Each starts with an invisible strut ("|"), so that centring a label on its row sets every
    token on one line ("." stays down on it); the labels are placed by their right edges."""
    labels = VGroup()
    for t in tokens:
        label = make_text("|" + show_token(t), font_size=min(SMALL_SIZE, 60 * height), color=QUERY_COLOR, mono=True)
        label[0].set_opacity(0)
        labels.add(label)
    return labels


def weight_row(weights, boxes, y: float, height: float, vmin: float, vmax: float) -> VGroup:
    """One row of cells, one under each question box, coloured by weight (dark at vmin, bright at vmax)."""
    cells = VGroup()
    for w, box in zip(weights, boxes):
        cell = Rectangle(width=box.width, height=height).set_stroke(FAINT, width=0.5)
        cell.set_fill(heat_color(w, vmin, vmax), opacity=1.0)
        cells.add(cell.move_to([box.get_center()[0], y, 0]))
    return cells


class EncoderDecoder(CourseScene):
    gallery_at = 0.93

    def construct(self):
        self.data = numbers_seq2seq.cross_attention_numbers()
        self.unit = numbers_seq2seq.token_unit()   # "character" or "token" (BPE word pieces)
        self.add(footnote(numbers_seq2seq.provenance()))
        self.show_title("Encoder–decoder", "the encoder reads the question; the decoder writes the reply, looking back at it")
        d = self.data
        self.n = min(MAX_STEPS, len(d["reply_tokens"]))
        top = TOP_Y - 0.28 - 0.25                         # below the question row (at most 1.3 x 0.42 high)
        self.h = min(0.5, (top + 2.75) / self.n)           # above the two-line caption
        self.labels = reply_labels(d["reply_tokens"][:self.n], self.h)
        row = self.encoder_part()
        self.decoder_part(row)
        self.wait(1.5)

    def encoder_part(self) -> TokenRow:
        d = self.data
        row = question_row(d["src_tokens"], max(label.width for label in self.labels))
        label = make_text("question", font_size=SMALL_SIZE, color=KEY_COLOR).next_to(row, LEFT, buff=0.25)
        n = len(d["src_tokens"])
        told = (f"a held-out question, {n} characters: one token each" if self.unit == "character" else
                f"a held-out question, {n} tokens: words and pieces of words (␣ marks a space)")
        self.play(FadeIn(row, lag_ratio=0.05), FadeIn(label), self.say(told), run_time=1.2)
        encoder = model_box("encoder", width=row.width, height=0.9, color=KEY_COLOR,
                            sublabel=f"{d['n_layer']} blocks of self-attention without a causal mask")
        encoder.next_to(row, DOWN, buff=0.9)
        self.play(FadeIn(encoder), run_time=0.6)

        e = d["encoder"]
        q, weights = e["query"], e["row"]
        even = 1 / len(weights)  # the colour scale reaches at least 3x the even share, as the explorer's does:
        top = max(max(weights), 3 * even)  # attention spread evenly looks dim, not saturated
        strip = weight_row(weights, row.boxes, row.get_bottom()[1] - 0.35, 0.3, 0.0, top)
        mark = SurroundingRectangle(row.boxes[q], color=ACCENT, buff=0.04)
        after = 100 * e["after"]
        self.play(Create(mark), FadeIn(strip, lag_ratio=0.03),
                  self.say(f"one {self.unit}, {show_token(d['src_tokens'][q])!r}, looks at the whole question: "
                           f"{after:.0f}% of its attention goes to {self.unit}s after it"), run_time=1.3)
        self.wait(1.2)
        ahead = strip[q + 1:]
        self.play(*[c.animate.set_fill(FAINT, opacity=0.35) for c in ahead],
                  self.say("a decoder's causal mask would blank those out; the encoder reads both ways, "
                           "since the whole question is there from the start"), run_time=0.8)
        self.wait(1.0)
        self.play(*[c.animate.set_fill(heat_color(w, 0.0, top), opacity=1.0)
                    for c, w in zip(ahead, weights[q + 1:])], run_time=0.6)
        self.wait(0.5)
        memory = make_text(f"one vector per question {self.unit}: the keys and values of cross-attention",
                           font_size=TINY_SIZE, color=MUTED).next_to(encoder, DOWN, buff=0.2)
        self.play(FadeOut(strip), FadeOut(mark), FadeIn(memory), run_time=0.7)
        self.wait(0.8)
        self.play(FadeOut(encoder), FadeOut(memory), run_time=0.5)
        return row

    def decoder_part(self, row: TokenRow):
        d = self.data
        n, h = self.n, self.h
        vmax = max(max(r) for r in d["cross"][:n])
        vmin, vtop = 0.0, max(vmax, 3 / len(d["src_tokens"]))  # dim when spread evenly, as in the explorer
        top = row.get_bottom()[1] - 0.25
        decoder = model_box("decoder", width=1.9, height=0.9, color=QUERY_COLOR,
                            sublabel="writes one token per step").move_to(LEFT * 5.9 + DOWN * 0.2)
        header = VGroup(*[make_text(line, font_size=TINY_SIZE, color=MUTED) for line in (
            "cross-attention", f"layer {d['layer'] + 1}, head {d['head'] + 1} of {d['n_head']}",
            "each row sums to 1", "dark: 0%", f"bright: {100 * vtop:.0f}%")]).arrange(DOWN, buff=0.08)
        if header.width > decoder.width:
            header.scale_to_fit_width(decoder.width)
        header.next_to(decoder, DOWN, buff=0.3)
        self.play(FadeIn(decoder), self.say("the decoder starts from <sos> and writes the reply one token at a "
                                            "time; at every step it looks back at the question"), run_time=0.9)
        self.wait(0.8)
        for t in range(n):
            y = top - (t + 0.5) * h
            cells = weight_row(d["cross"][t], row.boxes, y, h * 0.92, vmin, vtop)
            tok = d["reply_tokens"][t]
            label = self.labels[t]   # right-aligned beside its row, however long the token
            label.move_to([row.get_left()[0] - 0.12, y, 0], aligned_edge=RIGHT)
            if t < SLOW_STEPS:
                weights = d["cross"][t]
                j = max(range(len(weights)), key=weights.__getitem__)
                fed = "<sos>" if t == 0 else show_token(d["reply_tokens"][t - 1])
                pct = make_text(f"{100 * weights[j]:.0f}%", font_size=TINY_SIZE, color=ACCENT)
                pct.next_to(cells[j], RIGHT, buff=0.05)
                if pct.get_right()[0] > config.frame_width / 2 - 0.1:  # the last column: inside it instead
                    pct.move_to(cells[j], aligned_edge=RIGHT).shift(LEFT * 0.05)
                anims = [FadeIn(cells, lag_ratio=0.02), FadeIn(pct)]
                if t == 0:
                    anims.append(FadeIn(header))
                self.play(*anims, self.say(f"step {t + 1}: fed {fed!r}, it looks most at "
                                           f"{show_token(d['src_tokens'][j])!r} ({100 * weights[j]:.0f}%) "
                                           f"and writes {show_token(tok)!r} ({100 * d['probs'][t]:.0f}%)"),
                          run_time=1.0)
                self.play(FadeIn(label, shift=0.2 * RIGHT), run_time=0.4)
                self.wait(0.9)
                self.play(FadeOut(pct), run_time=0.3)
            else:
                if t == SLOW_STEPS:
                    self.play(self.say(f"and so on: each new row is where that reply {self.unit} looked"),
                              run_time=0.5)
                self.play(FadeIn(cells), FadeIn(label), run_time=0.25)
        more = len(d["reply_tokens"]) - n
        reply = d["reply_text"] if more <= 0 else d["reply_text_after"][n - 1] + "…"
        even = 1 / len(d["src_tokens"])
        if vmax < max(0.25, 2 * even):  # say so when the map is pale: the weights are real, not a drawing
            self.play(self.say(f"a small model after a short training: no cell gets more than {100 * vmax:.0f}% "
                               f"(an even spread: {100 * even:.0f}% each); it looks thinly all over the question"),
                      run_time=0.8)
            self.wait(1.8)
        self.play(self.say(f"its reply: {reply!r}   the true one: {d['true_reply']!r}"), run_time=0.8)
        self.wait(2.0)
