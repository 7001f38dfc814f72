"""The loop at the heart of every GPT: predict the next token, pick one, append it, repeat.

The probabilities are the shipped model's own, for a real prompt; the picks are the tokens
``mg.generate`` draws with the same seed. Then temperature reshapes one distribution.

    manim -qm animations/next_token.py NextTokenLoop
"""

from manim import *

import numbers_sampling
import numbers_tokens
import shipped_model
from style import *

PROMPT = "JULIET:\nO Rome"
STEPS = 4
TOP_K = 5
SEED = 0
SAMPLING_TEMPERATURE = 0.8
TEMPERATURE_PROMPT = "ROMEO:\nI will "
TEMPERATURES = (1.0, 0.5, 1.5)


def bars_for(tokens, probs, chosen=None) -> ProbabilityBars:
    colors = [BAR_CHOSEN if chosen is not None and i == chosen else BAR_COLOR for i in range(len(tokens))]
    return ProbabilityBars(tokens, probs, bar_length=4.2, colors=colors, font_size=BODY_SIZE - 2)


class NextTokenLoop(CourseScene):
    gallery_at = 0.42

    def construct(self):
        self.add(footnote(shipped_model.provenance()))
        self.show_title("Predicting the next token", "predict → pick → append → repeat")
        self.loop()
        self.clear_stage()
        self.temperature()
        self.wait(1.5)

    # ------------------------------------------------------------------ the generation loop

    def context_row(self, text: str) -> TokenRow:
        tokens = numbers_tokens.char_ids(text)["tokens"]
        return TokenRow(tokens, font_size=BODY_SIZE, height=0.55).move_to(UP * 1.55)

    def loop(self):
        info = shipped_model.model_info()
        data = numbers_sampling.generation_steps(PROMPT, steps=STEPS, temperature=SAMPLING_TEMPERATURE, k=TOP_K,
                                                 seed=SEED)
        row = self.context_row(PROMPT)
        row_label = make_text("context", font_size=SMALL_SIZE, color=MUTED).next_to(row, UP, buff=0.15)
        model = model_box("GPT", width=2.6, height=1.5,
                          sublabel=f"{info['n_layer']} layers · {info['params'] / 1e6:.1f}M weights").move_to(LEFT * 4.7 + DOWN * 1.1)
        down = Arrow(row.get_corner(DL) + RIGHT * 0.6 + DOWN * 0.05, model.get_top(), buff=0.1, color=MUTED, stroke_width=3)
        bars_anchor = LEFT * 0.4 + DOWN * 0.1  # where the top of the bars' axis sits
        self.play(LaggedStart(*[FadeIn(b, shift=0.15 * DOWN) for b in row.boxes], lag_ratio=0.04),
                  FadeIn(row_label), run_time=1.0)
        self.play(GrowArrow(down), FadeIn(model), run_time=0.8)

        bars, right, note, mark = None, None, None, None
        for n, step in enumerate(data["steps"]):
            tokens, probs = list(step["tokens"]), list(step["probs"])
            chosen = step["chosen_rank"]
            if chosen is None:  # drawn from outside the top k: show it as one more bar
                tokens.append(step["chosen"])
                probs.append(step["chosen_prob"])
                chosen = len(tokens) - 1
            new_bars = bars_for(tokens, probs)
            new_bars.shift(bars_anchor - new_bars.axis.get_start())
            head = make_text(f"step {n + 1}: probabilities of the next token", font_size=SMALL_SIZE, color=MUTED)
            head.next_to(new_bars.axis.get_start(), UP, buff=0.25).align_to(new_bars.labels, LEFT)
            self.play(Indicate(model.box, color=ACCENT, scale_factor=1.05), run_time=0.6)
            if bars is None:
                right = arrow_between(model, new_bars.bars, buff=0.15)
                right.put_start_and_end_on(model.get_right() + RIGHT * 0.1, new_bars.labels.get_left() + LEFT * 0.2)
                self.play(GrowArrow(right), FadeIn(new_bars), FadeIn(head), run_time=1.0)
                bars, bar_head = new_bars, head
            else:
                self.play(FadeOut(mark), Transform(bars, new_bars), Transform(bar_head, head), run_time=0.9)
            # sample
            mark = bars.highlight(chosen)
            new_note = caption(f"sample (temperature {SAMPLING_TEMPERATURE}): drew '{show_token(step['chosen'])}' "
                               f"with probability {100 * step['chosen_prob']:.1f}%")
            self.play(Create(mark), bars.bars[chosen].animate.set_fill(BAR_CHOSEN),
                      FadeOut(note) if note else Wait(0.01), FadeIn(new_note), run_time=0.7)
            note = new_note
            # append
            new_row = self.context_row(step["context"] + step["chosen"].replace("\\n", "\n"))
            flying = token_box(step["chosen"], token_color(len(row.boxes)), height=0.55).move_to(bars.labels[chosen])
            self.play(FadeIn(flying, scale=1.3), run_time=0.3)
            self.play(flying.animate.move_to(new_row.boxes[-1]),
                      *[Transform(old, new) for old, new in zip(row.boxes, new_row.boxes[:-1])],
                      run_time=0.8)
            self.remove(flying, row, *row.boxes)
            self.add(new_row)
            row = new_row
            self.wait(0.5)
        done = caption(f"“{PROMPT}” + “{data['text']}”: every token is one pass through the model, "
                       f"then one draw".replace("\n", "↵"))
        self.play(FadeOut(note), FadeIn(done), run_time=0.6)
        self.wait(2.0)

    # ------------------------------------------------------------------ temperature

    def temperature(self):
        self.show_title("Temperature", "divide the scores by T before the softmax")
        data = numbers_sampling.temperature_sweep(TEMPERATURE_PROMPT, temperatures=list(TEMPERATURES), k=TOP_K)
        prompt = VGroup(make_text("after", font_size=SMALL_SIZE, color=MUTED),
                        TokenRow(numbers_tokens.char_ids(TEMPERATURE_PROMPT)["tokens"], height=0.5, font_size=SMALL_SIZE + 2))
        prompt.arrange(RIGHT, buff=0.25).move_to(UP * 1.7)
        rule = formula("p_i = exp(z_i / T) / Σ_j exp(z_j / T)", r"p_i = \frac{e^{z_i/T}}{\sum_j e^{z_j/T}}",
                       font_size=SMALL_SIZE + 2, color=FG).move_to(UP * 1.0)
        labels = list(data["tokens"]) + ["others"]

        def probs_at(i):
            return list(data["probs"][i]) + [data["rest"][i]]

        bars = ProbabilityBars(labels, probs_at(0), bar_length=5.0, font_size=BODY_SIZE - 2,
                               colors=[BAR_COLOR] * TOP_K + [FAINT])
        bars.shift(LEFT * 2.0 + UP * 0.35 - bars.axis.get_start())
        t_label = make_text(f"T = {TEMPERATURES[0]}", font_size=44, color=ACCENT).move_to(RIGHT * 4.9 + DOWN * 1.0)
        self.play(FadeIn(prompt), FadeIn(rule), run_time=0.8)
        self.play(FadeIn(bars), FadeIn(t_label), run_time=0.9)
        self.wait(1.2)
        explain = {
            0.5: "T < 1 sharpens: the likely tokens take nearly everything (T → 0 is greedy)",
            1.0: "T = 1: the model's own probabilities",
            1.5: "T > 1 flattens: unlikely tokens, and the 'others', get more of the mass",
        }
        note = caption(explain.get(TEMPERATURES[0], ""))
        self.play(FadeIn(note), run_time=0.5)
        self.wait(1.0)
        for i, t in enumerate(TEMPERATURES[1:], start=1):
            new_label = make_text(f"T = {t}", font_size=44, color=ACCENT).move_to(t_label)
            new_note = caption(explain.get(t, f"T = {t}"))
            self.play(bars.animate_to(probs_at(i)), Transform(t_label, new_label), FadeOut(note), FadeIn(new_note),
                      run_time=1.6)
            note = new_note
            self.wait(2.2)
