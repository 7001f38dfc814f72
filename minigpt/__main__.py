"""Command line: train, sample, chat with and export models.

    python -m minigpt train --data tinyshakespeare --out-dir runs/shakespeare
    python -m minigpt sample --checkpoint runs/shakespeare/ckpt.pt --prompt "ROMEO:"
    python -m minigpt sample --pretrained shakespeare-char --temperature 0.8 --top-p 0.9
    python -m minigpt chat --you ROMEO --them JULIET
    python -m minigpt chat --model smollm2-135m-instruct --system "You are a helpful assistant."
    python -m minigpt chat --model qa-en          # a question-answer chatbot (also qa-zh, gru-en, gru-zh)

Every option is explained by ``python -m minigpt <command> --help``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


# Help for the flags built from TrainConfig's and GPTConfig's fields (one flag per field, same name
# with dashes, same default). Fields missing here still get a flag, described by their name.
_HELP = {
    # the model (GPTConfig)
    "block_size": "context length in tokens",
    "n_layer": "number of decoder blocks",
    "n_head": "attention heads per block",
    "n_embd": "width of the residual stream",
    "dropout": "dropout probability",
    "bias": "biases in Linear layers and LayerNorms, as in GPT-2",
    "n_kv_head": "key-value heads; fewer than the attention heads is grouped-query attention (default: as many)",
    "norm": "layernorm or rmsnorm",
    "norm_eps": "added to the variance (or mean square) inside the norm",
    "positions": "learned or rope",
    "rope_base": "RoPE's base: the slowest rotation turns once in about 2 pi x this many positions",
    "mlp": "gelu or swiglu",
    "mlp_hidden": "width inside the MLP (default: 4 x the residual width)",
    "tie_weights": "the LM head reuses the token embedding matrix",
    # training (TrainConfig)
    "max_iters": "optimizer steps in total (a resumed run counts the steps already done)",
    "batch_size": "sequences per micro-batch (per process under torchrun)",
    "learning_rate": "peak learning rate, reached at the end of warm-up",
    "min_lr": "learning rate at the end of the cosine decay",
    "warmup_iters": "steps of linear warm-up from 0 to the peak learning rate",
    "lr_decay_iters": "step where the cosine reaches the minimum learning rate (default: the last step)",
    "weight_decay": "AdamW weight decay on matrices and embeddings, never on biases or norms",
    "beta1": "AdamW's beta1",
    "beta2": "AdamW's beta2",
    "grad_clip": "clip the global gradient norm to this; 0 turns clipping off",
    "grad_accum_steps": "micro-batches accumulated per step; effective batch = batch size x this",
    "eval_interval": "evaluate on train and validation splits every N steps",
    "eval_iters": "batches averaged per split at each evaluation",
    "log_interval": "refresh the progress bar figures every N steps",
    "checkpoint_interval": "save OUT_DIR/ckpt.pt every N steps (default: at every evaluation)",
    "out_dir": "folder for ckpt.pt; without it nothing is saved",
    "device": "auto (CUDA if present, else CPU), cpu, cuda, cuda:1, mps",
    "dtype": "autocast dtype; auto = bfloat16 on CUDA, float32 elsewhere",
    "compile": "torch.compile the model (worth it on CUDA)",
    "seed": "random seed",
    "progress": "a progress bar; without it, one log line per evaluation",
}
# Older spellings that keep working.
_ALIASES = {"learning_rate": ["--lr"], "grad_accum_steps": ["--grad-accum"]}


def add_config_flags(group, config_class, skip=(), choices=None) -> None:
    """One flag per field of the dataclass ``config_class`` (``--field-name``, the field's default
    and type), so that names and defaults are written once, in the config. A bool field that
    defaults to True becomes ``--no-field-name``; one that defaults to False, ``--field-name``."""
    import dataclasses
    import typing

    hints = typing.get_type_hints(config_class)
    for f in dataclasses.fields(config_class):
        if f.name in skip:
            continue
        default = f.default
        kind = hints[f.name]
        args = [a for a in typing.get_args(kind) if a is not type(None)]
        if args:  # Optional[int], str | Path ...: the last one converts the command line's string
            kind = args[-1]
        flag = "--" + f.name.replace("_", "-")
        help_text = _HELP.get(f.name, f"{config_class.__name__}.{f.name}")
        if kind is bool:
            if default:
                group.add_argument("--no-" + flag[2:], dest=f.name, action="store_false", help=f"turn off: {help_text}")
            else:
                group.add_argument(flag, dest=f.name, action="store_true", help=help_text)
            continue
        names = [flag, *_ALIASES.get(f.name, [])]
        extra = {"choices": choices[f.name]} if choices and f.name in choices else {}
        shown = "" if default is None else " (default: %(default)s)"
        group.add_argument(*names, dest=f.name, type=kind, default=default, help=help_text + shown, **extra)


def _add_train_args(p: argparse.ArgumentParser) -> None:
    from .model import GPTConfig
    from .train import _DTYPES, TrainConfig

    data = p.add_argument_group("data")
    src = data.add_mutually_exclusive_group()
    src.add_argument("--data", default="tinyshakespeare",
                     help="name of a registered corpus (see minigpt.data.CORPORA) (default: %(default)s)")
    src.add_argument("--text-file", type=Path, help="train on this UTF-8 text file instead of a named corpus")
    data.add_argument("--tokenizer", choices=("char", "bpe"), default="char",
                      help="characters, or byte-level BPE trained on the corpus (default: %(default)s)")
    data.add_argument("--vocab-size", type=int, default=512,
                      help="BPE vocabulary size, 256 bytes + merges + special tokens (default: %(default)s)")
    data.add_argument("--val-fraction", type=float, default=0.1,
                      help="last fraction of the corpus held out for validation (default: %(default)s)")
    add_config_flags(p.add_argument_group("model"), GPTConfig, skip={"vocab_size"})
    # TrainConfig.block_size (train on shorter windows than the model's) stays at None: the model's.
    add_config_flags(p.add_argument_group("training"), TrainConfig, skip={"block_size"},
                     choices={"dtype": ("auto", *_DTYPES)})
    run = p.add_argument_group("run")
    run.add_argument("--resume", action="store_true", help="continue from OUT_DIR/ckpt.pt exactly where it stopped")
    run.add_argument("--export", type=Path,
                     help="after training, write a small weights-only file here (model, tokenizer, history)")
    run.add_argument("--fast", action="store_true", help="tiny run for a smoke test (as MINIGPT_FAST=1): 2 layers, "
                     "32 wide, at most 30 steps on a slice of the corpus")


def _config_from_args(config_class, args, **overrides):
    """The ``config_class`` the flags describe (fields without a flag keep their defaults)."""
    import dataclasses

    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(config_class) if hasattr(args, f.name)}
    return config_class(**{**values, **overrides})


def _add_model_args(p: argparse.ArgumentParser) -> None:
    src = p.add_mutually_exclusive_group()
    src.add_argument("--checkpoint", type=Path, help="a ckpt.pt or exported weights file")
    src.add_argument("--pretrained", default=None,
                     help="name of a model shipped with minigpt (default: shakespeare-char)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or mps (default: %(default)s)")


def _add_sampling_args(p: argparse.ArgumentParser, max_new_tokens: int = 300) -> None:
    p.add_argument("--max-new-tokens", type=int, default=max_new_tokens,
                   help="tokens to generate (default: %(default)s)")
    p.add_argument("--temperature", type=float, default=0.8,
                   help="below 1 sharper, above 1 flatter; 0 = greedy (default: %(default)s)")
    p.add_argument("--top-k", type=int, default=None, help="sample only among the k most likely tokens")
    p.add_argument("--top-p", type=float, default=None,
                   help="sample only among the smallest set of tokens whose probability reaches p (nucleus)")
    p.add_argument("--repetition-penalty", type=float, default=1.0,
                   help="> 1 discourages tokens already in the text (default: %(default)s)")
    p.add_argument("--seed", type=int, default=None, help="random seed; the same seed gives the same text")


def _load_for_sampling(args):
    import torch

    from . import pretrained
    from .checkpoint import load_model
    from .runtime import pick_device

    device = pick_device() if args.device == "auto" else torch.device(args.device)
    if args.checkpoint is not None:
        model, tok = load_model(args.checkpoint, device=device)
        if tok is None:
            raise SystemExit(f"error: {args.checkpoint} holds no tokenizer, so its text cannot be decoded; "
                             f"train with `python -m minigpt train`, which stores it")
    else:
        model, tok = pretrained.load(args.pretrained or "shakespeare-char", device=device)
    return model.eval(), tok


def cmd_sample(args) -> None:
    from .beam import beam_search
    from .sampling import stream

    model, tok = _load_for_sampling(args)
    for i in range(args.num_samples):
        seed = None if args.seed is None else args.seed + i
        sys.stdout.write(args.prompt)
        if args.beam_width is not None:
            text = beam_search(model, tok, args.prompt, beam_width=args.beam_width,
                               max_new_tokens=args.max_new_tokens,
                               repetition_penalty=args.repetition_penalty, stop=args.stop).text
            sys.stdout.write(text)
        else:
            for piece in stream(model, tok, args.prompt, max_new_tokens=args.max_new_tokens,
                                temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
                                repetition_penalty=args.repetition_penalty, stop=args.stop, seed=seed):
                sys.stdout.write(piece)
                sys.stdout.flush()
        sys.stdout.write("\n" + ("-" * 40 + "\n" if i < args.num_samples - 1 else ""))


def cmd_chat(args) -> None:
    """A chat is the same next-token loop with a script around it: an opening text (the
    'system prompt'), then turns written as a play, 'YOU:\\n<your line>\\n\\nTHEM:\\n', and the
    model continues the script until it ends the speech with a blank line."""
    from .sampling import stream

    if args.model in _qa_models():
        return _chat_with_qa(args)
    if args.model:
        return _chat_with_model(args)
    model, tok = _load_for_sampling(args)
    transcript = args.system.replace("\\n", "\n")
    print(f"Chatting with {args.them} as {args.you}. An empty line or Ctrl-D ends the chat.")
    if model.config.block_size < 400:
        print(f"(the model reads only the last {model.config.block_size} tokens: it forgets what came earlier)")
    turn = 0
    while True:
        try:
            line = input(f"{args.you}: ").strip()
        except EOFError:
            print()
            break
        if not line:
            break
        prompt = f"{transcript}{args.you}:\n{line}\n\n{args.them}:\n"
        try:
            tok.encode(prompt)
        except ValueError as e:  # e.g. a character the model's tokenizer has never seen
            print(f"  ({e}) Try again.")
            continue
        sys.stdout.write(f"{args.them}: ")
        reply = []
        seed = None if args.seed is None else args.seed + turn
        for piece in stream(model, tok, prompt, max_new_tokens=args.max_new_tokens, temperature=args.temperature,
                            top_k=args.top_k, top_p=args.top_p, repetition_penalty=args.repetition_penalty,
                            stop=["\n\n"], seed=seed):
            if not reply:  # a speech may open with a blank line; don't print it
                piece = piece.lstrip("\n")
                if not piece:
                    continue
            reply.append(piece)
            sys.stdout.write(piece.replace("\n", "\n" + " " * (len(args.them) + 2)))
            sys.stdout.flush()
        sys.stdout.write("\n")
        transcript = prompt + "".join(reply).strip("\n") + "\n\n"
        turn += 1


_CHAT_HELP = ("Type a message and press Enter. /reset forgets the conversation, /system TEXT sets the "
              "system prompt (/system alone: the model's default), /top shows or hides each word's top "
              "alternatives, /quit or an empty line ends.")


def _show_alternatives(reply, n: int = 5) -> None:
    """Each token of the reply, its probability, and the model's own top n (before the knobs)."""
    for step in reply.steps:
        alternatives = ", ".join(f"{t!r} {p:.2f}" for t, _, p in step.raw_top[:n])
        print(f"    {step.token!r:>16} p={step.prob:.2f} | {alternatives}")


