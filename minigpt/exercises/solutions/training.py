"""Solutions for notebook 05."""

import math

import torch


def make_batch(data, starts, block_size):
    """data: [N] token ids; starts: a list of offsets. Returns x, y: [B, block_size] each."""
    x = torch.stack([data[s: s + block_size] for s in starts])
    y = torch.stack([data[s + 1: s + 1 + block_size] for s in starts])
    return x, y


def my_lr(it, config):
    """Learning rate at step it (0-based) for a TrainConfig."""
    lr_max, lr_min = config.learning_rate, config.min_lr
    W, D = config.warmup_iters, config.max_iters
    if it < W:
        return lr_max * (it + 1) / (W + 1)
    if it >= D:
        return lr_min
    progress = (it - W) / (D - W)
    return lr_min + 0.5 * (1 + math.cos(math.pi * progress)) * (lr_max - lr_min)


def my_cross_entropy(logits, targets):
    """logits: [B, T, V], targets: [B, T] token ids -> a scalar tensor."""
    log_probs = torch.log_softmax(logits, dim=-1)                          # [B, T, V]
    return -log_probs.gather(-1, targets.unsqueeze(-1)).squeeze(-1).mean()


def loss_per_byte(model, tok, text):
    """Nats per UTF-8 byte: the summed loss of every predicted token of text (all but the first,
    which nothing predicts) over the bytes those tokens stand for. text fits the model's window."""
    ids = torch.tensor([tok.encode(text)], device=model.device)            # [1, T]
    with torch.no_grad():
        logits = model(ids[:, :-1]).logits                                  # position t scores token t + 1
    nats = torch.nn.functional.cross_entropy(logits[0], ids[0, 1:], reduction="sum").item()
    predicted = ids[0, 1:].tolist()
    # a byte-level token can be part of a character: count its bytes, not the characters it decodes to
    n_bytes = len(tok.decode_bytes(predicted)) if hasattr(tok, "decode_bytes") else len(tok.decode(predicted).encode())
    return nats / n_bytes


def peak_learning_rate(history):
    """The widget question, answered from the history the monitor draws."""
    top = max(range(len(history["lr"])), key=history["lr"].__getitem__)
    return history["iter"][top], history["lr"][top]
