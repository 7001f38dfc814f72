"""Checks for notebook 05 (training): inputs and targets, the learning-rate schedule,
cross-entropy by hand, the loss per byte (to compare tokenizers), and a question answered with
the TrainingMonitor."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from . import Hint, exercise, not_attempted
from ..train import TrainConfig, lr_at


@exercise
def make_batch(fn):
    """Check ``fn(data, starts, block_size) -> (x, y)`` against the definition of get_batch."""
    data = torch.arange(100, 160)                     # token ids 100, 101, ...: easy to read
    starts, T = [3, 7, 30], 5
    out = fn(data, starts, T)
    if out is None:
        raise not_attempted("make_batch", "training")
    x, y = (torch.as_tensor(t) for t in out)
    want_x = torch.stack([data[s: s + T] for s in starts])
    want_y = torch.stack([data[s + 1: s + T + 1] for s in starts])
    if x.shape != want_x.shape:
        raise Hint(f"x must be [len(starts), block_size] = {list(want_x.shape)}, got {list(x.shape)}")
    if not torch.equal(x, want_x):
        raise Hint(f"x must be the window data[s : s + block_size]; for s = 3 expected {want_x[0].tolist()}, "
                   f"got {x[0].tolist()}")
    if y.shape != want_y.shape:
        extra = (" (hint: y holds block_size targets too; the last one is the token after the window, "
                 "data[s + block_size])" if y.shape[-1] == T - 1 else "")
        raise Hint(f"y must be {list(want_y.shape)} like x, got {list(y.shape)}{extra}")
    if torch.equal(y, want_y):
        return "y[b, t] = x[b, t + 1], the next token at every position"
    if torch.equal(y, x):
        raise Hint("y equals x (hint: the target at position t is the token that comes next, "
                   "data[s + 1 : s + 1 + block_size])")
    if torch.equal(y[:, 1:], x[:, :-1]):
        raise Hint("y is shifted the wrong way (hint: y[t] is x[t + 1], the next token, not x[t - 1])")
    raise Hint(f"for s = 3 expected y = {want_y[0].tolist()}, got {y[0].tolist()}")


@exercise
def lr(fn):
    """Check ``fn(it, config) -> learning rate`` against ``mg.lr_at``."""
    configs = [TrainConfig(max_iters=1000, learning_rate=1e-3, min_lr=1e-4, warmup_iters=100),
               TrainConfig(max_iters=300, learning_rate=6e-4, min_lr=6e-5, warmup_iters=20)]
    if fn(0, configs[0]) is None:
        raise not_attempted("my_lr", "training")
    for c in configs:
        lr_max, lr_min, W, D = c.learning_rate, c.min_lr, c.warmup_iters, c.max_iters
        steps = list(range(D + 50))
        got = [fn(it, c) for it in steps]
        want = [lr_at(it, c) for it in steps]
        wrong = [it for it in steps if not math.isclose(got[it], want[it], rel_tol=1e-6, abs_tol=1e-12)]
        if not wrong:
            continue
        it = wrong[0]
        where = f"(max_iters={D}, warmup_iters={W}, learning_rate={lr_max}, min_lr={lr_min})"
        if it < W:
            if math.isclose(got[0], lr_max):
                raise Hint(f"step 0 already gets the full learning rate (hint: the warm-up) {where}")
            if got[0] == 0 or math.isclose(got[W - 1], lr_max * (W - 1) / W):
                raise Hint("off by one in the warm-up (hint: step 0 should learn a little, "
                           "learning_rate * (it + 1) / (warmup_iters + 1), not it / warmup_iters)")
            raise Hint(f"warm-up: at step {it} expected {want[it]:.4g}, got {got[it]:.4g} {where}")
        if it >= D:
            raise Hint(f"after max_iters the learning rate stays at min_lr = {lr_min}, got {got[it]:.4g} at step {it}")
        if abs(got[D - 1]) < lr_min / 2:
            raise Hint("the cosine ends at 0 (hint: it ends at min_lr: "
                       "min_lr + 0.5 * (1 + cos(pi * progress)) * (learning_rate - min_lr))")
        if got[D - 1] > lr_max * 0.9:
            raise Hint("at the end of the decay the rate climbs back to learning_rate (hint: half a cosine, "
                       "cos(pi * progress) from 1 down to -1, not cos(2 * pi * progress))")
        raise Hint(f"cosine part: at step {it} expected {want[it]:.4g}, got {got[it]:.4g} (hint: progress = "
                   f"(it - warmup_iters) / (max_iters - warmup_iters)) {where}")
    return "warm-up, half a cosine down to min_lr, then min_lr, exactly as mg.lr_at"


@exercise
def cross_entropy(fn):
    """Check ``fn(logits [B, T, V], targets [B, T]) -> scalar`` against ``F.cross_entropy``."""
    gen = torch.Generator().manual_seed(5)
    B, T, V = 3, 4, 7
    logits = torch.randn(B, T, V, generator=gen) * 2
    targets = torch.randint(0, V, (B, T), generator=gen)
    got = fn(logits, targets)
    if got is None:
        raise not_attempted("my_cross_entropy", "training")
    got = torch.as_tensor(got, dtype=torch.float32)
    if got.dim() != 0:
        raise Hint(f"return one number, a 0-d tensor: the mean over all positions; got shape {list(got.shape)}")
    want = F.cross_entropy(logits.view(-1, V), targets.view(-1))
    if torch.isclose(got, want, rtol=1e-4, atol=1e-6):
        return "-log p(target), averaged over all B x T positions"
    pick = lambda t: t.gather(-1, targets.unsqueeze(-1)).squeeze(-1)   # noqa: E731  [B, T] entries of the targets
    slips = {
        "the loss is negative (hint: it is minus the mean log probability)": -want,
        "you summed over the positions (hint: the loss is the mean, so it does not grow with B and T)": want * B * T,
        "no log (hint: -log p, not -p)": -pick(logits.softmax(-1)).mean(),
        "softmax over the positions, dim=1 (hint: over the vocabulary, dim=-1)": -pick(logits.log_softmax(1)).mean(),
        "softmax over the batch, dim=0 (hint: over the vocabulary, dim=-1)": -pick(logits.log_softmax(0)).mean(),
        "logits are not log probabilities (hint: apply log_softmax first)": -pick(logits).mean(),
    }
    for hint, wrong in slips.items():
        if torch.isclose(got, wrong, rtol=1e-4, atol=1e-6):
            raise Hint(hint)
    raise Hint(f"expected {want.item():.4f}, got {got.item():.4f} (hint: pick log_softmax(logits)[b, t, "
               f"targets[b, t]] at every position)")


def n_bytes(tok, ids) -> int:
    """How many UTF-8 bytes the tokens ``ids`` stand for (a byte-level token may be part of a character)."""
    return len(tok.decode_bytes(ids)) if hasattr(tok, "decode_bytes") else len(tok.decode(ids).encode("utf-8"))


def _nll(model, ids):
    """[T-1] negative log-likelihoods (nats) of ids[1:] given what comes before, one forward pass."""
    idx = torch.tensor([ids], device=model.device)
    with torch.no_grad():
        logp = torch.log_softmax(model(idx[:, :-1]).logits[0].float(), dim=-1)   # [T-1, V]
    return -logp.gather(-1, idx[0, 1:, None]).squeeze(-1).cpu()


def reference_loss_per_byte(model, tok, text: str) -> float:
    """Nats per UTF-8 byte of the predicted tokens (all but the first) of ``text``."""
    ids = tok.encode(text)
    return _nll(model, ids).sum().item() / n_bytes(tok, ids[1:])


@exercise
def loss_per_byte(fn, models: dict):
    """Check ``fn(model, tok, text) -> nats per byte`` for each (model, tok) in ``models``
    ({name: (model, tok)}), on texts that fit the model's window."""
    texts = ["ROMEO:\nBut soft, what light through yonder window breaks?",
             "First Citizen:\nWe are accounted poor citizens."]
    name0, (m0, t0) = next(iter(models.items()))
    if fn(m0, t0, texts[0]) is None:
        raise not_attempted("loss_per_byte", "training")
    for name, (model, tok) in models.items():
        for text in texts:
            got, want = float(fn(model, tok, text)), reference_loss_per_byte(model, tok, text)
            if math.isclose(got, want, rel_tol=1e-3):
                continue
            ids = tok.encode(text)
            nll = _nll(model, ids)
            if math.isclose(got, nll.mean().item(), rel_tol=1e-3):
                if len(ids) == len(text.encode("utf-8")):
                    continue   # one byte per token: per token and per byte agree here, the next model tells
                raise Hint(f"{name}: that is the loss per token, {got:.3f} (hint: divide the summed loss by the "
                           f"number of bytes the predicted tokens stand for, not by their number)")
            if math.isclose(got, want / math.log(2), rel_tol=1e-3):
                raise Hint(f"{name}: you measured in bits (log base 2) (hint: the training loss is in nats, the "
                           f"natural log; keep it so that the two numbers compare)")
            if math.isclose(got, nll.sum().item() / len(text.encode("utf-8")), rel_tol=1e-3):
                raise Hint(f"{name}: you divided by all the bytes of the text (hint: the first token is never "
                           f"predicted, so count the bytes of ids[1:] only)")
            raise Hint(f"{name} on {text[:20]!r}...: expected {want:.4f} nats per byte, got {got:.4f} (hint: the "
                       f"logits at position t score token t + 1: model(ids[:-1]) against targets ids[1:])")
    return "nats per byte of predicted text, comparable across tokenizers"


