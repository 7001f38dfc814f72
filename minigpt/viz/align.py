"""Pictures of alignment: reward-model scores, PPO and DPO curves, and the aligned models side by side.

    mg.viz.plot_reward_scores(ev.chosen, ev.rejected)            # held-out pairs: chosen vs rejected
    mg.viz.plot_ppo_history({"β = 0.1": trainer.history})        # reward, KL, entropy, clip fraction, length
    mg.viz.plot_dpo_history(history)                             # loss from ln 2, implicit rewards, margin
    mg.viz.CompareAligned({"start": start, "PPO": ppo, "DPO": dpo}, tok, reward_model, reference=start,
                          prompt="Can you help me with my homework?")

``CompareAligned`` asks every model the same typed prompt (the same seed and knobs, so every
difference comes from the weights) and shows each answer token by token, each token coloured by
its KL to the reference model, ``log π(token) − log π_ref(token)``: red where the aligned model
likes the token more than the model it started from, blue where less, white where they agree.
Above each answer: its reward-model score and its whole KL (the sum over its tokens), the two
numbers PPO trades against each other. The answers come from ``minigpt.chat.Chat``, the numbers
from ``minigpt.align`` (``token_logprobs``, ``kl_per_token``, ``RewardModel.score_batch``) on the
very tokens each model wrote, so they are the package's.

Only core ipywidgets are used (Text, Button, sliders, HTML, Image), so it works offline in
JupyterLab and on Colab, with ipywidgets 7 or 8. The picture is a PNG, which is also what a
stored notebook shows. Controls are attributes, so code and tests can drive it:
``w.prompt.value = "Hi"; w.ask_button.click()``; read ``w.answers`` and ``w.error``.
"""

from __future__ import annotations

import html
import math
import textwrap
from dataclasses import dataclass, field
from typing import Optional, Sequence

import ipywidgets as widgets
import matplotlib.pyplot as plt
import torch

from .plots import MUTED, _figure, visible
from .widgets import FigureBox, _error, on_enter

LN2 = math.log(2.0)


# --------------------------------------------------------------------------- colours


def kl_colour(kl: float, vmax: float = 1.0) -> str:
    """A background colour for a token's KL to the reference: white at 0, red when the aligned
    model gives the token more probability than the reference (kl > 0), blue when less; full
    colour at |kl| >= vmax nats."""
    t = 0.0 if vmax <= 0 or kl != kl else max(-1.0, min(1.0, kl / vmax))
    end = (0.87, 0.27, 0.22) if t >= 0 else (0.23, 0.47, 0.85)
    a = abs(t) ** 0.8 * 0.85
    r, g, b = (1 - a + a * c for c in end)
    return f"#{int(r * 255):02x}{int(g * 255):02x}{int(b * 255):02x}"


def _show(token: str) -> str:
    return visible(token).replace("\n", "↵").replace("\\n", "↵") or "∅"


# --------------------------------------------------------------------------- reward model


