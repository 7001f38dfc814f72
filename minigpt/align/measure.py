"""Measuring aligned models side by side: reward, KL to the reference, win rate, variety, length, cost.

    start = align.evaluate_policy(chat, reference, rm, tok, prompts, name="start")
    ppo = align.evaluate_policy(ppo_policy, reference, rm, tok, prompts, name="PPO")
    print(align.side_by_side([start, ppo], baseline=start))

Every model answers the same held-out prompts with the same sampling seed. Measures:
- reward:     the reward model's mean score of the answers (what PPO and DPO push up);
- KL:         mean over answers of sum_t log pi(a_t) - log pi_ref(a_t): how far the model moved (nats);
- win rate:   share of prompts where the reward model prefers this model's answer to the baseline's
              (ties count half): judged by the very reward model that was optimised, so high win
              rates with a high KL are a sign of reward hacking rather than of better answers;
- distinct-2: different word pairs / all word pairs over all answers (collapse drives it down);
- length:     answer tokens (the end token included); seconds and peak memory of the evaluation.
"""

from __future__ import annotations

import os
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Optional, Sequence

import torch

from ..reply_metrics import distinct
from ..sampling import generating
from .logprobs import batch_answers, logprobs_from_logits
from .pairs import as_messages, prompt_text
from .ppo import kl_per_token, rollout
from .reward_model import RewardModel, check_same_tokenizer


@dataclass
class Peak:
    """Peak memory in MB seen during a ``peak_memory`` block (None where it cannot be measured)."""

    mb: Optional[float] = None
    what: str = ""


def _rss_mb() -> Optional[float]:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return None


@contextmanager
def peak_memory(device):
    """Yield a Peak filled in when the block ends: on CUDA the most GPU memory torch allocated in the
    block; on the CPU the process's largest resident set size (RSS, sampled every 5 ms; it includes
    everything the process holds, e.g. other models, so compare runs made in fresh processes)."""
    device = torch.device(device)
    peak = Peak()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        yield peak
        torch.cuda.synchronize(device)
        peak.mb, peak.what = torch.cuda.max_memory_allocated(device) / 2**20, "GPU memory allocated"
        return
    if _rss_mb() is None:
        yield peak
        return
    stop, seen = threading.Event(), [_rss_mb()]

    def watch():
        while not stop.wait(0.005):
            seen.append(_rss_mb())
    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    try:
        yield peak
    finally:
        stop.set()
        thread.join()
        seen.append(_rss_mb())
        peak.mb, peak.what = max(seen), "process RSS"


@dataclass
class PolicyReport:
    """One model's answers to the held-out prompts and their measures (see the module's notes).

    scores, kl, lengths: [N] CPU tensors, one entry per prompt.
    """

    name: str
    prompts: list
    answers: list
    scores: torch.Tensor
    kl: torch.Tensor
    lengths: torch.Tensor
    finished: torch.Tensor
    seconds: float
    peak_memory_mb: Optional[float] = None
    extra: dict = field(default_factory=dict)

    @property
    def reward(self) -> float:
        return self.scores.mean().item()

    @property
    def mean_kl(self) -> float:
        return self.kl.mean().item()

    @property
    def length(self) -> float:
        return self.lengths.float().mean().item()

    @property
    def distinct_2(self) -> float:
        return distinct(self.answers, n=2)

    def row(self, baseline: Optional["PolicyReport"] = None) -> dict:
        """The measures as a dict (win_rate against ``baseline`` when given)."""
        out = {"model": self.name, "reward": self.reward, "kl": self.mean_kl,
               "win_rate": win_rate(self.scores, baseline.scores) if baseline is not None else None,
               "distinct_2": self.distinct_2, "length": self.length,
               "finished": self.finished.float().mean().item(), "seconds": self.seconds,
               "peak_memory_mb": self.peak_memory_mb}
        return {**out, **self.extra}

    def examples(self, n: int = 5) -> list[tuple[str, str, float]]:
        """The first n (prompt, answer, score)."""
        return [(prompt_text(p), a, s) for p, a, s in zip(self.prompts[:n], self.answers[:n], self.scores.tolist())]


def win_rate(scores: torch.Tensor, baseline_scores: torch.Tensor) -> float:
    """Share of prompts where ``scores`` beats ``baseline_scores`` (both [N]; ties count half)."""
    scores, baseline_scores = torch.as_tensor(scores), torch.as_tensor(baseline_scores)
    if scores.shape != baseline_scores.shape:
        raise ValueError(f"win_rate compares answers to the same prompts: got {tuple(scores.shape)} and "
                         f"{tuple(baseline_scores.shape)} scores")
    return ((scores > baseline_scores).float() + 0.5 * (scores == baseline_scores).float()).mean().item()


