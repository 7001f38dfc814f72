"""Fine-tuning speed: one conversation per row (padding) vs conversations laid end to end (packing).

    python benchmarks/benchmark_sft.py                 # the shipped base model's shape, DailyDialog
    python benchmarks/benchmark_sft.py --steps 10      # shorter

For each way of batching it runs training steps (forward, backward, AdamW) in a fresh process and
prints: real tokens per second (conversation tokens, padding not counted), the share of the
token positions that are padding (compute spent on nothing), assistant tokens (those with a loss)
per second, and the process's peak memory (CUDA: peak allocated; CPU: peak resident set).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time


def run(mode: str, steps: int, batch_size: int, device: str) -> dict:
    import torch

    import minigpt as mg
    from minigpt import sft

    model, tok = sft.add_chat_tokens(*mg.pretrained.load("dailydialog-base"))
    device = mg.pick_device() if device == "auto" else torch.device(device)
    model.to(device).train()
    block = model.config.block_size
    train, _ = sft.load_chat_data("dailydialog", tok, block, packing=mode == "packing", max_dialogues=2000)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    g = torch.Generator().manual_seed(0)
    batches = [sft.ChatData.get_batch(train, batch_size, block, generator=g) for _ in range(steps + 2)]
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    real = trained = positions = 0
    for i, (x, y) in enumerate(batches):
        if i == 2:  # two warm-up steps, then the clock starts
            if device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
        x, y = x.to(device), y.to(device)
        loss = model(x, targets=y).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if i >= 2:
            real += int((x != train.pad_id).sum())
            trained += int((y != sft.IGNORE).sum())
            positions += x.numel()
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    peak = (torch.cuda.max_memory_allocated() if device.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    return {"mode": mode, "device": str(device), "tokens_per_s": real / seconds, "assistant_tokens_per_s": trained / seconds,
            "padding_share": 1 - real / positions, "rows": batches[0][0].shape[0],
            "mean_row_length": positions / steps / batches[0][0].shape[0], "peak_memory_mb": peak / 2**20}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--device", default="auto")
    p.add_argument("--one", choices=("padding", "packing"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one:
        print(json.dumps(run(args.one, args.steps, args.batch_size, args.device)))
        return
    results = {}
    for mode in ("padding", "packing"):  # each in its own process, so peak memory is its own
        out = subprocess.run([sys.executable, __file__, "--one", mode, "--steps", str(args.steps),
                              "--batch-size", str(args.batch_size), "--device", args.device],
                             capture_output=True, text=True, env=os.environ)
        if out.returncode:
            raise SystemExit(f"the {mode} run failed:\n{out.stderr}")
        results[mode] = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"fine-tuning dailydialog-base on DailyDialog (2,000 dialogues), batch {args.batch_size}, {args.steps} steps, "
          f"{results['padding']['device']}")
    print(f"{'':9}{'tokens/s':>10}{'assistant tok/s':>17}{'padding':>9}{'row length':>12}{'peak MB':>9}")
    for mode, r in results.items():
        print(f"{mode:9}{r['tokens_per_s']:10,.0f}{r['assistant_tokens_per_s']:17,.0f}{r['padding_share']:9.1%}"
              f"{r['mean_row_length']:12.1f}{r['peak_memory_mb']:9,.0f}")
    ratio = results["packing"]["tokens_per_s"] / results["padding"]["tokens_per_s"]
    print(f"packing / padding: {ratio:.2f}x the conversation tokens per second")


if __name__ == "__main__":
    main()