@exercise
def peak_learning_rate(answer, history: dict):
    """Widget question: ``answer = (step, lr)`` where the monitor's learning-rate panel peaks."""
    if answer is None:
        raise not_attempted("answer", "training")
    if not (isinstance(answer, (tuple, list)) and len(answer) == 2):
        raise Hint("answer with a pair (step, learning rate), e.g. (150, 1e-3)")
    step, rate = answer
    lrs, its = history["lr"], history["iter"]
    top = max(range(len(lrs)), key=lrs.__getitem__)
    span = its[-1] - its[0] + 1
    if not abs(step - its[top]) <= max(2, 0.05 * span):
        if abs(step - its[-1]) <= 0.05 * span:
            raise Hint(f"at step {step} the rate is at its lowest, at the end of the cosine (hint: look for the "
                       f"top of the curve, where the warm-up ends)")
        raise Hint(f"at step {step} the rate is {lrs[min(range(len(its)), key=lambda i: abs(its[i] - step))]:.2g}, "
                   f"not the highest (hint: it climbs during the warm-up, then only falls)")
    if not math.isclose(rate, lrs[top], rel_tol=0.1):
        raise Hint(f"the step is right, but the rate there is not {rate:.2g} (hint: read the y-axis; its "
                   f"numbers may carry a factor like 1e-3 at the top)")
    return (f"the rate peaks at step {its[top]} with {lrs[top]:.2g}: it climbs for the warm-up, then decays "
            f"along the cosine")
