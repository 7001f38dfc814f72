"""Checks for notebook 09 (a real chat model): RMSNorm, rotary position embeddings (RoPE), the
ChatML template, the memory of a grouped-query KV cache, and a question answered with the
ChatWidget (how sure the model was that its reply was over)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from . import Hint, exercise, not_attempted
from ..chat import ChatML, check_messages
from ..model import GPTConfig, apply_rope, rope_cos_sin
from ..sampling import next_token_distribution


def _close(a, b, atol=1e-5, rtol=1e-4) -> bool:
    return isinstance(a, torch.Tensor) and a.shape == b.shape and torch.allclose(a.float(), b.float(), atol=atol, rtol=rtol)


@exercise
def rms_norm(fn):
    """Check ``fn(x, weight, eps) -> [..., C]`` against torch's RMSNorm."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 5, 16, generator=g) + 0.7   # a mean far from 0 tells RMSNorm from LayerNorm
    w = torch.rand(16, generator=g) + 0.5
    eps = 1e-5
    y = fn(x, w, eps)
    if y is None:
        raise not_attempted("my_rms_norm", "real_chat")
    want = F.rms_norm(x, (16,), w, eps)
    if not isinstance(y, torch.Tensor) or y.shape != x.shape:
        raise Hint(f"return a tensor shaped like x {list(x.shape)}, got "
                   f"{list(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__}")
    if _close(y, want):
        # eps: on a vector of tiny numbers it decides the result
        tiny = torch.full((1, 16), 1e-4)
        if not _close(fn(tiny, torch.ones(16), 1e-2), F.rms_norm(tiny, (16,), torch.ones(16), 1e-2)):
            raise Hint("right on ordinary vectors, wrong on tiny ones: add eps to the mean square, inside the "
                       "square root (sqrt(mean(x²) + eps))")
        return "x / sqrt(mean(x²) + eps) · weight: no centring, no bias"
    if _close(y, F.layer_norm(x, (16,), w, None, eps)):
        raise Hint("that is LayerNorm: RMSNorm does not subtract the mean (hint: divide x itself by "
                   "sqrt(mean(x²) + eps))")
    if _close(y, F.rms_norm(x, (16,), None, eps)):
        raise Hint("you forgot the learned gain (hint: multiply by weight at the end)")
    if _close(y, x / (x.pow(2).sum(-1, keepdim=True) + eps).sqrt() * w):
        raise Hint("that divides by the root of the sum of squares (hint: the mean over the C channels, not "
                   "the sum)")
    if _close(y, x / (x.pow(2).mean(-1, keepdim=True) + eps) * w):
        raise Hint("you divided by the mean square itself (hint: take its square root)")
    raise Hint("not RMSNorm's output (hint: over the last dimension, rms = sqrt(mean(x²) + eps); "
               "return x / rms * weight)")


def _rope_ref(x, positions, base):
    cos, sin = rope_cos_sin(positions, x.size(-1), base)
    return apply_rope(x, cos, sin)


