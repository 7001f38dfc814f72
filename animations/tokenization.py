"""Tokenization: text becomes pieces, pieces become integer ids.

First the course model's view (one id per character), then byte-level BPE: the sentence's bytes,
and the merges a BPETokenizer really learned from Tiny Shakespeare, applied one at a time in the
order they were learned, until the token ids come out. Last, a Chinese line: each character is
three UTF-8 bytes, and a tokenizer that learned its merges from English keeps them as bytes.

    manim -qm animations/tokenization.py Tokenization
"""

from manim import *

import numbers_tokens
import shipped_model
from style import *

SENTENCE = "To be, or not to be"
CHINESE = "你好，世界"
BYTE_COLOR = "#7d8594"  # a token that is still a single byte


def bpe_color(token_id: int) -> str:
    """Bytes are grey; each learned token gets a colour of its own."""
    return BYTE_COLOR if token_id < 256 else token_color(token_id)


def chunk_row(tokens: list, ids: list, font_size: float = BODY_SIZE) -> VGroup:
    """Tokens grouped by chunk: VGroup of chunks, each a VGroup of token boxes, wider gaps between chunks."""
    row = VGroup()
    for chunk_tokens, chunk_ids in zip(tokens, ids):
        row.add(VGroup(*[token_box(t, bpe_color(i), font_size=font_size) for t, i in zip(chunk_tokens, chunk_ids)])
                .arrange(RIGHT, buff=0.06))
    row.arrange(RIGHT, buff=0.3)
    if row.width > config.frame_width - 1.0:
        row.scale_to_fit_width(config.frame_width - 1.0)
    return row


def merge_spans(old_ids: list, new_ids: list, pair: list, new_id: int) -> list:
    """How many old tokens each new token covers (1, or 2 where the pair was merged), chunk by chunk."""
    spans, j = [], 0
    for t in new_ids:
        if t == new_id and j + 1 < len(old_ids) and old_ids[j:j + 2] == list(pair) and old_ids[j] != new_id:
            spans.append(2)
            j += 2
        else:
            spans.append(1)
            j += 1
    return spans