@torch.no_grad()
def evaluate_policy(policy, reference, reward_model: RewardModel, tokenizer, prompts: Sequence, name: str = "policy",
                    max_new_tokens: int = 40, temperature: float = 1.0, top_k: Optional[int] = None,
                    top_p: Optional[float] = None, seed: int = 0, batch_size: int = 64) -> PolicyReport:
    """Sample one answer per prompt (seeded: every model gets the same random numbers), score it with
    the reward model and measure its KL to ``reference``. Returns a PolicyReport."""
    check_same_tokenizer(tokenizer, reward_model.tokenizer)
    prompts = [as_messages(p) for p in prompts]
    device = policy.device
    generator = torch.Generator(device=device).manual_seed(seed)
    answers, kls, lengths, finished, scores = [], [], [], [], []
    with peak_memory(device) as peak:
        start = time.perf_counter()
        for i in range(0, len(prompts), batch_size):
            out = rollout(policy, tokenizer, prompts[i:i + batch_size], max_new_tokens, temperature, top_k, top_p,
                          generator=generator)
            with generating(policy):
                logp = logprobs_from_logits(policy(out.ids).logits, out.ids)
                ref = logprobs_from_logits(reference(out.ids).logits, out.ids)
            kls.append(kl_per_token(logp, ref, out.mask).sum(-1).cpu())
            scores.append(reward_model.score_batch(out.batch()))
            answers += out.answers
            lengths.append(out.lengths.cpu())
            finished.append(out.finished.cpu())
        seconds = time.perf_counter() - start
    return PolicyReport(name, prompts, answers, torch.cat(scores), torch.cat(kls), torch.cat(lengths),
                        torch.cat(finished), seconds, peak.mb)


def side_by_side(reports: Sequence[PolicyReport], baseline: Optional[PolicyReport] = None) -> str:
    """A Markdown table of the reports' measures (win rate against ``baseline``, default the first)."""
    baseline = baseline or reports[0]
    head = ["model", "reward", "KL to ref.", "win rate vs " + baseline.name, "distinct-2", "length (tokens)",
            "ended", "seconds", "peak MB"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in reports:
        row = r.row(baseline)
        cells = [row["model"], f"{row['reward']:+.3f}", f"{row['kl']:.2f}", f"{row['win_rate']:.2f}",
                 f"{row['distinct_2']:.3f}", f"{row['length']:.1f}", f"{row['finished']:.0%}", f"{row['seconds']:.1f}",
                 "-" if row["peak_memory_mb"] is None else f"{row['peak_memory_mb']:.0f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


# Words that tell the preference data's two answers apart (counted over its 1,100 records: the first
# list is in many polite answers and almost no impolite ones, the second the other way round).
POLITE_WORDS = ("please", "thank", "thanks", "kindly", "would", "could", "may", "happy", "help", "indeed",
                "glad", "sorry", "appreciate", "lovely", "suggest")
RUDE_WORDS = ("obviously", "duh", "stupid", "freaking", "damn", "dumb", "idiot", "whatever", "seriously",
              "ridiculous", "ridiculously", "together", "anyway", "basically")


def politeness(text: str) -> int:
    """A simple politeness signal, independent of any model: polite words minus rude words in ``text``
    (word lists POLITE_WORDS and RUDE_WORDS, lower-cased, whole words)."""
    import re
    words = re.findall(r"[a-z']+", text.lower())
    return sum(w in POLITE_WORDS for w in words) - sum(w in RUDE_WORDS for w in words)


def ranking_agreement(scores, signal) -> float:
    """Over every pair of answers whose ``signal`` differs, the share that the ``scores`` order the same
    way (0.5 = chance, 1 = always). How well a reward model transfers to other answers, judged by a
    simple signal (e.g. ``politeness``) it was never trained on. NaN when no pair differs."""
    scores, signal = torch.as_tensor(scores, dtype=torch.float), torch.as_tensor(signal, dtype=torch.float)
    ds = scores[:, None] - scores[None, :]
    dg = signal[:, None] - signal[None, :]
    differ = dg > 0
    if not differ.any():
        return float("nan")
    return ((ds[differ] > 0).float() + 0.5 * (ds[differ] == 0).float()).mean().item()


@torch.no_grad()
def token_kl(policy, reference, tokenizer, prompt, answer: str) -> list[tuple[str, float]]:
    """Per answer token (its end token included): (printable token, log pi(token) - log pi_ref(token)).
    Positive where the policy likes the token more than the reference did: what the KL penalty charges."""
    batch = batch_answers(tokenizer, [prompt], [answer], policy.config.block_size).to(policy.device)
    with generating(policy):
        logp = logprobs_from_logits(policy(batch.ids).logits, batch.ids)
        ref = logprobs_from_logits(reference(batch.ids).logits, batch.ids)
    kl = kl_per_token(logp, ref, batch.mask)[0][batch.mask[0]].tolist()
    ids = batch.ids[0][batch.mask[0]].tolist()
    return [(tokenizer.token_str(t), k) for t, k in zip(ids, kl)]