@exercise
def rope(fn):
    """Check ``fn(x, positions, base) -> [..., T, D]`` against ``minigpt.model.apply_rope``."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 3, 6, 8, generator=g)       # [B, heads, T, D]
    positions = torch.arange(10, 16)
    y = fn(x, positions, 100.0)
    if y is None:
        raise not_attempted("my_rope", "real_chat")
    want = _rope_ref(x, positions, 100.0)
    if not isinstance(y, torch.Tensor) or y.shape != x.shape:
        raise Hint(f"return a tensor shaped like x {list(x.shape)}, got "
                   f"{list(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__}")
    if _close(y, want):
        return "each pair (i, i + D/2) turned by position · base^(-2i/D); scores now depend on the offset only"
    if _close(y, x):
        raise Hint("nothing turned: multiply the pairs by cos and sin of position · frequency")
    if _close(y, _rope_ref(x, -positions, 100.0)):
        raise Hint("your rotation goes the wrong way (hint: x1·cos − x2·sin, then x1·sin + x2·cos)")
    if _close(y, _rope_ref(x, positions + 1, 100.0)) or _close(y, _rope_ref(x, positions - 1, 100.0)):
        raise Hint("off by one position (hint: use the positions as given; position 0 is not turned)")
    # the other pairing convention: adjacent dimensions (0, 1), (2, 3) ...
    D = x.size(-1)
    perm = torch.cat((torch.arange(0, D, 2), torch.arange(1, D, 2)))
    inverse = torch.argsort(perm)
    if _close(y, _rope_ref(x[..., perm], positions, 100.0)[..., inverse]):
        raise Hint("you paired adjacent dimensions (0, 1), (2, 3) ...; this model pairs dimension i with "
                   "i + D/2 (hint: x1 = x[..., :D//2], x2 = x[..., D//2:])")
    raise Hint("not the rotation the model uses (hint: angle = position · base^(-2i/D) for i = 0 .. D/2 − 1; "
               "new x1 = x1·cos − x2·sin, new x2 = x1·sin + x2·cos)")


@exercise
def chatml(fn):
    """Check ``fn(messages, add_generation_prompt) -> str`` against ``minigpt.chat.ChatML``."""
    conversations = [
        [{"role": "user", "content": "Hi!"}],
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is 2+2?"},
         {"role": "assistant", "content": "4."}, {"role": "user", "content": "And 3+3?"}],
    ]
    template = ChatML()  # no default system prompt: the messages as given
    got = fn(conversations[0], True)
    if got is None:
        raise not_attempted("my_chatml", "real_chat")
    if not isinstance(got, str):
        raise Hint(f"return the text (a str), got {type(got).__name__}")
    for messages in conversations:
        for gen in (True, False):
            mine, want = fn(messages, gen), template.render(check_messages(messages), add_generation_prompt=gen)
            if mine == want:
                continue
            if gen and mine == want[: -len("<|im_start|>assistant\n")]:
                raise Hint("the text must end by opening the assistant's turn (hint: add "
                           "'<|im_start|>assistant\\n' when add_generation_prompt is True)")
            if not gen and mine.endswith("<|im_start|>assistant\n") and not want.endswith("assistant\n"):
                raise Hint("add_generation_prompt=False: do not open the assistant's turn")
            if mine.replace("<|im_end|>", "<|im_end|>\n") == want:
                raise Hint("every message ends with '<|im_end|>' and a line break")
            if mine.replace("\n", "") == want.replace("\n", ""):
                raise Hint("the line breaks are not where ChatML has them (hint: '<|im_start|>' + role + '\\n' "
                           "+ content + '<|im_end|>\\n')")
            raise Hint(f"for {len(messages)} message(s) you wrote {mine!r}, ChatML is {want!r}")
    return "the same text as the template, with and without the generation prompt"


@exercise
def kv_cache_bytes(fn):
    """Check ``fn(config, T, bytes_per_number=4) -> int`` on several configurations."""
    configs = [GPTConfig(vocab_size=10, block_size=64, n_layer=30, n_head=9, n_embd=576, n_kv_head=3),
               GPTConfig(vocab_size=10, block_size=64, n_layer=2, n_head=4, n_embd=32),
               GPTConfig(vocab_size=10, block_size=64, n_layer=4, n_head=8, n_embd=64, n_kv_head=2)]
    if fn(configs[0], 100) is None:
        raise not_attempted("kv_cache_bytes", "real_chat")
    for c in configs:
        for T in (1, 100):
            D = c.n_embd // c.n_head
            want = 2 * c.n_layer * c.kv_heads * D * T * 4
            got = fn(c, T)
            if got == want:
                continue
            if got == want // 2:
                raise Hint("the cache holds keys AND values (hint: a factor 2)")
            if got == want * c.n_head // c.kv_heads:
                raise Hint("that counts every query head; the cache stores only the n_kv_head key-value heads "
                           "(hint: config.kv_heads)")
            if got == want // c.n_layer:
                raise Hint("every layer keeps its own keys and values (hint: multiply by n_layer)")
            if got == want // 4:
                raise Hint("that is a count of numbers; each takes bytes_per_number bytes")
            raise Hint(f"for n_layer={c.n_layer}, n_head={c.n_head}, n_kv_head={c.kv_heads}, n_embd={c.n_embd}, "
                       f"T={T} you say {got}, the cache takes {want} bytes")
    return "2 (k and v) · layers · key-value heads · head size · tokens · bytes: GQA makes it n_head/n_kv_head times smaller"


@exercise
def end_of_turn_probability(answer, widget):
    """Widget question: ``answer`` is the probability (0..1, or a percentage) that the reply's
    end-of-turn token had when it was drawn, as the ChatWidget shows when you click it."""
    if answer is None:
        raise not_attempted("answer", "real_chat")
    reply = widget.reply
    if reply is None or reply.stopped != "end_of_turn":
        raise Hint("the newest reply did not end with the end-of-turn token (it hit max new tokens): ask "
                   "something with a short answer, or raise max new tokens, then click the last token")
    try:
        p = float(answer)
    except (TypeError, ValueError):
        raise Hint(f"answer with a number, e.g. 0.42 or 42 (for 42%), got {answer!r}") from None
    if p > 1:
        p /= 100  # given in percent
    last = reply.steps[-1]
    # the package's own distribution at that place, with the knobs of the reply
    knobs = widget.knobs()
    knobs.pop("max_new_tokens", None)
    dist = next_token_distribution(widget.chat.model, widget.chat.tokenizer, list(reply.prompt.ids) + reply.token_ids[:-1],
                                   **knobs)
    truth = float(dist.final[last.token_id])
    if abs(p - truth) <= 0.006:
        return (f"the model ended its reply with p = {truth:.1%} (before the knobs: "
                f"{float(dist.raw[last.token_id]):.1%}); a reply ends only when this token is drawn")
    first = reply.steps[0].prob
    if abs(p - first) <= 0.006:
        raise Hint("that is the first token's probability; click the last token of the reply, <|im_end|>")
    raise Hint(f"{p:.1%} is not what the last token shows (hint: click <|im_end|>, the last button of the reply, "
               f"and read its p in the line above the table)")
