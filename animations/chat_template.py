"""The chat template: how a conversation reaches a chat model, and how its reply comes back.

Messages (a system prompt and a question) are written into one text by the ChatML template,
with control tokens; SmolLM2-135M-Instruct reads it and writes the reply token by token, each
with its real probability, until it writes the end-of-turn token. Numbers from ``numbers_chat``
(the model run greedily through ``minigpt.chat``).

    manim -qm animations/chat_template.py ChatTemplate
"""

from manim import *

import numbers_chat
from style import *

LABEL_COLORS = {"template": MUTED, "system": "#f28c54", "history": "#63c787", "question": "#5b9cf5",
                "assistant": "#d569c4"}
SHOWN_STEPS = 3     # reply tokens shown with their top candidates
TOP = 3


def bubble(role: str, text: str, color) -> VGroup:
    label = make_text(f"{role}: {text}", font_size=SMALL_SIZE)
    box = RoundedRectangle(corner_radius=0.15, width=label.width + 0.4, height=label.height + 0.3,
                           stroke_color=color, fill_color=color, fill_opacity=0.15)
    return VGroup(box, label.move_to(box))


def rows_of_tokens(tokens, colors, width: float = 12.6, font_size: float = TINY_SIZE) -> VGroup:
    """Token boxes in rows: a new row after each line-break token, or when a row is full."""
    rows, row = [], []
    for t, c in zip(tokens, colors):
        row.append(token_box(t, c, font_size=font_size, height=0.42, min_width=0.3))
        if t in ("\\n", "\n"):
            rows.append(row)
            row = []
    if row:
        rows.append(row)
    group = VGroup(*[VGroup(*r).arrange(RIGHT, buff=0.05) for r in rows]).arrange(DOWN, buff=0.1, aligned_edge=LEFT)
    if group.width > width:
        group.scale_to_fit_width(width)
    return group


class ChatTemplate(CourseScene):
    gallery_at = 0.97

    def construct(self):
        self.data = numbers_chat.chat_numbers(max_new_tokens=12, top=TOP)
        self.add(footnote(numbers_chat.provenance()))
        self.show_title("The chat template", "messages → one text of tokens → the model → the reply")
        prompt = self.messages_to_tokens()
        self.reply(prompt)
        self.wait(1.5)

    def messages_to_tokens(self) -> VGroup:
        d = self.data
        messages = VGroup(bubble("system", d["system"], LABEL_COLORS["system"]),
                          bubble("user", d["question"], LABEL_COLORS["question"])).arrange(DOWN, buff=0.25)
        self.play(FadeIn(messages, shift=0.2 * UP), self.say("a conversation: a system prompt and a question"),
                  run_time=0.9)
        self.wait(0.6)
        tokens = rows_of_tokens(d["tokens"], [LABEL_COLORS[l] for l in d["labels"]])
        if tokens.height > 2.3:
            tokens.scale_to_fit_height(2.3)
        tokens.move_to(UP * 0.95 + LEFT * 0.9)
        legend = VGroup(*[VGroup(Square(0.18, fill_color=c, fill_opacity=0.6, stroke_width=0),
                                 make_text(l, font_size=TINY_SIZE, color=MUTED)).arrange(RIGHT, buff=0.08)
                          for l, c in LABEL_COLORS.items() if l in d["labels"]]).arrange(DOWN, buff=0.2,
                                                                                          aligned_edge=LEFT)
        legend.next_to(tokens, RIGHT, buff=0.5)
        self.play(ReplacementTransform(messages, tokens), FadeIn(legend),
                  self.say(f"ChatML writes it as one text: {len(d['tokens'])} tokens, control tokens around each "
                           f"message, then the assistant's turn opens"), run_time=1.4)
        self.wait(1.2)
        return VGroup(tokens, legend)

    def reply(self, prompt: VGroup):
        d = self.data
        model = model_box("SmolLM2", sublabel="135M, our GPT", width=2.4, height=1.2).move_to(LEFT * 5.0 + DOWN * 1.35)
        arrow = Arrow(prompt[0].get_corner(DL) + RIGHT * 0.3, model.get_top(), buff=0.1, color=MUTED, stroke_width=3,
                      max_tip_length_to_length_ratio=0.2)
        self.play(FadeIn(model), GrowArrow(arrow), self.say("the model reads every token and scores the next one"),
                  run_time=0.9)
        reply_row = VGroup()
        bars = None
        for i, step in enumerate(d["reply"]):
            box = token_box(step["token"], LABEL_COLORS["assistant"], font_size=SMALL_SIZE, height=0.5)
            prob = make_text(f"{100 * step['prob']:.0f}%", font_size=TINY_SIZE, color=MUTED)
            piece = VGroup(box, prob.next_to(box, DOWN, buff=0.08))
            if reply_row:
                piece.next_to(reply_row, RIGHT, buff=0.08, aligned_edge=UP)
            else:
                piece.move_to(LEFT * 5.9 + DOWN * 2.85, aligned_edge=LEFT)
            if i < SHOWN_STEPS:
                labels = [t for t, _ in step["top"]]
                probs = [p for _, p in step["top"]]
                chosen = labels.index(step["token"]) if step["token"] in labels else None
                colors = [BAR_CHOSEN if j == chosen else BAR_COLOR for j in range(len(labels))]
                new = ProbabilityBars(labels, probs, bar_length=3.2, colors=colors, font_size=SMALL_SIZE)
                new.move_to(RIGHT * 1.0 + DOWN * 1.2)
                caption_text = (f"token {i + 1}: the model's top {TOP}; it takes {show_token(step['token'])} "
                                f"({100 * step['prob']:.1f}%)")
                if bars is None:
                    self.play(FadeIn(new), self.say(caption_text), run_time=0.8)
                else:
                    self.play(ReplacementTransform(bars, new), self.say(caption_text), run_time=0.8)
                bars = new
                self.play(FadeIn(piece, shift=0.2 * DOWN), run_time=0.5)
                self.wait(0.6)
            else:
                if bars is not None:
                    self.play(FadeOut(bars), self.say("and so on, one token at a time, each with its probability"),
                              run_time=0.5)
                    bars = None
                self.play(FadeIn(piece, shift=0.2 * DOWN), run_time=0.3)
            reply_row.add(piece)
        if reply_row.width > 12.4:
            self.play(reply_row.animate.scale_to_fit_width(12.4).align_to(LEFT * 6.2, LEFT), run_time=0.4)
        end = ("it wrote <|im_end|>: the turn is over, and the reply is the text before it"
               if d["stopped"] == "end_of_turn" else "the reply ran out of tokens before <|im_end|>")
        self.play(self.say(end), run_time=0.6)
