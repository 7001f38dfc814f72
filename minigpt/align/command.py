"""``python -m minigpt align --method reward|dpo|ppo ...``: the three alignment runs from the command line.

    python -m minigpt align --method reward --policy dailydialog-chat --out-dir runs/reward --export rm.pt
    python -m minigpt align --method dpo --policy dailydialog-chat --reward-model dailydialog-reward --pairs sampled
    python -m minigpt align --method ppo --policy dailydialog-chat --reward-model dailydialog-reward --kl-coef 0.1

Every run writes OUT_DIR/ckpt.pt atomically at each evaluation; ``--resume`` goes on from it.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import typing
from pathlib import Path

METHODS = ("reward", "dpo", "ppo")

_HELP = {
    "max_iters": "optimizer steps (PPO: rollout + update rounds)",
    "batch_size": "pairs (reward, dpo) or prompts (ppo) per step",
    "learning_rate": "peak learning rate",
    "min_lr": "learning rate at the end of the cosine decay",
    "warmup_iters": "steps of linear warm-up",
    "eval_interval": "evaluate on held-out data and save OUT_DIR/ckpt.pt every N steps",
    "out_dir": "folder for ckpt.pt (resumable); without it nothing is saved",
    "device": "auto (CUDA if present, else CPU), cpu, cuda, cuda:1",
    "dtype": "auto (bfloat16 autocast on CUDA), float32 or bfloat16",
    "beta": "DPO: strength of the implicit KL to the reference",
    "average_logprobs": "DPO: mean instead of sum of the answer's token log-probs",
    "kl_coef": "PPO: coefficient of the per-token KL penalty (0 = no leash: reward hacking)",
    "adaptive_kl": "PPO: adapt the KL coefficient towards --target-kl",
    "target_kl": "PPO: KL per answer (nats) that --adaptive-kl aims at",
    "ppo_epochs": "PPO: passes over each rollout batch",
    "minibatch_size": "PPO: answers per gradient step",
    "max_new_tokens": "PPO: longest answer in tokens",
    "temperature": "PPO: sampling temperature of the rollouts",
}


def _fields():
    """Every config field of the three methods once: name -> (type, {method: default})."""
    from .dpo import DPOConfig
    from .ppo import PPOConfig
    from .reward_model import RewardConfig

    out = {}
    for method, cls in zip(METHODS, (RewardConfig, DPOConfig, PPOConfig)):
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            kind = hints[f.name]
            args = [a for a in typing.get_args(kind) if a is not type(None)]
            out.setdefault(f.name, (args[-1] if args else kind, {}))[1][method] = f.default
    return out


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The align subcommand's flags: what to train, from what, and every config field (the default
    depends on the method; ``--help`` shows each method's)."""
    p.add_argument("--method", choices=METHODS, required=True,
                   help="reward: train a reward model on preference pairs; dpo: DPO on pairs; "
                        "ppo: PPO with a reward model")
    p.add_argument("--policy", default="dailydialog-chat", help="the chat model: a shipped name or a checkpoint "
                   "(default: %(default)s)")
    p.add_argument("--reward-model", default="dailydialog-reward",
                   help="ppo, and dpo with --pairs sampled: a reward model name or file (default: %(default)s)")
    p.add_argument("--pairs", choices=("given", "sampled"), default="sampled",
                   help="dpo: the preference data's pairs, or pairs sampled from the policy and ranked by the reward "
                        "model (default: %(default)s; see README)")
    p.add_argument("--prompts", choices=("dailydialog", "instructions"), default=None,
                   help="ppo / sampled dpo prompts: DailyDialog messages (default for the course's models) or "
                        "the preference data's instructions (default for other models)")
    p.add_argument("--n-prompts", type=int, default=4000, help="training prompts to draw from (default: %(default)s)")
    p.add_argument("--samples-per-prompt", type=int, default=4,
                   help="sampled dpo: answers per prompt (default: %(default)s)")
    p.add_argument("--resume", action="store_true", help="continue from OUT_DIR/ckpt.pt where it stopped")
    p.add_argument("--export", type=Path, help="write the trained model (weights, tokenizer, history) here")
    cfg = p.add_argument_group("training (defaults depend on --method)")
    for name, (kind, defaults) in _fields().items():
        flag = "--" + name.replace("_", "-")
        shown = ", ".join(f"{m} {d}" for m, d in defaults.items())
        help_ = f"{_HELP.get(name, name.replace('_', ' '))} (default: {shown})".replace("%", "%%")
        if kind is bool:
            cfg.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=help_)
        else:
            cfg.add_argument(flag, type=kind if kind in (int, float) else str, default=None, help=help_)


def _config(cls, args):
    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if getattr(args, f.name, None) is not None}
    return cls(**given)