def plot_reward_scores(chosen, rejected, title: Optional[str] = None, bins: int = 30):
    """The reward model's scores of held-out pairs: the chosen answers' and the rejected answers'
    distributions (left), and each pair's margin r_chosen − r_rejected (right; right of 0 = the
    pair is ranked correctly).

    chosen, rejected: [N] scores (tensors or lists), pair i = (chosen[i], rejected[i]).
    Returns a matplotlib Figure.
    """
    c = [float(x) for x in (chosen.tolist() if hasattr(chosen, "tolist") else chosen)]
    r = [float(x) for x in (rejected.tolist() if hasattr(rejected, "tolist") else rejected)]
    if len(c) != len(r) or not c:
        raise ValueError(f"chosen and rejected must be scores of the same non-empty list of pairs; got {len(c)} "
                         f"and {len(r)}")
    margins = [a - b for a, b in zip(c, r)]
    accuracy = sum(m > 0 for m in margins) / len(margins)
    fig, (ax, bx) = _figure(1, 2, figsize=(10, 3.4), width_ratios=[3, 2])
    lo, hi = min(c + r), max(c + r)
    edges = [lo + (hi - lo) * i / bins for i in range(bins + 1)] if hi > lo else bins
    ax.hist(c, bins=edges, alpha=0.6, color="#2ca02c", label=f"chosen (mean {sum(c) / len(c):+.2f})")
    ax.hist(r, bins=edges, alpha=0.6, color="#d62728", label=f"rejected (mean {sum(r) / len(r):+.2f})")
    ax.set_xlabel("reward-model score")
    ax.set_ylabel("answers")
    ax.legend(fontsize=8)
    ax.set_title(title or f"{len(c)} held-out pairs", fontsize=10)
    bx.hist(margins, bins=bins, color="#7f7f7f")
    bx.axvline(0, color="black", lw=1)
    bx.set_xlabel("margin r_chosen − r_rejected")
    bx.set_title(f"ranked right: {accuracy:.0%} of the pairs", fontsize=10)
    return fig


# --------------------------------------------------------------------------- training curves

PPO_PANELS = (("score", "reward-model score"), ("kl", "KL to the reference (nats / answer)"),
              ("entropy", "entropy (nats / token)"), ("clip_fraction", "clip fraction"),
              ("answer_length", "answer length (tokens)"))


def _smooth(ys: Sequence[float], window: int) -> list:
    out, total = [], 0.0
    for i, y in enumerate(ys):
        total += y
        if i >= window:
            total -= ys[i - window]
        out.append(total / min(i + 1, window))
    return out


