"""Solutions for notebook 08 (from a language model to a chat model)."""

import torch

IGNORE = -100


def my_labels(ids, roles, special):
    """ids: [N] token ids; roles: [N] the role of the message each token belongs to; special:
    {special token: id}. Returns [N] labels: the id where the assistant writes (its words and its
    <|end|>), -100 elsewhere (system, user, and the <|assistant|> token that opens its turn)."""
    return [i if r == "assistant" and i != special["<|assistant|>"] else IGNORE for i, r in zip(ids, roles)]


answer = "user"  # buggy_labels trains on the user's words


def my_pad_batch(examples, pad_id):
    """examples: [(ids, labels), ...]; returns x, y: [B, T] with T = the longest length - 1.
    Masked by position (after each conversation's end), never by id: the pad id may be a real token."""
    T = max(len(ids) for ids, _ in examples) - 1
    x = torch.full((len(examples), T), pad_id, dtype=torch.long)
    y = torch.full((len(examples), T), IGNORE, dtype=torch.long)
    for b, (ids, labels) in enumerate(examples):
        n = len(ids) - 1
        x[b, :n] = torch.tensor(ids[:-1])
        y[b, :n] = torch.tensor(labels[1:])
    return x, y
