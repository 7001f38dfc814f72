"""Alignment speed: rollouts with and without the KV cache, a PPO step split into rollout / scoring /
update, a DPO step and a reward-model step, each with its peak memory.

    python benchmarks/benchmark_align.py                                  # dailydialog-chat on this machine
    python benchmarks/benchmark_align.py --model smollm2-135m-instruct --device cuda --batch-size 64

Each part runs in a fresh process (so the peak memory is that part's: CUDA peak allocated, or the
CPU process's peak resident set) and prints one JSON line; the summary prints the ratios.
- rollout:  answers of up to --new-tokens tokens to --batch-size prompts of one length, sampled
            with the KV cache (``align.rollout``) and by recomputing the whole sequence every token;
            answer tokens per second (rows that already ended do not count).
- ppo:      PPOTrainer steps (--batch-size prompts, minibatches of 8, 4 epochs): seconds per step in
            rollout, scoring (policy, reference and reward-model forwards, GAE) and update.
- dpo:      DPO steps on --batch-size preference pairs (policy forward + backward, reference forward).
- reward:   Bradley–Terry steps on --batch-size pairs.

    python benchmarks/benchmark_align.py --side-by-side       # quality: start vs PPO vs DPO (about 15 minutes on CPU)
"""

from __future__ import annotations

import argparse
import copy
import json
import resource
import subprocess
import sys
import time


def _setup(args):
    import torch

    import minigpt as mg
    from minigpt import align

    device = mg.pick_device() if args.device == "auto" else torch.device(args.device)
    policy, tok = mg.pretrained.load(args.model, device=device)
    if "<|assistant|>" in tok.special_tokens:
        prompts = align.dialogue_prompts("train", n=2000, tokenizer=tok, max_prompt_tokens=48)
    else:
        prompts = [p.prompt for p in align.load_preference_pairs("train")]
    return torch, mg, align, device, policy, tok, prompts