def _qa_models() -> list[str]:
    from .pretrained import PRETRAINED
    return [name for name, entry in PRETRAINED.items() if entry.kind == "seq2seq"]


def _chat_with_qa(args) -> None:
    """Questions and answers with a sequence-to-sequence chatbot (qa-en, qa-zh, gru-en, gru-zh): the
    encoder reads each line on its own (the models learned to answer one turn), the decoder writes
    the reply: greedy at --temperature 0, sampled above, beam search with --beam-width."""
    import torch

    from . import pretrained
    from .runtime import pick_device
    from .seq2seq import answer
    from .tokenizer import CharTokenizer

    device = pick_device() if args.device == "auto" else torch.device(args.device)
    model, tok = pretrained.load(args.model, device=device)
    n = min(args.max_new_tokens, model.config.block_size)
    how = f"beam search, {args.beam_width} beams" if (args.beam_width or 1) > 1 else (
        "greedy" if args.temperature == 0 else f"sampled at temperature {args.temperature}")
    print(f"Asking {args.model} ({type(model).__name__}, {model.num_params():,} parameters; replies {how}, at most "
          f"{n} {'characters' if isinstance(tok, CharTokenizer) else 'tokens'}). Each line is a question answered "
          f"on its own. An empty line or Ctrl-D ends.")
    turn = 0
    while True:
        try:
            line = input("you: ").strip()
        except EOFError:
            print()
            break
        if not line:
            break
        try:
            reply = answer(model, tok, line, beam_width=args.beam_width or 1, max_new_tokens=n,
                           temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
                           repetition_penalty=args.repetition_penalty,
                           seed=None if args.seed is None else args.seed + turn)
        except ValueError as e:  # e.g. a character the model has never seen
            print(f"  ({e}) Try again.")
            continue
        print(f"{args.model}: {reply}")
        turn += 1