class Tokenization(CourseScene):
    gallery_at = 0.62

    def construct(self):
        self.add(footnote(shipped_model.provenance()))
        self.show_title("Tokenization", "text → pieces (tokens) → integer ids")
        sentence = make_text(f"“{SENTENCE}”", font_size=36).move_to(UP * 1.9)
        self.play(Write(sentence), run_time=1.0)
        self.characters()
        self.bpe()
        self.play(FadeOut(sentence), run_time=0.4)
        self.chinese()
        self.wait(1.5)

    # ------------------------------------------------------------------ one id per character

    def characters(self):
        chars = numbers_tokens.char_ids(SENTENCE)
        row = TokenRow(chars["tokens"], max_width=config.frame_width - 1.0).move_to(UP * 0.5)
        ids = row.ids_below(chars["ids"])
        note = caption(f"The course's model reads characters: a vocabulary of {chars['vocab_size']} "
                       f"symbols, one id each ({len(chars['ids'])} tokens here)")
        self.play(LaggedStart(*[FadeIn(b, shift=0.2 * DOWN) for b in row.boxes], lag_ratio=0.05), run_time=1.4)
        self.play(LaggedStart(*[FadeIn(i) for i in ids], lag_ratio=0.04), FadeIn(note), run_time=1.2)
        self.wait(1.8)
        self.play(FadeOut(ids), FadeOut(note), FadeOut(row), run_time=0.6)

    # ------------------------------------------------------------------ byte-level BPE, merge by merge

    def bpe(self):
        data = numbers_tokens.bpe_merges(SENTENCE)
        heading = make_text(f"Byte-level BPE, {data['num_merges']} merges learned from Tiny Shakespeare",
                            font_size=SUBTITLE_SIZE, color=MUTED).move_to(UP * 1.15)
        row = chunk_row(data["start"]["tokens"], data["start"]["ids"]).move_to(UP * 0.2)
        count = self.token_count([i for c in data["start"]["ids"] for i in c])
        note = caption("Start from the UTF-8 bytes, cut into words; then apply the learned merges, "
                       "earliest-learned first")
        self.play(FadeIn(heading), LaggedStart(*[FadeIn(b) for c in row for b in c], lag_ratio=0.03),
                  FadeIn(count), FadeIn(note), run_time=1.4)
        self.wait(1.0)

        old_ids = data["start"]["ids"]
        info = None
        for k, step in enumerate(data["steps"]):
            fast = k >= 4  # the first merges slowly, the rest briskly
            a, b = step["pair_tokens"]
            new_info = VGroup(
                make_text(f"merge #{step['rank'] + 1}", font_size=SMALL_SIZE, color=MUTED),
                token_box(a, bpe_color(step["pair"][0])), make_text("+", font_size=BODY_SIZE),
                token_box(b, bpe_color(step["pair"][1])), make_text("→", font_size=BODY_SIZE),
                token_box(step["token"], bpe_color(step["new_id"])),
                make_text(f"id {step['new_id']}", font_size=SMALL_SIZE, color=MUTED),
            ).arrange(RIGHT, buff=0.18).move_to(DOWN * 1.75)
            # the places where the pair sits, before merging
            marks = VGroup()
            for c, (ids_before, ids_after) in enumerate(zip(old_ids, step["ids"])):
                j = 0
                for span in merge_spans(ids_before, ids_after, step["pair"], step["new_id"]):
                    if span == 2:
                        marks.add(SurroundingRectangle(VGroup(row[c][j], row[c][j + 1]), color=ACCENT, buff=0.05))
                    j += span
            self.play(FadeOut(info) if info else Wait(0.01), FadeIn(new_info), Create(marks),
                      run_time=0.4 if fast else 0.8)
            new_row = chunk_row(step["tokens"], step["ids"]).move_to(row)
            moves = []
            for c, (ids_before, ids_after) in enumerate(zip(old_ids, step["ids"])):
                j = 0
                for t, span in enumerate(merge_spans(ids_before, ids_after, step["pair"], step["new_id"])):
                    moves.append(ReplacementTransform(VGroup(*row[c][j:j + span]), new_row[c][t]))
                    j += span
            new_count = self.token_count([i for c in step["ids"] for i in c]).move_to(count)
            self.play(*moves, FadeOut(marks), Transform(count, new_count), run_time=0.5 if fast else 0.9)
            self.remove(*[m for c in row for m in c])
            self.add(new_row)
            row, old_ids, info = new_row, step["ids"], new_info
            self.wait(0.2 if fast else 0.6)

        flat = [box for chunk in row for box in chunk]
        ids = VGroup(*[make_text(str(i), font_size=SMALL_SIZE, color=MUTED, mono=True).next_to(box, DOWN, buff=0.15)
                       for i, box in zip(data["final_ids"], flat)])
        done = caption(f"No learned merge applies any more: {len(SENTENCE)} characters → "
                       f"{len(data['final_ids'])} tokens, and these ids are what the model reads")
        self.play(FadeOut(info), FadeOut(note), LaggedStart(*[FadeIn(i) for i in ids], lag_ratio=0.08),
                  FadeIn(done), run_time=1.2)
        self.wait(2.5)
        self.play(*[FadeOut(m) for m in (heading, row, ids, count, done)], run_time=0.6)

    def token_count(self, ids) -> Text:
        return make_text(f"{len([i for i in ids])} tokens", font_size=SMALL_SIZE, color=ACCENT).move_to(DOWN * 0.85)

    # ------------------------------------------------------------------ Chinese: bytes become tokens

    def chinese(self):
        chars = numbers_tokens.utf8_bytes(CHINESE)
        data = numbers_tokens.bpe_merges(CHINESE)
        line = make_text(CHINESE, font_size=44).move_to(UP * 1.9)
        self.play(FadeIn(line), run_time=0.6)

        # each character, and under it its UTF-8 bytes
        groups = VGroup()
        for k, c in enumerate(chars):
            char_box = token_box(c["char"], token_color(k), font_size=BODY_SIZE + 4, min_width=0.7, height=0.7)
            byte_boxes = VGroup(*[token_box(h, token_color(k), font_size=SMALL_SIZE, min_width=0.5, height=0.45,
                                            raw=True) for h in c["hex"]]).arrange(RIGHT, buff=0.05)
            byte_boxes.next_to(char_box, DOWN, buff=0.8)
            groups.add(VGroup(char_box, byte_boxes))
        groups.arrange(RIGHT, buff=0.35, aligned_edge=UP).move_to(UP * 0.15)
        arrows = VGroup(*[arrow_between(g[0], g[1], buff=0.08) for g in groups])
        label_chars = make_text("characters", font_size=SMALL_SIZE, color=MUTED).next_to(groups[0][0], LEFT, buff=0.4)
        label_bytes = make_text("UTF-8 bytes", font_size=SMALL_SIZE, color=MUTED).next_to(groups[0][1], LEFT, buff=0.4)
        n_bytes = sum(len(c["bytes"]) for c in chars)
        note = caption(f"Every character is bytes: {len(chars)} characters, {n_bytes} bytes (3 each)")
        self.play(LaggedStart(*[FadeIn(g[0]) for g in groups], lag_ratio=0.1), FadeIn(label_chars), run_time=1.0)
        self.play(LaggedStart(*[AnimationGroup(GrowArrow(a), FadeIn(g[1], shift=0.2 * DOWN))
                                for a, g in zip(arrows, groups)], lag_ratio=0.15),
                  FadeIn(label_bytes), FadeIn(note), run_time=1.8)
        self.wait(1.5)

        # the Shakespeare BPE: which merges apply?
        byte_boxes = [b for g in groups for b in g[1]]
        ids, start = VGroup(), 0
        for i, length in zip(data["final_ids"], data["final_lengths"]):  # a token may cover several bytes
            span = VGroup(*byte_boxes[start:start + length])
            ids.add(make_text(str(i), font_size=SMALL_SIZE, color=ACCENT, mono=True).next_to(span, DOWN, buff=0.2))
            start += length
        label_ids = make_text("token ids", font_size=SMALL_SIZE, color=MUTED).next_to(ids[0], LEFT, buff=0.4)
        label_ids.align_to(label_bytes, RIGHT)
        merged = len(data["steps"])
        verdict = (f"The Tiny Shakespeare BPE learned no merge for these bytes: {len(chars)} characters "
                   f"cost {len(data['final_ids'])} tokens" if merged == 0 else
                   f"The Tiny Shakespeare BPE merges only {merged} pair(s) here: {len(chars)} characters "
                   f"→ {len(data['final_ids'])} tokens")
        english = numbers_tokens.bpe_merges(SENTENCE)
        note2 = caption(verdict + f" (English: {len(SENTENCE) / len(english['final_ids']):.1f} characters per token)")
        self.play(LaggedStart(*[FadeIn(i, shift=0.1 * UP) for i in ids], lag_ratio=0.05), FadeIn(label_ids),
                  FadeOut(note), FadeIn(note2), run_time=1.5)
        self.wait(3.0)
