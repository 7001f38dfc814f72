"""Checks for notebook 00 (the next-token loop): greedy decoding, the log-probability of a
continuation, and a question answered with the NextTokenExplorer."""

from __future__ import annotations

import torch

from . import Hint, exercise, not_attempted
from ..sampling import generate, next_token_distribution

WIDGET_PROMPT = "ROMEO:\nBut soft, what light through yonder "


@exercise
def greedy(fn, model, tok):
    """Check ``fn(model, tok, prompt, n) -> the n new characters`` against greedy ``mg.generate``."""
    prompt = "KING RICHARD III:\nNow is the winter of our discontent\nMade glorious summer by this sun of York;\n"
    n = 40  # len(prompt) + n > block_size: the context must be cropped
    try:
        got = fn(model, tok, prompt, n)
    except ValueError as e:
        if "block_size" in str(e) or "longer" in str(e):
            raise Hint(f"the model refused a context that is too long ({str(e)[:60]}...) "
                       f"(hint: crop it to the last block_size tokens, ids[-model.config.block_size:])") from e
        raise
    if got is None:
        raise not_attempted("greedy", "welcome")
    want = generate(model, tok, prompt, max_new_tokens=n, temperature=0, use_cache=False)
    if got == want:
        return "your greedy text equals mg.generate(..., temperature=0), cropping included"
    if got == prompt + want:
        raise Hint("you returned the prompt as well (hint: return only the n new characters)")
    if not isinstance(got, str):
        raise Hint(f"return the new text as a str, got {type(got).__name__} (hint: tok.decode(new_ids))")
    if len(got) != n:
        raise Hint(f"you returned {len(got)} characters (hint: exactly n = {n} new ones)")
    if got[0] != want[0]:
        raise Hint(f"the first character should be {want[0]!r}, got {got[0]!r} (hint: take the argmax of the "
                   f"scores at the last position, logits[0, -1], and do not sample)")
    k = next(i for i, (a, b) in enumerate(zip(got, want)) if a != b)
    raise Hint(f"right for {k} characters, then different (hint: append each new token to the context and "
               f"take the argmax every time)")


def reference_logprob(model, tok, prompt: str, continuation: str) -> float:
    """Sum of log P(token | everything before it) over the continuation, one step at a time."""
    total, ids = 0.0, tok.encode(prompt)
    for i in tok.encode(continuation):
        total += torch.log(next_token_distribution(model, tok, ids).raw[i]).item()
        ids.append(i)
    return total


@exercise
def continuation_logprob(fn, model, tok):
    """Check ``fn(model, tok, prompt, continuation) -> float`` against the step-by-step sum."""
    cases = [("ROMEO:\n", "But"), ("To be, or not to ", "be"), ("JULIET:\nO Romeo, Romeo!", " wherefore")]
    if fn(model, tok, *cases[0]) is None:
        raise not_attempted("continuation_logprob", "welcome")
    for prompt, cont in cases:
        got, want = float(fn(model, tok, prompt, cont)), reference_logprob(model, tok, prompt, cont)
        if abs(got - want) < 1e-3 * max(1.0, abs(want)):
            continue
        if 0 < got <= 1:
            raise Hint(f"{cont!r} after {prompt!r}: expected the log-probability {want:.3f}, got {got:.4f}, "
                       f"a probability (hint: return the sum of the logs, not the product of the probabilities)")
        if got > 1:
            raise Hint(f"{cont!r} after {prompt!r}: {got:.3f} is above 0, but log-probabilities are <= 0 "
                       f"(hint: did you sum raw logits? apply log_softmax first)")
        raise Hint(f"{cont!r} after {prompt!r}: expected {want:.3f}, got {got:.3f} (hint: the scores that "
                   f"predict token t sit at position t - 1, so the first continuation token is predicted at "
                   f"the last position of the prompt)")
    return "your log-probabilities match the step-by-step ones"


@exercise
def next_word(answer, model, tok, prompt: str = WIDGET_PROMPT):
    """Widget question: the word the model writes after ``prompt`` when you press "take argmax"
    until a space or a line break ends it."""
    if answer is None:
        raise not_attempted("answer", "welcome")
    text = generate(model, tok, prompt, max_new_tokens=30, temperature=0)
    word = text.split()[0] if text.split() else text
    got = str(answer).strip().strip("'\"")
    if got == word:
        return f"after {prompt[-14:]!r} the most likely character each time spells {word!r}"
    if word.startswith(got):
        raise Hint(f"{got!r} is how the word starts, but it goes on (hint: keep pressing take argmax until a "
                   f"space or a line break appears)")
    raise Hint(f"{got!r} is not what greedy writes (hint: type the prompt exactly, {prompt!r} with its space at "
               f"the end, set the sliders back, and press take argmax, not sample)")