def _chat_with_model(args) -> None:
    """A multi-turn chat with a real chat model (its chat template, its KV cache kept across turns)."""
    import torch

    from . import pretrained
    from .chat import Chat
    from .runtime import pick_device

    device = pick_device() if args.device == "auto" else torch.device(args.device)
    print(f"Loading {args.model} ...", flush=True)
    model, tok = pretrained.load(args.model, device=device)
    system = args.system.replace("\\n", "\n") or None
    window = model.config.block_size
    if args.max_new_tokens >= window:  # the reply must leave room in the window for the conversation
        args.max_new_tokens = window // 2
        print(f"({args.model} sees {window} tokens at once: replies are capped at {args.max_new_tokens} tokens)")
    chat = Chat(model, tok, system=system, max_new_tokens=args.max_new_tokens, temperature=args.temperature,
                top_k=args.top_k, top_p=args.top_p, repetition_penalty=args.repetition_penalty, seed=args.seed)
    show_top = args.top
    print(_CHAT_HELP)
    while True:
        try:
            line = input("you: ").strip()
        except EOFError:
            print()
            break
        if not line or line == "/quit":
            break
        if line == "/reset":
            chat.reset()
            print("  (conversation forgotten)")
            continue
        if line == "/system" or line.startswith("/system "):
            chat.set_system(line[len("/system"):].strip() or None)
            print(f"  (system prompt: {chat.system or chat.template.default_system or 'none'!r})")
            continue
        if line == "/top":
            show_top = not show_top
            print(f"  (top alternatives {'on' if show_top else 'off'})")
            if show_top and chat.last_reply is not None:
                _show_alternatives(chat.last_reply)
            continue
        try:
            sys.stdout.write("assistant: ")
            for piece in chat.stream(line):
                sys.stdout.write(piece)
                sys.stdout.flush()
        except ValueError as e:  # e.g. a message longer than the window
            print(f"\n  ({e})")
            continue
        reply = chat.last_reply
        sys.stdout.write("\n")
        if reply.dropped:
            print(f"  (the {reply.dropped} oldest messages no longer fit the window and were left out)")
        if reply.stopped == "max_new_tokens":
            print(f"  (stopped after {args.max_new_tokens} tokens; --max-new-tokens allows more)")
        if show_top:
            _show_alternatives(reply)