def _load_policy(name_or_path):
    from .. import pretrained
    from ..checkpoint import load_model

    if name_or_path in pretrained.available():
        return pretrained.load(name_or_path)
    if not Path(name_or_path).exists():
        raise ValueError(f"--policy {name_or_path!r} is neither a shipped model ({', '.join(pretrained.available())}) "
                         f"nor a checkpoint file")
    model, tok = load_model(name_or_path)
    if tok is None:
        raise ValueError(f"{name_or_path} holds no tokenizer; the policy needs the one it was trained with")
    return model, tok


def _prompts(args, tokenizer, block_size: int, split: str, n: int):
    from .pairs import dialogue_prompts, load_preference_pairs, prompt_ids

    kind = args.prompts or ("dailydialog" if "<|assistant|>" in tokenizer.special_tokens else "instructions")
    limit = block_size // 2
    if kind == "dailydialog":
        return dialogue_prompts({"train": "train", "dev": "validation"}[split], n=n, tokenizer=tokenizer,
                                max_prompt_tokens=limit)
    pairs = load_preference_pairs(split)
    return [p.prompt for p in pairs if len(prompt_ids(tokenizer, p.prompt)) <= limit][:n]


def run(args) -> None:
    """What ``python -m minigpt align`` does."""
    from ..runtime import is_fast
    from .reward_model import RewardModel

    policy, tok = _load_policy(args.policy)
    block = policy.config.block_size
    if args.method == "reward":
        from .pairs import load_preference_pairs
        from .reward_model import RewardConfig, evaluate_reward_model, train_reward_model

        config = _config(RewardConfig, args)
        train, dev, test = (load_preference_pairs(s) for s in ("train", "dev", "test"))
        if is_fast():
            train, dev = train[:64], dev[:32]
        rm = RewardModel.from_policy(policy, tok)
        print(f"reward model on {args.policy}'s backbone ({rm.backbone.num_params():,} parameters): "
              f"{len(train)} training pairs, {len(dev)} dev pairs")
        history = train_reward_model(rm, train, dev, config, resume=args.resume)
        ev = evaluate_reward_model(rm, test)
        print(f"held-out test pairs: accuracy {ev.accuracy:.3f}, loss {ev.loss:.4f}, "
              f"chosen mean score {ev.chosen.mean():.3f}, rejected {ev.rejected.mean():.3f}")
        if args.export:
            rm.save(args.export, extra={"history": history, "align_config": config.to_dict(), "policy": args.policy,
                                        "test_accuracy": ev.accuracy, "test_loss": ev.loss})
            print(f"wrote {args.export}")
        return

    reference = copy.deepcopy(policy)
    if args.method == "dpo":
        from .dpo import DPOConfig, sample_preference_pairs, train_dpo
        from .pairs import load_preference_pairs

        config = _config(DPOConfig, args)
        if args.pairs == "given":
            train, dev = load_preference_pairs("train"), load_preference_pairs("dev")
            if is_fast():
                train, dev = train[:64], dev[:32]
        else:
            rm = RewardModel.load(args.reward_model)
            n = 64 if is_fast() else args.n_prompts
            print(f"sampling {args.samples_per_prompt} answers to each of {n} prompts, ranked by {args.reward_model}")
            train = sample_preference_pairs(policy, rm, tok, _prompts(args, tok, block, "train", n),
                                            args.samples_per_prompt, seed=config.seed)
            dev = sample_preference_pairs(policy, rm, tok, _prompts(args, tok, block, "dev", max(16, n // 10)),
                                          args.samples_per_prompt, seed=config.seed + 1)
            print(f"{len(train)} training pairs, {len(dev)} dev pairs")
        history = train_dpo(policy, reference, tok, train, dev, config, resume=args.resume)
        extra = {"history": history, "align_config": config.to_dict(), "method": "dpo", "pairs": args.pairs}
    else:
        from .ppo import PPOConfig, PPOTrainer

        config = _config(PPOConfig, args)
        rm = RewardModel.load(args.reward_model)
        n = 256 if is_fast() else args.n_prompts
        trainer = PPOTrainer(policy, reference, rm, tok, _prompts(args, tok, block, "train", n), config,
                             eval_prompts=_prompts(args, tok, block, "dev", config.eval_max_prompts))
        history = trainer.fit(resume=args.resume)
        last = {k: history[k][-1] for k in ("score", "kl", "answer_length") if history[k]}
        print("last step: " + ", ".join(f"{k} {v:.3f}" for k, v in last.items()))
        extra = {"history": history, "align_config": config.to_dict(), "method": "ppo"}
    if args.export:
        from ..checkpoint import export_weights
        export_weights(args.export, policy, tokenizer=tok, extra=extra)
        print(f"wrote {args.export}")
