"""Checks for notebook 04 (the GPT): the parameter count, the block's forward pass, LayerNorm,
your own whole GPT class loaded with the shipped weights, and a question answered with the
NextTokenExplorer."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from . import Hint, NotAttempted, exercise, not_attempted
from ..model import GPT, GPTConfig
from ..sampling import next_token_distribution


@exercise
def count_params(fn):
    """Check ``fn(V, T, C, L) -> int`` against real models built on the meta device."""
    configs = [(65, 128, 128, 4), (50, 32, 32, 2), (100, 16, 48, 3), (50257, 1024, 768, 12)]
    if fn(*configs[0]) is None:
        raise not_attempted("count_params", "gpt")
    slips = {  # a typical mistake -> what it adds to the true count, given (V, T, C, L)
        "you counted the LM head's V*C weights (hint: weight tying shares them with wte, so the head adds nothing)":
            lambda V, T, C, L: V * C,
        "you forgot the position embeddings (hint: wpe holds T*C)": lambda V, T, C, L: -T * C,
        "you forgot the token embeddings (hint: wte holds V*C)": lambda V, T, C, L: -V * C,
        "you forgot the biases of the Linear layers (hint: 3C + C in attention, 4C + C in the MLP, per block)":
            lambda V, T, C, L: -9 * C * L,
        "you forgot the LayerNorms (hint: 2C each, ln_1 and ln_2 in every block, plus ln_f)":
            lambda V, T, C, L: -(4 * L + 2) * C,
        "you forgot the final LayerNorm (hint: ln_f holds 2C)": lambda V, T, C, L: -2 * C,
        "a LayerNorm has a weight and a bias (hint: 2C parameters, not C)": lambda V, T, C, L: -(2 * L + 1) * C,
        "the MLP is 4 times wider than C (hint: c_fc is C x 4C + 4C, c_proj 4C x C + C)":
            lambda V, T, C, L: -(6 * C * C + 3 * C) * L,
        "attention has two Linear layers (hint: c_attn is C x 3C + 3C for q, k and v, and c_proj C x C + C)":
            lambda V, T, C, L: -(C * C + C) * L,
        "only one block counted (hint: multiply the per-block count by the number of blocks L)":
            lambda V, T, C, L: -(12 * C * C + 13 * C) * (L - 1),
    }
    diffs = []
    for V, T, C, L in configs:
        with torch.device("meta"):
            true = GPT(GPTConfig(vocab_size=V, block_size=T, n_embd=C, n_layer=L, n_head=4)).num_params()
        diffs.append(fn(V, T, C, L) - true)
    if not any(diffs):
        return "your formula matches the real parameter count of every model tried, GPT-2 small included"
    for hint, delta in slips.items():
        if all(d == delta(*cfg) for d, cfg in zip(diffs, configs)):
            raise Hint(hint)
    (V, T, C, L), d = next((cfg, d) for cfg, d in zip(configs, diffs) if d)
    raise Hint(f"for V={V}, T={T}, C={C}, L={L} your count is off by {d:+,} (hint: compare component by "
               f"component with the table above)")


@exercise
def block_forward(fn, model):
    """Check ``fn(x, block) -> [B, T, C]`` against ``minigpt.model.Block`` (a block of ``model``)."""
    block = model.transformer.h[1]
    x = torch.randn(2, 8, model.config.n_embd, generator=torch.Generator().manual_seed(2)).to(model.device)
    try:
        with torch.no_grad():
            y = fn(x, block)
    except TypeError as e:
        if "tuple" in str(e):
            raise Hint("block.attn returns a tuple, the output first and the attention maps after it "
                       "(hint: take its first element, block.attn(h)[0])") from e
        raise
    if y is None:
        raise not_attempted("my_block_forward", "gpt")
    if isinstance(y, tuple):
        raise Hint("return only the new x, a [B, T, C] tensor (Block.forward also returns the attention "
                   "maps; yours need not)")
    if y.shape != x.shape:
        raise Hint(f"the block must keep the shape {list(x.shape)}, got {list(y.shape)}")
    ln_1, ln_2, mlp = block.ln_1, block.ln_2, block.mlp
    attn = lambda h: block.attn(h)[0]   # noqa: E731
    with torch.no_grad():
        want = block(x)[0]
        if torch.allclose(y, want, atol=1e-5, rtol=1e-4):
            return "x + attn(ln_1(x)), then x + mlp(ln_2(x))"
        a = x + attn(ln_1(x))
        slips = {
            "you normalised after adding (post-LN, as the original Transformer) (hint: GPT-2 normalises each "
            "sub-layer's input: x + attn(ln_1(x)))": ln_2(ln_1(x + attn(x)) + mlp(ln_1(x + attn(x)))),
            "you forgot both residual connections (hint: x = x + attn(...), x = x + mlp(...))": mlp(ln_2(attn(ln_1(x)))),
            "you forgot the residual around attention (hint: x = x + attn(ln_1(x)))":
                attn(ln_1(x)) + mlp(ln_2(attn(ln_1(x)))),
            "you forgot the residual around the MLP (hint: x = x + mlp(ln_2(x)))": mlp(ln_2(a)),
            "ln_1 before the MLP (hint: each sub-layer has its own LayerNorm, ln_2 before the MLP)": a + mlp(ln_1(a)),
            "the MLP read the block's input (hint: it reads the stream after attention was added, x + attn first)":
                a + mlp(ln_2(x)),
            "the MLP came first (hint: attention first, then the MLP)": (lambda m: m + attn(ln_1(m)))(x + mlp(ln_2(x))),
        }
        for hint, wrong in slips.items():
            if torch.allclose(y, wrong, atol=1e-5, rtol=1e-4):
                raise Hint(hint)
        err = (y - want).abs().max().item()
    raise Hint(f"your block differs from minigpt.model.Block by up to {err:.3g} (hint: compare with the "
               f"equations at the top of the notebook)")


@exercise
def layer_norm(fn):
    """Check ``fn(x, weight, bias, eps=1e-5)`` against ``F.layer_norm``."""
    gen = torch.Generator().manual_seed(3)
    C = 16
    x = torch.randn(3, 5, C, generator=gen) * 0.01          # small spread, so eps matters
    x[0, 0] = 0.5                                          # one token with all channels equal
    weight, bias = torch.rand(C, generator=gen) + 0.5, torch.randn(C, generator=gen)
    try:
        y = fn(x, weight, bias)
    except RuntimeError as e:
        if "must match the size" in str(e):
            raise Hint("the mean and variance must keep their dimension to broadcast against x "
                       "(hint: x.mean(dim=-1, keepdim=True))") from e
        raise
    if y is None:
        raise not_attempted("my_layer_norm", "gpt")
    if y.shape != x.shape:
        raise Hint(f"the output must have the input's shape {list(x.shape)}, got {list(y.shape)}")
    if torch.isnan(y).any():
        raise Hint("NaN for a token whose channels are all equal, variance 0 (hint: put eps inside the square "
                   "root, sqrt(var + eps))")
    want = F.layer_norm(x, (C,), weight, bias, eps=1e-5)
    if torch.allclose(y, want, atol=1e-5, rtol=1e-4):
        return "mean 0, variance 1 over the channels of each token, then weight and bias"
    mu = x.mean(-1, keepdim=True)
    var = x.var(-1, keepdim=True, unbiased=False)
    slips = {
        "torch.var divides by C - 1 by default (hint: LayerNorm divides by C, x.var(dim=-1, unbiased=False))":
            (x - mu) / torch.sqrt(x.var(-1, keepdim=True) + 1e-5) * weight + bias,
        "eps is outside the square root (hint: (x - mean) / sqrt(var + eps))":
            (x - mu) / (var.sqrt() + 1e-5) * weight + bias,
        "the learned scale and shift are missing (hint: end with ... * weight + bias)": (x - mu) / torch.sqrt(var + 1e-5),
        "you normalised over the batch, dim=0 (hint: over the C channels of each token, dim=-1)":
            (x - x.mean(0, keepdim=True)) / torch.sqrt(x.var(0, keepdim=True, unbiased=False) + 1e-5) * weight + bias,
        "you normalised over the positions, dim=1 (hint: over the C channels of each token, dim=-1)":
            (x - x.mean(1, keepdim=True)) / torch.sqrt(x.var(1, keepdim=True, unbiased=False) + 1e-5) * weight + bias,
    }
    for hint, wrong in slips.items():
        if torch.allclose(y, wrong, atol=1e-5, rtol=1e-4):
            raise Hint(hint)
    raise Hint(f"your LayerNorm differs from F.layer_norm by up to {(y - want).abs().max().item():.3g}")


_NAMES = ("transformer.wte, transformer.wpe, transformer.h[i] (ln_1, attn.c_attn, attn.c_proj, ln_2, mlp.c_fc, "
          "mlp.c_proj), transformer.ln_f and lm_head, as in minigpt.model.GPT")


def _logits(out):
    return getattr(out, "logits", out)


@exercise
def gpt_class(MyGPT, model, tok):
    """Check a whole GPT class: build ``MyGPT(model.config)``, load ``model``'s weights into it
    (its state_dict names must be the package's) and compare the logits on real text."""
    config = model.config
    mine = MyGPT(config).to(model.device).eval()
    theirs = model.state_dict()
    own = mine.state_dict()
    if not own:
        raise NotAttempted("not attempted yet: MyGPT has no weights. Fill in the TODO and run the cell again "
                           "(stuck? a reference solution is in minigpt/exercises/solutions/gpt.py)")
    missing = [k for k in own if k not in theirs]            # yours, but not in the shipped file
    lacking = [k for k in theirs if k not in own and k != "lm_head.weight"]   # the head may reuse wte
    if missing or lacking:
        example = f"your model has {missing[0]!r}, which the shipped weights do not" if missing else \
                  f"the shipped weights have {lacking[0]!r}, which your model lacks"
        raise Hint(f"{example} ({len(missing)} names of yours unknown, {len(lacking)} missing) (hint: name the "
                   f"parts {_NAMES}; nn.ModuleDict(dict(wte=..., ...)) gives transformer.wte)")
    for k, v in own.items():
        if v.shape != theirs[k].shape:
            raise Hint(f"{k} is {list(v.shape)} in your model but {list(theirs[k].shape)} in the shipped weights "
                       f"(hint: nn.Linear(n_in, n_out) stores its weight as [n_out, n_in])")
    mine.load_state_dict({k: theirs[k] for k in own})
    text = "ROMEO:\nBut soft, what light through yonder window breaks?\nIt is the east, and Juliet is the sun."
    ids = tok.encode(text)
    idx = torch.tensor([ids, ids[::-1]], device=model.device)                      # [2, T], T < block_size
    with torch.no_grad():
        out = mine(idx)
        want = model(idx).logits
    got = _logits(out)
    if got is None:
        raise not_attempted("MyGPT.forward", "gpt")
    if not isinstance(got, torch.Tensor):
        raise Hint(f"forward should return the logits tensor [B, T, V] (or an object with .logits), got "
                   f"{type(got).__name__}")
    if tuple(got.shape) == tuple(want.shape[:2]) + (config.n_embd,):
        raise Hint(f"your output is [B, T, C] = {list(got.shape)} (hint: the final ln_f, then lm_head, turn "
                   f"the last hidden state into [B, T, V] scores)")
    if tuple(got.shape) != tuple(want.shape):
        raise Hint(f"the logits must be [B, T, V] = {list(want.shape)}, got {list(got.shape)}")
    if torch.allclose(got, want, atol=1e-4, rtol=1e-4):
        with torch.no_grad():   # and the longest context the model takes, one full window
            long = torch.tensor([tok.encode((text * 2)[:config.block_size])], device=model.device)
            if not torch.allclose(_logits(mine(long)), model(long).logits, atol=1e-4, rtol=1e-4):
                raise Hint("right on a short text, wrong on a full window of block_size tokens (hint: positions "
                           "are torch.arange(T) for the T tokens given, up to block_size)")
        return (f"MyGPT with the shipped weights gives the package's logits (largest gap "
                f"{(got - want).abs().max().item():.1e})")
    with torch.no_grad():
        changed = idx.clone()
        changed[:, -1] = (changed[:, -1] + 1) % config.vocab_size
        leak = (_logits(mine(changed))[:, :-1] - got[:, :-1]).abs().max().item()
        if leak > 1e-5:
            raise Hint(f"changing the last token changed the logits at earlier positions by up to {leak:.2f}: "
                       f"position t sees later tokens (hint: the causal mask, e.g. is_causal=True or "
                       f"masked_fill(~torch.tril(...), -inf) before the softmax)")
        hidden = model(idx, return_hidden_states=True).hidden_states
        tr = model.transformer
        if torch.allclose(got, model.lm_head(hidden[-1]), atol=1e-4, rtol=1e-4):
            raise Hint("the final LayerNorm is missing (hint: logits = lm_head(ln_f(x)))")
        x = tr.wte(idx)
        for block in tr.h:
            x = block(x)[0]
        if torch.allclose(got, model.lm_head(tr.ln_f(x)), atol=1e-4, rtol=1e-4):
            raise Hint("the position embeddings are missing (hint: x = wte(idx) + wpe(torch.arange(T)))")
        first = (got[:, 0] - want[:, 0]).abs().max().item()
    where = "already at position 0, so look at the embeddings and the first block" if first > 1e-4 else \
        "from position 1 on, so look at how positions mix: attention"
    raise Hint(f"your logits differ from the package's by up to {(got - want).abs().max().item():.3g}, {where} "
               f"(hint: compare stage by stage with model(idx, return_hidden_states=True).hidden_states)")


@exercise
def past_changes_future(answer, model, tok, prompt: str = "BRUTUS:\nIt w"):
    """Widget question: does changing the FIRST character of ``prompt`` change the distribution
    of the next character? ``answer`` is True or False."""
    if answer is None:
        raise not_attempted("answer", "gpt")
    if not isinstance(answer, bool):
        raise Hint("answer True or False")
    other = ("C" if prompt[0] != "C" else "D") + prompt[1:]
    p, q = (next_token_distribution(model, tok, s).raw for s in (prompt, other))
    moved = 0.5 * (p - q).abs().sum().item()   # total variation: how much probability moved
    if answer:
        return (f"{prompt!r} -> {other!r} moves {moved:.1%} of the next character's probability: the last "
                f"position reads every earlier one; the mask only hides the future from the past")
    raise Hint(f"try it: {prompt!r} -> {other!r} moves {moved:.1%} of the probability (hint: the causal mask "
               f"stops a position from seeing later ones; the last position sees all the earlier ones)")