def _peak(torch, device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _sync(torch, device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def part_rollout(args) -> dict:
    torch, mg, align, device, policy, tok, prompts = _setup(args)
    from collections import Counter
    length = Counter(len(align.prompt_ids(tok, p)) for p in prompts).most_common(1)[0][0]
    group = [p for p in prompts if len(align.prompt_ids(tok, p)) == length][:args.batch_size]
    group = (group * args.batch_size)[:args.batch_size]
    out = {}
    for cached in (True, False):
        g = torch.Generator(device=device).manual_seed(0)
        tokens, seconds = 0, 0.0
        for r in range(args.repeats + 1):
            _sync(torch, device)
            t0 = time.perf_counter()
            if cached:
                ro = align.rollout(policy, tok, group, max_new_tokens=args.new_tokens, generator=g)
                n = int(ro.lengths.sum())
            else:
                n = _rollout_recompute(torch, align, policy, tok, group, args.new_tokens, g)
            _sync(torch, device)
            if r:  # the first round warms up
                tokens, seconds = tokens + n, seconds + time.perf_counter() - t0
        out["cached_tokens_per_s" if cached else "recompute_tokens_per_s"] = tokens / seconds
    return {"part": "rollout", "prompt_tokens": length, **out, "peak_mb": _peak(torch, device)}


def _rollout_recompute(torch, align, policy, tok, prompts, new_tokens, g) -> int:
    """The same sampling without a cache: the whole sequence through the model for every new token."""
    from minigpt.sampling import Knobs
    stop = align.end_id(tok)
    x = torch.tensor([align.prompt_ids(tok, p) for p in prompts], device=policy.device)
    done = torch.zeros(len(prompts), dtype=torch.bool, device=policy.device)
    n = 0
    with torch.inference_mode():
        for _ in range(min(new_tokens, policy.config.block_size - x.size(1))):
            token = Knobs().pick(policy(x, last_only=True).logits[:, -1].float(), None, g)
            token = torch.where(done, stop, token)
            n += int((~done).sum())
            done |= token == stop
            x = torch.cat([x, token[:, None]], 1)
            if bool(done.all()):
                break
    return n


def part_ppo(args) -> dict:
    torch, mg, align, device, policy, tok, prompts = _setup(args)
    rm = align.RewardModel.from_policy(policy, tok)
    config = align.PPOConfig(batch_size=args.batch_size, minibatch_size=min(8, args.batch_size), ppo_epochs=4,
                             max_new_tokens=args.new_tokens, progress=False, device=str(device),
                             max_iters=args.steps + 1)
    trainer = align.PPOTrainer(policy, copy.deepcopy(policy), rm, tok, prompts, config)
    for _ in range(args.steps + 1):
        trainer.step()
    h = {k: trainer.history[k][1:] for k in ("rollout_s", "score_s", "update_s", "answer_length")}
    mean = {k: sum(v) / len(v) for k, v in h.items()}
    return {"part": "ppo", **mean, "step_s": mean["rollout_s"] + mean["score_s"] + mean["update_s"],
            "peak_mb": _peak(torch, device)}


def _pairs(align, tok, policy):
    return align.encode_pairs(tok, align.load_preference_pairs("train"), policy.config.block_size)


def part_dpo(args) -> dict:
    torch, mg, align, device, policy, tok, prompts = _setup(args)
    from minigpt.align.dpo import pair_logprobs
    reference = copy.deepcopy(policy).requires_grad_(False)
    enc = _pairs(align, tok, policy)
    opt = torch.optim.AdamW(policy.parameters(), lr=1e-6)
    g = torch.Generator().manual_seed(0)
    times = []
    for i in range(args.steps + 1):
        batch = enc.batch(torch.randint(len(enc), (args.batch_size,), generator=g).tolist()).to(device)
        _sync(torch, device)
        t0 = time.perf_counter()
        with torch.no_grad():
            ref = pair_logprobs(reference, batch, False)
        loss = align.dpo_loss(*pair_logprobs(policy, batch, False), *ref).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        _sync(torch, device)
        times.append(time.perf_counter() - t0)
    return {"part": "dpo", "step_s": sum(times[1:]) / args.steps, "peak_mb": _peak(torch, device)}


def part_reward(args) -> dict:
    torch, mg, align, device, policy, tok, prompts = _setup(args)
    from minigpt.align.reward_model import pair_scores
    rm = align.RewardModel.from_policy(policy, tok).train()
    del policy
    enc = _pairs(align, tok, rm.backbone)
    opt = torch.optim.AdamW(rm.parameters(), lr=1e-6)
    g = torch.Generator().manual_seed(0)
    times = []
    for i in range(args.steps + 1):
        index = torch.randint(len(enc), (args.batch_size,), generator=g).tolist()
        _sync(torch, device)
        t0 = time.perf_counter()
        loss = align.bradley_terry_loss(*pair_scores(rm, enc, index))
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        _sync(torch, device)
        times.append(time.perf_counter() - t0)
    return {"part": "reward", "step_s": sum(times[1:]) / args.steps, "peak_mb": _peak(torch, device)}


PARTS = {"rollout": part_rollout, "ppo": part_ppo, "dpo": part_dpo, "reward": part_reward}


def side_by_side(args) -> None:
    """The quality comparison: the starting chat model, PPO with the KL penalty, PPO without it
    (reward hacking) and DPO on pairs sampled from the starting model, all judged on the same held-out
    DailyDialog prompts by the shipped reward model; with each method's training time and peak memory."""
    import torch

    import minigpt as mg
    from minigpt import align

    device = mg.pick_device() if args.device == "auto" else torch.device(args.device)
    start, tok = mg.pretrained.load("dailydialog-chat", device=device)
    rm = align.RewardModel.load("dailydialog-reward", device=device)
    train_prompts = align.dialogue_prompts("train", n=2000, tokenizer=tok, max_prompt_tokens=48)
    held_out = align.dialogue_prompts("test", n=args.held_out, tokenizer=tok, max_prompt_tokens=48)
    reports, costs = [], {}

    def report(model, name):
        r = align.evaluate_policy(model, start, rm, tok, held_out, name=name, max_new_tokens=args.new_tokens)
        r.extra = costs.get(name, {})
        reports.append(r)
        print(f"{name}: reward {r.reward:+.3f}, KL {r.mean_kl:.2f}", flush=True)

    report(start, "start (dailydialog-chat)")
    for name, coef in ((f"PPO (KL coef. {args.kl_coef:g})", args.kl_coef), ("PPO (KL coef. 0)", 0.0)):
        policy = copy.deepcopy(start)
        config = align.PPOConfig(max_iters=args.ppo_steps, batch_size=32, minibatch_size=16, ppo_epochs=4,
                                 learning_rate=1e-4, min_lr=1e-4, kl_coef=coef, max_new_tokens=args.new_tokens,
                                 progress=False, eval_interval=10 ** 6, device=str(device))
        trainer = align.PPOTrainer(policy, start, rm, tok, train_prompts, config)
        with align.peak_memory(device) as peak:
            t0 = time.perf_counter()
            trainer.fit()
            seconds = time.perf_counter() - t0
        costs[name] = {"train_s": seconds, "train_peak_mb": peak.mb}  # peak.mb is known once the block ends
        report(policy, name)
    name = "DPO (sampled pairs)"
    policy = copy.deepcopy(start)
    with align.peak_memory(device) as peak:
        t0 = time.perf_counter()
        train = align.sample_preference_pairs(start, rm, tok, train_prompts[:args.dpo_prompts], 4,
                                              max_new_tokens=args.new_tokens, seed=0)
        dev = align.sample_preference_pairs(start, rm, tok, train_prompts[-100:], 4, max_new_tokens=args.new_tokens,
                                            seed=1)
        config = align.DPOConfig(max_iters=args.dpo_steps, batch_size=16, learning_rate=1e-4, min_lr=1e-5,
                                 beta=0.1, eval_interval=50, progress=False, device=str(device))
        align.train_dpo(policy, start, tok, train, dev, config)
        seconds = time.perf_counter() - t0
    costs[name] = {"train_s": seconds, "train_peak_mb": peak.mb, "pairs": len(train)}
    report(policy, name)

    print(f"\n{len(held_out)} held-out DailyDialog prompts (test split), one sampled answer each (temperature 1, "
          f"up to {args.new_tokens} tokens), seed 0; reward model dailydialog-reward\n")
    print(align.side_by_side(reports))
    what = "GPU allocated" if device.type == "cuda" else "process RSS"
    print(f"\n| model | training time | training peak memory ({what}) |\n|---|---|---|")
    for r in reports[1:]:
        peak = r.extra["train_peak_mb"]
        print(f"| {r.name} | {r.extra['train_s']:.0f} s | {'-' if peak is None else f'{peak:,.0f} MB'} |")
    agree = align.ranking_agreement(reports[0].scores, [align.politeness(a) for a in reports[0].answers])
    test = align.evaluate_reward_model(rm, align.load_preference_pairs("test"))
    print(f"\nreward model: test-pair accuracy {test.accuracy:.3f}; on the starting model's own answers its "
          f"ranking agrees with the politeness word signal on {agree:.2f} of the pairs that signal separates")
    for i in range(args.examples):
        print(f"\nprompt: {align.prompt_text(held_out[i])!r}")
        for r in reports:
            print(f"  {r.name}: {r.answers[i]!r}  ({r.scores[i]:+.2f})")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="dailydialog-chat")
    p.add_argument("--device", default="auto")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--new-tokens", type=int, default=40)
    p.add_argument("--steps", type=int, default=3, help="timed steps per part (after one warm-up step)")
    p.add_argument("--repeats", type=int, default=3, help="timed rollouts (after one warm-up)")
    p.add_argument("--part", choices=PARTS, help="run one part in this process (the driver does this)")
    p.add_argument("--side-by-side", action="store_true",
                   help="instead of speed: train PPO (with and without the KL penalty) and DPO from dailydialog-chat "
                        "and compare them on held-out prompts")
    p.add_argument("--ppo-steps", type=int, default=40)
    p.add_argument("--kl-coef", type=float, default=0.2)
    p.add_argument("--dpo-steps", type=int, default=150)
    p.add_argument("--dpo-prompts", type=int, default=1000)
    p.add_argument("--held-out", type=int, default=128)
    p.add_argument("--examples", type=int, default=4)
    args = p.parse_args()
    if args.side_by_side:
        side_by_side(args)
        return
    if args.part:
        print(json.dumps(PARTS[args.part](args)))
        return
    results = {}
    for part in PARTS:
        cmd = [sys.executable, __file__, "--part", part] + [a for a in sys.argv[1:]]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            print(f"{part}: failed\n{done.stderr.strip().splitlines()[-1] if done.stderr.strip() else ''}")
            continue
        results[part] = json.loads(done.stdout.strip().splitlines()[-1])
        print(json.dumps(results[part]))
    print(f"\n{args.model}, batch {args.batch_size}, answers up to {args.new_tokens} tokens")
    if "rollout" in results:
        r = results["rollout"]
        print(f"rollout: {r['cached_tokens_per_s']:,.0f} answer tokens/s with the KV cache, "
              f"{r['recompute_tokens_per_s']:,.0f} recomputing "
              f"({r['cached_tokens_per_s'] / r['recompute_tokens_per_s']:.2f}x); "
              f"peak {r['peak_mb']:,.0f} MB")
    if "ppo" in results:
        r = results["ppo"]
        print(f"PPO step: {r['step_s']:.2f} s = rollout {r['rollout_s']:.2f} ({r['rollout_s'] / r['step_s']:.0%}) + "
              f"scoring {r['score_s']:.2f} ({r['score_s'] / r['step_s']:.0%}) + update {r['update_s']:.2f} "
              f"({r['update_s'] / r['step_s']:.0%}); answers {r['answer_length']:.1f} tokens; "
              f"peak {r['peak_mb']:,.0f} MB")
    for part, name in (("dpo", "DPO"), ("reward", "reward-model")):
        if part in results:
            r = results[part]
            print(f"{name} step ({args.batch_size} pairs): {r['step_s']:.3f} s; peak {r['peak_mb']:,.0f} MB")


if __name__ == "__main__":
    main()
