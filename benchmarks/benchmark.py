"""Speed and quality of minigpt against a reference, printed as figures and ratios.

    python benchmarks/benchmark.py                 # everything (about 5 minutes on 2 CPU cores)
    python benchmarks/benchmark.py --only train generate

The reference is Hugging Face ``transformers``' GPT2LMHeadModel of the same size, driven by
the same loop. Sizes follow nanoGPT's documented CPU run of Tiny Shakespeare (character level):
block 64, batch 12, 4 layers, 4 heads, 128 wide, no dropout.

- train:    tokens/s of a training step (forward, backward, AdamW), ours / reference
- generate: tokens/s for 500 new tokens, greedy, with the KV cache, ours / ``generate``;
            and ours with the cache / ours recomputing the whole context every step
- quality:  validation loss after 2000 iterations of the Trainer (nanoGPT's CPU figure: 1.88),
            warm-up 100 steps, cosine from 3e-3 to 3e-4, AdamW (0.9, 0.99), weight decay 0.1,
            clipping at 1.0; and the peak memory (max RSS) of that training run

The whole ``python -m minigpt train`` command against an older commit of this repository, at
the same configuration: ``benchmarks/train_speed.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import torch

import minigpt as mg

# the corpus copy beside the checkout, as the tests use it, unless told otherwise
_SHARED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data")
if "MINIGPT_DATA_DIR" not in os.environ and os.path.isdir(_SHARED):
    os.environ["MINIGPT_DATA_DIR"] = os.path.abspath(_SHARED)

SIZE = dict(n_layer=4, n_head=4, n_embd=128)
BLOCK, BATCH = 64, 12


def reference_model(vocab_size: int, block_size: int):
    import transformers

    transformers.logging.set_verbosity_error()
    cfg = transformers.GPT2Config(vocab_size=vocab_size, n_positions=block_size, n_embd=SIZE["n_embd"],
                                  n_layer=SIZE["n_layer"], n_head=SIZE["n_head"], resid_pdrop=0.0,
                                  embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=0, eos_token_id=0)
    return transformers.GPT2LMHeadModel(cfg)


def train_tokens_per_sec(model, x, steps: int, warmup: int = 5, bf16: bool = False) -> float:
    """The same loop for both models: forward with targets, backward, AdamW step (the forward
    under bfloat16 autocast when bf16, as the Trainer does on CPUs with bfloat16 units)."""
    is_ours = isinstance(model, mg.GPT)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model.train()
    for i in range(warmup + steps):
        if i == warmup:
            start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = model(x, targets=x).loss if is_ours else model(x, labels=x).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return x.numel() * steps / (time.perf_counter() - start)


def bench_train(rounds: int = 3, steps: int = 40) -> dict:
    torch.manual_seed(0)
    ours = mg.GPT(mg.GPTConfig(vocab_size=65, block_size=BLOCK, **SIZE))
    ref = reference_model(65, BLOCK)
    x = torch.randint(0, 65, (BATCH, BLOCK))
    a, b = [], []
    for _ in range(rounds):  # interleave, so drift in machine load hits both alike
        a.append(train_tokens_per_sec(ours, x, steps))
        b.append(train_tokens_per_sec(ref, x, steps))
    ours_tps, ref_tps = max(a), max(b)
    print(f"train      ours {ours_tps:8.0f} tok/s   transformers {ref_tps:8.0f} tok/s   "
          f"ratio {ours_tps / ref_tps:.2f}x   (float32)")
    result = dict(train_ours_tok_s=ours_tps, train_ref_tok_s=ref_tps, train_ratio=ours_tps / ref_tps)
    if mg.runtime.cpu_has_native_bfloat16():
        a, b = [], []
        for _ in range(rounds):
            a.append(train_tokens_per_sec(ours, x, steps, bf16=True))
            b.append(train_tokens_per_sec(ref, x, steps, bf16=True))
        print(f"train bf16 ours {max(a):8.0f} tok/s   transformers {max(b):8.0f} tok/s   "
              f"ratio {max(a) / max(b):.2f}x   (bfloat16 autocast; ours vs our float32: {max(a) / ours_tps:.2f}x)")
        result.update(train_bf16_ours_tok_s=max(a), train_bf16_ref_tok_s=max(b))
    return result


def bench_generate(new_tokens: int = 500, rounds: int = 3) -> dict:
    text = mg.data.load_text("tinyshakespeare")
    tok = mg.CharTokenizer.from_text(text)
    prompt = "ROMEO:"
    block = 1024  # long enough that 500 tokens never slide the window, as in GPT-2
    torch.manual_seed(0)
    ours = mg.GPT(mg.GPTConfig(vocab_size=tok.vocab_size, block_size=block, **SIZE)).eval()
    ref = reference_model(tok.vocab_size, block).eval()
    ids = torch.tensor([tok.encode(prompt)])

    def ours_run(use_cache):
        start = time.perf_counter()
        mg.generate(ours, tok, prompt, max_new_tokens=new_tokens, temperature=0.0, use_cache=use_cache)
        return new_tokens / (time.perf_counter() - start)

    def ref_run():
        start = time.perf_counter()
        with torch.no_grad():
            ref.generate(ids, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False,
                         pad_token_id=0, use_cache=True)
        return new_tokens / (time.perf_counter() - start)

    ours_run(True), ref_run()  # warm up both
    cached, ref_tps, uncached = [], [], []
    for i in range(rounds):  # interleaved, best of each: the least disturbed run of every contender
        cached.append(ours_run(True))
        ref_tps.append(ref_run())
        if i < 2:
            uncached.append(ours_run(False))
    c, r, uncached = max(cached), max(ref_tps), max(uncached)
    print(f"generate   ours {c:8.0f} tok/s   transformers {r:8.0f} tok/s   ratio {c / r:.2f}x")
    print(f"kv cache   with {c:8.0f} tok/s   without      {uncached:8.0f} tok/s   ratio {c / uncached:.2f}x "
          f"({new_tokens} new tokens)")
    return dict(gen_ours_tok_s=c, gen_ref_tok_s=r, gen_ratio=c / r, gen_nocache_tok_s=uncached,
                cache_ratio=c / uncached)


def _quality_run(max_iters: int) -> None:
    """Runs in a child process so that its peak memory is its own."""
    text = mg.data.load_text("tinyshakespeare")
    tok = mg.CharTokenizer.from_text(text)
    train_ids, val_ids = mg.data.split(torch.tensor(tok.encode(text)))
    torch.manual_seed(1337)
    model = mg.GPT(mg.GPTConfig(vocab_size=tok.vocab_size, block_size=BLOCK, dropout=0.0, **SIZE))
    # nanoGPT's recipe but a peak learning rate of 3e-3 (nanoGPT: 1e-3, which gives 1.88 here too)
    cfg = mg.TrainConfig(max_iters=max_iters, batch_size=BATCH, learning_rate=3e-3, min_lr=3e-4,
                         warmup_iters=100, eval_interval=max_iters, eval_iters=200, device="cpu",
                         progress=False, seed=1337)
    trainer = mg.Trainer(model, train_ids, val_ids, cfg)
    start = time.perf_counter()
    trainer.fit()
    seconds = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(dict(val_loss=trainer.history["val_loss"][-1], seconds=seconds, peak_mb=peak_mb)))


def bench_quality(max_iters: int = 2000) -> dict:
    out = subprocess.run([sys.executable, __file__, "--quality-child", str(max_iters)],
                         capture_output=True, text=True, check=True, env={**os.environ, "MINIGPT_FAST": "0"})
    r = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"quality    val loss {r['val_loss']:.3f} after {max_iters} iters in {r['seconds']:.0f} s   "
          f"(nanoGPT's CPU figure: 1.88)")
    print(f"memory     peak RSS of that training run {r['peak_mb']:.0f} MB")
    return dict(val_loss=r["val_loss"], quality_seconds=r["seconds"], peak_mb=r["peak_mb"])


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", nargs="+", choices=("train", "generate", "quality"),
                   default=("train", "generate", "quality"))
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    p.add_argument("--quality-child", type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.quality_child:
        return _quality_run(args.quality_child)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU")
    results = {}
    for name in args.only:
        results.update(dict(train=bench_train, generate=bench_generate, quality=bench_quality)[name]())
    return results


if __name__ == "__main__":
    main()