def plot_ppo_history(histories, panels=PPO_PANELS, smooth: int = 5, title: Optional[str] = None):
    """PPO's curves, one panel per measure, several runs overlaid (e.g. with and without the KL
    penalty).

    histories: a ``PPOTrainer.history`` (dict of lists with ``iter`` and the panels' keys), or a
               dict {run name: history}.
    panels:    (history key, axis label) pairs; keys a history lacks are left out.
    smooth:    a moving average over this many steps is drawn over the raw (faint) curve.
    Returns a matplotlib Figure.
    """
    if isinstance(histories, dict) and "iter" in histories:
        histories = {"PPO": histories}
    if not isinstance(histories, dict) or not histories:
        raise ValueError("histories must be a PPOTrainer.history or a dict {name: history}")
    keys = [(k, label) for k, label in panels if any(h.get(k) for h in histories.values())]
    if not keys:
        raise ValueError(f"no history has any of {[k for k, _ in panels]}; is it a PPOTrainer.history?")
    cols = min(3, len(keys))
    rows = math.ceil(len(keys) / cols)
    fig, axes = _figure(rows, cols, figsize=(4.0 * cols, 2.7 * rows), squeeze=False)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for n, (key, label) in enumerate(keys):
        ax = axes[n // cols][n % cols]
        for k, (name, h) in enumerate(histories.items()):
            ys = [float(y) for y in h.get(key, [])]
            xs = list(h.get("iter", range(len(ys))))[:len(ys)]
            if not ys:
                continue
            colour = colours[k % len(colours)]
            ax.plot(xs, ys, color=colour, alpha=0.25, lw=0.8)
            ax.plot(xs, _smooth(ys, max(1, smooth)), color=colour, lw=1.6, label=name)
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("PPO step", fontsize=8)
        ax.tick_params(labelsize=8)
        if n == 0 and len(histories) > 1:
            ax.legend(fontsize=8)
    for n in range(len(keys), rows * cols):
        axes[n // cols][n % cols].axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def plot_dpo_history(history: dict, title: Optional[str] = None):
    """DPO's curves from ``train_dpo``'s history: the loss (from ln 2), the implicit rewards of
    the chosen and rejected answers, β·(log π − log π_ref), and their margin; dev points where
    the history has them. Returns a matplotlib Figure."""
    if not isinstance(history, dict) or not history.get("loss"):
        raise ValueError("history must be train_dpo's history (a dict of lists with iter, loss, margin, ...)")
    fig, (ax, bx, cx) = _figure(1, 3, figsize=(12, 3.0))
    it = history["iter"]
    ax.plot(it, history["loss"], lw=0.9, alpha=0.7, label="training batches")
    if history.get("dev_loss"):
        ax.plot(history["eval_iter"], history["dev_loss"], "o-", ms=4, label="dev pairs")
    ax.axhline(LN2, color=MUTED, ls="--", lw=1)
    ax.text(it[0], LN2, " ln 2", va="bottom", fontsize=8, color=MUTED)
    ax.set_title("DPO loss", fontsize=9)
    ax.legend(fontsize=8)
    if history.get("chosen_reward"):
        bx.plot(it, history["chosen_reward"], color="#2ca02c", label="chosen")
        bx.plot(it, history["rejected_reward"], color="#d62728", label="rejected")
        bx.axhline(0, color=MUTED, lw=0.8)
        bx.legend(fontsize=8)
    bx.set_title("implicit reward β·(log π − log π_ref)", fontsize=9)
    cx.plot(it, history["margin"], lw=0.9, label="training batches")
    if history.get("dev_margin"):
        cx.plot(history["eval_iter"], history["dev_margin"], "o-", ms=4, label="dev pairs")
    cx.axhline(0, color=MUTED, lw=0.8)
    cx.set_title("margin (chosen − rejected)", fontsize=9)
    cx.legend(fontsize=8)
    for a in (ax, bx, cx):
        a.set_xlabel("DPO step", fontsize=8)
        a.tick_params(labelsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


# --------------------------------------------------------------------------- answers side by side


@dataclass
class AlignedAnswer:
    """One model's answer to a prompt, measured.

    name:   the model's name in the comparison.
    text:   the answer (without the end token).
    tokens: [(printable token, KL to the reference in nats)], the end token included.
    score:  the reward model's score of the answer (None when the model wrote no token at all).
    stopped: "end_of_turn" or "max_new_tokens".
    """

    name: str
    text: str
    tokens: list = field(default_factory=list)
    score: Optional[float] = None
    stopped: str = "end_of_turn"

    @property
    def kl(self) -> float:
        """The answer's KL to the reference: the sum of its tokens' log-ratios (nats)."""
        return sum(k for _, k in self.tokens)


def answer_and_measure(name: str, model, reference, reward_model, tokenizer, prompt: str,
                       **chat_kwargs) -> AlignedAnswer:
    """Ask ``model`` the one-message ``prompt`` (a ``minigpt.chat.Chat`` with ``chat_kwargs``:
    max_new_tokens, temperature, top_k, seed, ...); score the tokens it wrote with ``reward_model``
    (read at the last one, as in PPO) and take each token's log-ratio to ``reference``."""
    from .. import align
    from ..chat import Chat

    reply = Chat(model, tokenizer, **chat_kwargs).ask(prompt)
    if not reply.steps:
        return AlignedAnswer(name, reply.text, [], None, reply.stopped)
    batch = align.pad_sequences([(list(reply.prompt.ids), reply.token_ids)], align.end_id(tokenizer))
    with torch.no_grad():
        logp = align.token_logprobs(model, batch.ids.to(model.device), batch.mask.to(model.device)).cpu()
        ref = align.token_logprobs(reference, batch.ids.to(reference.device), batch.mask.to(reference.device)).cpu()
    kl = align.kl_per_token(logp, ref, batch.mask)[0, batch.mask[0]].tolist()
    tokens = [(tokenizer.token_str(i), k) for i, k in zip(reply.token_ids, kl)]
    score = float(reward_model.score_batch(batch)[0])
    return AlignedAnswer(name, reply.text, tokens, score, reply.stopped)


def plot_aligned_answers(answers: Sequence[AlignedAnswer], prompt: Optional[str] = None, vmax: float = 1.0,
                         width: float = 11.0, chars_per_line: Optional[int] = None):
    """Answers one under the other, each token a box coloured by its KL to the reference
    (``kl_colour``), with the reward-model score and the answer's whole KL beside its name.
    Returns a matplotlib Figure (closed to pyplot)."""
    from matplotlib.patches import FancyBboxPatch

    char_width = 8.5 * 0.6 / 72  # inches: one character of the 8.5 pt monospaced token labels
    chars_per_line = chars_per_line or int(0.98 * width / char_width)
    layouts = []
    for a in answers:
        lines, line, used = [], [], 0.0
        for token, kl in a.tokens:
            label = _show(token)
            if used + len(label) + 1.1 > chars_per_line and line:
                lines.append(line)
                line, used = [], 0.0
            line.append((label, kl))
            used += len(label) + 1.1
        if line:
            lines.append(line)
        layouts.append(lines or [[("(empty answer)", float("nan"))]])
    head = textwrap.wrap(f"user: {prompt}", chars_per_line) if prompt else []
    rows = len(head) + sum(1 + len(lines) for lines in layouts)
    height = 0.3 * rows + 0.9
    fig = plt.figure(figsize=(width, height))
    plt.close(fig)
    ax = fig.add_axes([0.01, 0.7 / height, 0.98, 1 - 0.8 / height])
    ax.set_xlim(0, chars_per_line)
    ax.set_ylim(-rows + 0.4, 0.6)
    ax.axis("off")
    y = 0
    for row in head:
        ax.text(0, y, row, fontsize=9.5, va="center", color="#333", family="DejaVu Sans")
        y -= 1
    for a, lines in zip(answers, layouts):
        score = "no answer" if a.score is None else f"reward-model score {a.score:+.2f}"
        note = "" if a.stopped == "end_of_turn" else " · cut at max new tokens"
        ax.text(0, y, f"{a.name}: {score} · KL to the reference {a.kl:+.2f} nats over {len(a.tokens)} tokens{note}",
                fontsize=9.5, va="center", weight="bold", family="DejaVu Sans")
        y -= 1
        for line in lines:
            x = 0.0
            for label, kl in line:
                w = len(label) + 0.6
                ax.add_patch(FancyBboxPatch((x, y - 0.38), w, 0.76, boxstyle="round,pad=0.02,rounding_size=0.3",
                                            facecolor=kl_colour(kl, vmax) if kl == kl else "#eeeeee",
                                            edgecolor="#bbbbbb", linewidth=0.5))
                ax.text(x + 0.3, y, label, fontsize=8.5, va="center", family="DejaVu Sans Mono")
                x += w + 0.5
            y -= 1
    # the colour scale
    cax = fig.add_axes([0.62, 0.25 / height, 0.3, 0.12 / height])
    steps = 41
    for i in range(steps):
        v = vmax * (2 * i / (steps - 1) - 1)
        cax.add_patch(plt.Rectangle((i, 0), 1, 1, color=kl_colour(v, vmax)))
    cax.set_xlim(0, steps)
    cax.set_ylim(0, 1)
    cax.set_yticks([])
    cax.set_xticks([0.5, steps / 2, steps - 0.5], [f"−{vmax:g}", "0", f"+{vmax:g}"], fontsize=7.5)
    cax.set_title("log π(token) − log π_ref(token), nats", fontsize=8)
    return fig


class CompareAligned(FigureBox):
    """The same typed prompt to several models (e.g. the start, PPO and DPO policies), their
    answers side by side with reward-model scores and each token's KL to the reference.

    models:       {name: GPT}, in the order to show them (two to four fit well).
    tokenizer:    their one tokenizer (the reward model's too).
    reward_model: a ``minigpt.align.RewardModel`` that scores the answers.
    reference:    the model the KL is measured against (the policy training started from).
    prompt:       asked at once, so the widget shows answers before anyone touches it.
    max_new_tokens, temperature, top_k, seed: the sampling knobs, the same for every model.

    Controls: ``prompt`` (Text; Enter asks), ``ask_button``, ``temperature`` slider, ``seed``
    (IntText). State: ``answers`` (one ``AlignedAnswer`` per model, or [] after bad input),
    ``error`` (what was wrong, or None), ``status`` (HTML line).
    """

    def __init__(self, models: dict, tokenizer, reward_model, reference, prompt: Optional[str] = "How are you?",
                 max_new_tokens: int = 40, temperature: float = 0.7, top_k: Optional[int] = 40, seed: int = 0,
                 vmax: float = 1.0):
        if not isinstance(models, dict) or not models:
            raise ValueError("models must be a dict {name: model}, e.g. {'start': start, 'PPO': ppo}")
        from .. import align

        for name, m in models.items():
            if getattr(m, "config", None) is None or m.config.vocab_size != reference.config.vocab_size:
                raise ValueError(f"model {name!r} does not share the reference's vocabulary: the KL per token "
                                 f"needs the same tokenizer for both")
        align.check_same_tokenizer(tokenizer, reward_model.tokenizer)
        self.models, self.tokenizer, self.reward_model, self.reference = models, tokenizer, reward_model, reference
        self.max_new_tokens, self.top_k, self.vmax = max_new_tokens, top_k, vmax
        self.answers: list = []
        self.error: Optional[str] = None
        self.prompt = widgets.Text(value=prompt or "", description="you", placeholder="type a message, press Enter",
                                   layout=widgets.Layout(width="60%"))
        self.ask_button = widgets.Button(description="ask all", button_style="primary")
        self.temperature = widgets.FloatSlider(value=temperature, min=0.0, max=1.5, step=0.05,
                                               description="temperature", continuous_update=False,
                                               style={"description_width": "initial"})  # the whole word
        self.seed = widgets.IntText(value=seed, description="seed", layout=widgets.Layout(width="12em"))
        self.status = widgets.HTML()
        press_ask = on_enter(self.prompt, lambda: self.ask())  # once the whole prompt has reached the kernel
        self.ask_button.on_click(lambda _: press_ask())
        super().__init__([widgets.HBox([self.prompt, self.ask_button]),
                          widgets.HBox([self.temperature, self.seed]), self.status])
        if prompt:
            self.ask()
        else:
            self.show_error("type a message and press ask all", title="no prompt yet")

    def ask(self, prompt: Optional[str] = None):
        """Ask every model ``prompt`` (default: the text box) with the same seed and knobs;
        show and return the answers, or None after bad input (``error`` says why; the old
        answers are cleared, never shown as if they belonged to the new prompt)."""
        prompt = self.prompt.value if prompt is None else prompt
        self.answers = []
        if not isinstance(prompt, str) or not prompt.strip():
            return self._fail("the prompt is empty: type a message first")
        knobs = dict(max_new_tokens=self.max_new_tokens, temperature=self.temperature.value, top_k=self.top_k,
                     top_p=None, seed=int(self.seed.value))
        self.status.value = "writing…"
        try:
            answers = [answer_and_measure(name, m, self.reference, self.reward_model, self.tokenizer, prompt,
                                          **knobs) for name, m in self.models.items()]
        except ValueError as e:  # a prompt too long for the window, a bad knob
            return self._fail(str(e))
        self.error, self.answers = None, answers
        self.show(plot_aligned_answers(answers, prompt, vmax=self.vmax))
        best = max((a for a in answers if a.score is not None), key=lambda a: a.score, default=None)
        self.status.value = html.escape(
            f"seed {knobs['seed']}, temperature {knobs['temperature']:g}, top-k {self.top_k}: the same draw for "
            f"every model" + (f" · highest score: {best.name} ({best.score:+.2f})" if best else ""))
        return answers

    def _fail(self, message: str):
        self.error = message
        self.status.value = _error(message)
        self.show_error(message, title="no answers")
        return None
