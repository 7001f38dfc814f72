"""Solutions for notebook 00."""

import torch


def greedy(model, tok, prompt, n):
    """The n characters the model writes after prompt when it always takes its most likely token."""
    ids = tok.encode(prompt)
    for _ in range(n):
        context = torch.tensor([ids[-model.config.block_size:]], device=model.device)   # crop to the window
        ids.append(model(context).logits[0, -1].argmax().item())
    return tok.decode(ids[len(tok.encode(prompt)):])


def continuation_logprob(model, tok, prompt, continuation):
    """Sum of log P(token | everything before it) over the continuation, with one call of the model."""
    ids = tok.encode(prompt + continuation)
    n = len(tok.encode(continuation))
    with torch.no_grad():
        logp = torch.log_softmax(model(torch.tensor([ids], device=model.device)).logits[0], dim=-1)   # [T, V]
    # the scores at position t - 1 predict token t
    return sum(logp[t - 1, ids[t]].item() for t in range(len(ids) - n, len(ids)))


answer = "the"   # the widget question: take argmax after "...through yonder " until the word ends
