"""Whole-process wall time of ``python -m minigpt train``: this checkout against an older commit.

    python benchmarks/train_speed.py                         # against main's 8674c83, 3 rounds of 2000 steps
    python benchmarks/train_speed.py --old-commit HEAD~3 --rounds 5 --max-iters 500
    python benchmarks/train_speed.py --old /tmp/oldmain      # a checkout you made yourself

The configuration is nanoGPT's documented CPU run of Tiny Shakespeare (character level):
block 64, batch 12, 4 layers, 4 heads, 128 wide, no dropout, learning rate 1e-3 with 100 steps
of warm-up and a cosine down to 1e-4, evaluation every 250 steps on 20 batches.

Both commands run as fresh processes (start-up, tokenising the corpus, training, evaluation,
all of it), one after the other in alternation, so that a change in the machine's load hits both
alike; the best round of each is the one least disturbed. It prints every round, the best and
median times, the ratio old / new, and the final validation loss of each (equal seeds, so the
two should agree closely). Other checkouts are made with ``git worktree add`` in a temporary folder
and removed afterwards.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared" / "data"

NANOGPT_CPU = ["--data", "tinyshakespeare", "--tokenizer", "char", "--block-size", "64", "--batch-size", "12",
               "--n-layer", "4", "--n-head", "4", "--n-embd", "128", "--dropout", "0.0", "--lr", "1e-3",
               "--min-lr", "1e-4", "--warmup-iters", "100", "--eval-interval", "250", "--eval-iters", "20",
               "--seed", "1337", "--no-progress"]


def run_once(checkout: Path, max_iters: int, extra: list[str]) -> tuple[float, float]:
    """One whole ``python -m minigpt train`` in ``checkout``; returns (seconds, final val loss)."""
    env = {**os.environ, "PYTHONPATH": str(checkout), "MINIGPT_FAST": "0"}
    if "MINIGPT_DATA_DIR" not in env and SHARED.is_dir():
        env["MINIGPT_DATA_DIR"] = str(SHARED)
    cmd = [sys.executable, "-m", "minigpt", "train", *NANOGPT_CPU, "--max-iters", str(max_iters), *extra]
    start = time.perf_counter()
    out = subprocess.run(cmd, cwd=checkout, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed in {checkout}:\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")
    val = re.findall(r"val loss ([0-9.]+)", out.stdout)
    return seconds, float(val[-1]) if val else float("nan")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    where = p.add_mutually_exclusive_group()
    where.add_argument("--old", type=Path, help="a checkout of the older code")
    where.add_argument("--old-commit", default="8674c83", help="commit to check out as the older code "
                       "(default: %(default)s)")
    p.add_argument("--new", type=Path, default=REPO, help="the newer checkout (default: this one)")
    p.add_argument("--rounds", type=int, default=3, help="runs of each, alternating (default: %(default)s)")
    p.add_argument("--max-iters", type=int, default=2000, help="training steps per run (default: %(default)s)")
    p.add_argument("--extra", nargs=argparse.REMAINDER, default=[],
                   help="more flags for both commands, e.g. --extra --device cpu")
    args = p.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        old = args.old
        if old is None:
            old = Path(tmp) / "old"
            subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(old), args.old_commit],
                           check=True, capture_output=True)
        try:
            times = {"old": [], "new": []}
            losses = {"old": [], "new": []}
            print(f"python -m minigpt train {' '.join(NANOGPT_CPU)} --max-iters {args.max_iters} {' '.join(args.extra)}")
            for r in range(args.rounds):
                order = (("old", old), ("new", args.new)) if r % 2 == 0 else (("new", args.new), ("old", old))
                for name, checkout in order:
                    seconds, val = run_once(checkout, args.max_iters, args.extra)
                    times[name].append(seconds)
                    losses[name].append(val)
                    print(f"round {r + 1}  {name}  {seconds:6.1f} s  val loss {val:.4f}", flush=True)
        finally:
            if args.old is None:
                subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(old)],
                               capture_output=True)
    best = {k: min(v) for k, v in times.items()}
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"best    old {best['old']:6.1f} s   new {best['new']:6.1f} s   ratio {best['old'] / best['new']:.2f}x")
    print(f"median  old {med['old']:6.1f} s   new {med['new']:6.1f} s   ratio {med['old'] / med['new']:.2f}x")
    print(f"val loss  old {losses['old'][-1]:.4f}   new {losses['new'][-1]:.4f}")


if __name__ == "__main__":
    main()