def cmd_train(args) -> None:
    import os

    import torch

    from . import data
    from .checkpoint import export_weights
    from .model import GPT, GPTConfig
    from .runtime import is_fast
    from .tokenizer import BPETokenizer, CharTokenizer
    from .train import Trainer, TrainConfig

    if args.fast:
        os.environ["MINIGPT_FAST"] = "1"
    if args.text_file is not None:
        if not args.text_file.is_file():
            raise SystemExit(f"error: --text-file {args.text_file} does not exist")
        text = args.text_file.read_text(encoding="utf-8")
    else:
        text = data.load_text(args.data)
    if is_fast():  # a smoke test: a slice of the corpus, a tiny model, a few steps
        text = text[:100_000]
        args.n_layer, args.n_head, args.n_embd, args.block_size = 2, 2, 32, min(args.block_size, 32)
        args.max_iters, args.eval_interval, args.eval_iters = min(args.max_iters, 30), 15, 2
        args.warmup_iters = min(args.warmup_iters, 5)
    if args.tokenizer == "char":
        tok = CharTokenizer.from_text(text)
    else:
        tok = BPETokenizer.train(text, vocab_size=args.vocab_size)
    ids = torch.tensor(tok.encode(text), dtype=torch.long)
    train_ids, val_ids = data.split(ids, val_fraction=args.val_fraction)
    config = _config_from_args(GPTConfig, args, vocab_size=tok.vocab_size)
    torch.manual_seed(args.seed)
    model = GPT(config)
    tc = _config_from_args(TrainConfig, args, block_size=None)
    trainer = Trainer(model, train_ids, val_ids, tc, tokenizer=tok)
    print(f"training {model.num_params():,} parameters on {len(train_ids):,} tokens "
          f"({tok.__class__.__name__}, vocab {tok.vocab_size}) on {trainer.device}")
    trainer.fit(resume=args.resume)
    if args.export is not None and trainer.is_main_process:
        export_weights(args.export, trainer.raw_model, tokenizer=tok,
                       extra={"history": trainer.history, "train_config": tc.to_dict()})
        print(f"wrote {args.export}")


def cmd_export(args) -> None:
    from .checkpoint import export_weights, load_checkpoint, load_model

    model, tok = load_model(args.checkpoint)
    extra = load_checkpoint(args.checkpoint).get("extra", {})
    export_weights(args.to, model, tokenizer=tok, extra={k: v for k, v in extra.items() if k in ("history", "train_config")})
    print(f"wrote {args.to}")


def cmd_finetune(args) -> None:
    import os

    from .sft import finetune_command

    if args.fast:
        os.environ["MINIGPT_FAST"] = "1"
    finetune_command(args.base, args.data, export=args.export, packing=not args.padding, max_iters=args.max_iters,
                     batch_size=args.batch_size, learning_rate=args.lr, min_lr=args.min_lr,
                     warmup_iters=args.warmup_iters, eval_interval=args.eval_interval, eval_iters=args.eval_iters,
                     out_dir=args.out_dir, device=args.device, seed=args.seed, progress=not args.no_progress,
                     resume=args.resume)


def cmd_align(args) -> None:
    from .align.command import run

    run(args)


def _add_finetune_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--base", default="dailydialog-base",
                   help="the base model: a shipped name or a checkpoint file (default: %(default)s)")
    p.add_argument("--data", default="dailydialog", choices=("dailydialog", "instruction-data", "kdconv"),
                   help="conversations to fine-tune on (default: %(default)s)")
    p.add_argument("--padding", action="store_true", help="one conversation per row, padded (default: packed rows)")
    p.add_argument("--max-iters", type=int, default=600, help="optimizer steps (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=16, help="rows per step (default: %(default)s)")
    p.add_argument("--lr", type=float, default=5e-4, help="peak learning rate, below pretraining's (default: %(default)s)")
    p.add_argument("--min-lr", type=float, default=5e-5, help="learning rate at the end (default: %(default)s)")
    p.add_argument("--warmup-iters", type=int, default=30, help="warm-up steps (default: %(default)s)")
    p.add_argument("--eval-interval", type=int, default=100, help="evaluate every N steps (default: %(default)s)")
    p.add_argument("--eval-iters", type=int, default=20, help="batches per evaluation (default: %(default)s)")
    p.add_argument("--out-dir", type=Path, help="folder for ckpt.pt; without it nothing is saved during training")
    p.add_argument("--resume", action="store_true", help="continue from OUT_DIR/ckpt.pt")
    p.add_argument("--export", type=Path, help="write the chat model here (model, tokenizer, history)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or mps (default: %(default)s)")
    p.add_argument("--seed", type=int, default=1337, help="random seed (default: %(default)s)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar, one log line per eval")
    p.add_argument("--fast", action="store_true", help="tiny run for a smoke test (as MINIGPT_FAST=1)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m minigpt", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="{train,finetune,sample,chat,export}")
    p = sub.add_parser("train", help="train a GPT on a corpus",
                       description="Train a GPT on a corpus, with checkpoints you can resume. "
                                   "Launch with `torchrun --nproc_per_node N -m minigpt train ...` for data parallel.")
    _add_train_args(p)
    p.set_defaults(func=cmd_train)
    p = sub.add_parser("sample", help="generate text from a checkpoint or a shipped model",
                       description="Generate text, token by token, from a trained model.")
    _add_model_args(p)
    p.add_argument("--prompt", default="\n", help="text to continue (default: a newline)")
    _add_sampling_args(p)
    p.add_argument("--beam-width", type=int, default=None,
                   help="use beam search with this many beams instead of sampling")
    p.add_argument("--stop", action="append", default=None, help="stop when this text appears (repeatable)")
    p.add_argument("--num-samples", type=int, default=1, help="how many samples to draw (default: %(default)s)")
    p.set_defaults(func=cmd_sample)
    p = sub.add_parser("chat", help="take turns with a model, written as the lines of a play",
                       description="Chat with a model: your lines and its replies become a script that the "
                                   "model continues, one next token at a time, until it ends its speech. "
                                   "The Shakespeare model answers in character, not with facts: it has "
                                   "learned plays, not conversation.")
    _add_model_args(p)
    p.add_argument("--you", default="ROMEO", help="the name your lines are spoken under (default: %(default)s)")
    p.add_argument("--them", default="JULIET", help="the name the model answers as (default: %(default)s)")
    p.add_argument("--system", default="",
                   help="opening text that sets the scene before the first turn, the 'system prompt' "
                        "(\\n for a new line; default: none, or with --model the model's own)")
    p.add_argument("--model", default=None,
                   help="chat with a real chat model in its own chat format instead, e.g. smollm2-135m-instruct; "
                        "or ask a question-answer chatbot: qa-en, qa-zh (encoder-decoder), gru-en, gru-zh (GRU) "
                        "(multi-turn, streaming; /reset, /system, /top)")
    p.add_argument("--top", action="store_true", help="with --model: show each reply word's top alternatives")
    p.add_argument("--beam-width", type=int, default=None,
                   help="with --model qa-en, qa-zh, gru-en or gru-zh: answer with beam search of this many beams")
    _add_sampling_args(p, max_new_tokens=200)
    p.set_defaults(func=cmd_chat)
    p = sub.add_parser("finetune", help="turn a base model into a chat model (supervised fine-tuning)",
                       description="Add the chat template's tokens to a base model and fine-tune it on "
                                   "conversations, with the loss on the assistant's tokens only.")
    _add_finetune_args(p)
    p.set_defaults(func=cmd_finetune)
    p = sub.add_parser("export", help="strip a training checkpoint down to a small weights file",
                       description="Write model, tokenizer and loss history, without optimizer state.")
    p.add_argument("--checkpoint", type=Path, required=True, help="the ckpt.pt to read")
    p.add_argument("--to", type=Path, required=True, help="the weights file to write")
    p.set_defaults(func=cmd_export)
    p = sub.add_parser("align", help="align a chat model: a reward model, DPO or PPO",
                       description="Train a reward model on preference pairs, or align a chat policy with DPO or "
                                   "PPO; OUT_DIR/ckpt.pt is written atomically and --resume goes on from it.")
    from .align.command import add_arguments as _add_align_args
    _add_align_args(p)
    p.set_defaults(func=cmd_align)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from .checkpoint import CheckpointError
    from .data import DataUnavailable
    from .train import TrainingDiverged

    try:
        args.func(args)
    except (ValueError, CheckpointError, DataUnavailable, TrainingDiverged, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
