"""Train a question-answer chatbot: the Transformer encoder–decoder or the GRU baseline, on
DailyDialog or KdConv pairs, through the package's Trainer; print dev loss, perplexity and replies.

    python -m minigpt.seq2seq_train --model transformer --corpus dailydialog --max-iters 2000 --out-dir runs/qa-en
    python -m minigpt.seq2seq_train --model gru --attention general --corpus kdconv --teacher-forcing 0.5
    python -m minigpt.seq2seq_train ... --export minigpt/weights/qa-en.pt   # a file mg.pretrained.load reads

The tokens are characters (``--tokenizer char``, the default: right for Chinese, where a character
carries meaning) or byte-level BPE pieces learned from the training split (``--tokenizer bpe
--vocab-size 2048``: English words and word pieces, about 3 characters each, so a reply of 32 tokens
is a whole sentence), plus <pad>, <sos>, <eos> and <sep> (between context turns). After training it
answers dev questions and prints BLEU-2 and distinct-1/2 (greedy and beam). DailyDialog trains on "train" and is measured on "validation"; KdConv, which has
only dev and test, trains on "dev" and is measured on "test". MINIGPT_FAST=1 takes a small share.
"""

from __future__ import annotations

import argparse
import math
import shlex
import sys
import time

from .data import load_dialogues
from .dialogue_pairs import PairData, make_pairs
from .reply_metrics import bleu, distinct
from .rnn import GRUConfig, GRUSeq2Seq
from .runtime import is_fast
from .seq2seq import Seq2Seq, Seq2SeqConfig, beam_reply, export_seq2seq, greedy_reply
from .tokenizer import BPETokenizer, CharTokenizer
from .train import Trainer, TrainConfig

SPECIALS = ("<pad>", "<sos>", "<eos>", "<sep>")
SPLITS = {"dailydialog": ("train", "validation"), "kdconv": ("dev", "test")}


def qa_data(corpus: str, context_turns: int = 1, max_src_len: int = 96, max_tgt_len: int = 48, limit=None,
            tokenizer: str = "char", vocab_size: int = 2048):
    """(tokenizer, train PairData, dev PairData, dev pairs) for ``corpus`` ("dailydialog" or "kdconv");
    limit: use only the first N dialogues of each split. tokenizer: "char" (the characters of both
    splits, so every dev character has an id) or "bpe" (byte-level BPE with ``vocab_size`` ids, learned
    from the training split only: bytes cover any dev text)."""
    name = corpus.partition("-")[0]
    if name not in SPLITS:
        raise ValueError(f"unknown corpus {corpus!r}; use one of {sorted(SPLITS)} (or a KdConv domain, e.g. kdconv-film)")
    train_d, dev_d = (load_dialogues(corpus, s)[:limit] for s in SPLITS[name])
    if tokenizer == "char":
        tok = CharTokenizer.from_text("".join(t for d in train_d + dev_d for t in d), special_tokens=SPECIALS)
    elif tokenizer == "bpe":
        learned = BPETokenizer.train("\n".join(t for d in train_d for t in d), vocab_size, special_tokens=SPECIALS)
        # allowed_special="none": typed text never becomes <sep> or <eos>
        tok = BPETokenizer(learned.merges, SPECIALS, learned.pattern, allowed_special="none")
    else:
        raise ValueError(f"tokenizer must be 'char' or 'bpe', got {tokenizer!r}")
    ids = tok.special_tokens
    kw = dict(pad_id=ids["<pad>"], sos_id=ids["<sos>"], eos_id=ids["<eos>"], max_src_len=max_src_len,
              max_tgt_len=max_tgt_len, sep_ids=[ids["<sep>"]])
    train_pairs, dev_pairs = make_pairs(train_d, context_turns), make_pairs(dev_d, context_turns)
    return tok, PairData.from_pairs(train_pairs, tok, **kw), PairData.from_pairs(dev_pairs, tok, **kw), dev_pairs


def build_model(kind: str, tok, args):
    ids = tok.special_tokens
    common = dict(vocab_size=tok.vocab_size, block_size=args.max_tgt_len, pad_id=ids["<pad>"],
                  sos_id=ids["<sos>"], eos_id=ids["<eos>"], teacher_forcing_ratio=args.teacher_forcing,
                  dropout=args.dropout)
    if args.decoder_lr_scale is not None:
        common["decoder_lr_scale"] = args.decoder_lr_scale
    if kind == "transformer":
        return Seq2Seq(Seq2SeqConfig(**common, src_block_size=args.max_src_len, n_layer=args.n_layer,
                                     n_head=args.n_head, n_embd=args.n_embd))
    if kind == "gru":
        return GRUSeq2Seq(GRUConfig(**common, src_block_size=args.max_src_len, hidden_size=args.n_embd, n_layer=args.n_layer, attention=args.attention))
    raise ValueError(f"--model must be 'transformer' or 'gru', got {kind!r}")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="transformer", choices=("transformer", "gru"))
    p.add_argument("--corpus", default="dailydialog")
    p.add_argument("--tokenizer", default="char", choices=("char", "bpe"),
                   help="characters, or byte-level BPE learned from the training split")
    p.add_argument("--vocab-size", type=int, default=2048, help="the BPE vocabulary (with --tokenizer bpe)")
    p.add_argument("--context-turns", type=int, default=1)
    p.add_argument("--max-src-len", type=int, default=96)
    p.add_argument("--max-tgt-len", type=int, default=48)
    p.add_argument("--n-layer", type=int, default=2)
    p.add_argument("--n-head", type=int, default=4)
    p.add_argument("--n-embd", type=int, default=128)
    p.add_argument("--attention", default="general", help="the GRU's Luong score: dot, general, concat")
    p.add_argument("--dropout", type=float, default=0.1)
    p.add_argument("--teacher-forcing", type=float, default=1.0, help="teacher_forcing_ratio (1: always)")
    p.add_argument("--decoder-lr-scale", type=float, default=None,
                   help="the decoder's learning rate = --lr x this (default: the model's, 1 Transformer, 5 GRU)")
    p.add_argument("--max-iters", type=int, default=2000)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--eval-interval", type=int, default=250)
    p.add_argument("--eval-iters", type=int, default=20)
    p.add_argument("--reply-pairs", type=int, default=100, help="dev pairs answered for BLEU-2 and distinct-n")
    p.add_argument("--limit", type=int, default=None, help="only the first N dialogues of each split")
    p.add_argument("--out-dir", default=None)
    p.add_argument("--export", default=None, help="write the trained model, tokenizer and history here "
                   "(a weights file that minigpt.seq2seq.load_seq2seq and mg.pretrained.load read)")
    p.add_argument("--dtype", default="auto", choices=("auto", "float32", "bfloat16", "float16"),
                   help="training precision; auto: the Trainer's choice (on a CPU the Transformer stays in float32, "
                        "see Seq2Seq.cpu_bfloat16; the GRU uses bfloat16 where the CPU has bfloat16 units)")
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=1337)
    args = p.parse_args(argv)
    command = "python -m minigpt.seq2seq_train " + shlex.join(sys.argv[1:] if argv is None else argv)
    if is_fast():  # a quick look: few dialogues, few steps
        args.limit = min(args.limit or 200, 200)
        args.max_iters, args.eval_interval, args.eval_iters = min(args.max_iters, 30), 30, 4
        args.reply_pairs = min(args.reply_pairs, 5)
    try:  # a bad setting or missing data: one line that says what to change, not a stack trace
        tok, train, dev, dev_pairs = qa_data(args.corpus, args.context_turns, args.max_src_len, args.max_tgt_len,
                                             args.limit, args.tokenizer, args.vocab_size)
        model = build_model(args.model, tok, args)
    except (ValueError, OSError) as e:
        p.error(str(e))
    print(f"{args.model}: {model.num_params():,} parameters; {len(train):,} training pairs, {len(dev):,} dev pairs, "
          f"{tok.vocab_size} tokens")
    cfg = TrainConfig(max_iters=args.max_iters, batch_size=args.batch_size, block_size=args.max_tgt_len,
                      learning_rate=args.lr, min_lr=args.lr / 10, warmup_iters=min(100, args.max_iters // 10),
                      eval_interval=args.eval_interval, eval_iters=args.eval_iters, out_dir=args.out_dir,
                      device=args.device, dtype=args.dtype, seed=args.seed, progress=False)
    t0 = time.perf_counter()
    trainer = Trainer(model, train, dev, cfg, tokenizer=tok, get_batch=PairData.get_batch)
    history = trainer.fit()
    wall = time.perf_counter() - t0
    val = history["val_loss"][-1]
    print(f"dev loss {val:.3f}, perplexity {math.exp(val):.1f} (teacher forcing, per token); "
          f"{wall:.0f} s of training")
    ids = tok.special_tokens
    units = list if args.corpus.startswith("kdconv") else str.split  # Chinese: characters; English: words
    answered = {"greedy": [], "beam": []}
    for src, _ in dev.examples[:args.reply_pairs]:  # the dev questions as the encoder reads them
        answered["greedy"].append(tok.decode([i for i in greedy_reply(model, src, args.max_tgt_len) if i != ids["<eos>"]]))
        answered["beam"].append(beam_reply(model, tok, src, beam_width=4, max_new_tokens=args.max_tgt_len).text)
    truth = [reply for _, reply in dev_pairs[:args.reply_pairs]]
    metrics = {"dev_loss": val, "perplexity": math.exp(val), "train_seconds": wall, "parameters": model.num_params()}
    for how, replies in answered.items():
        scores = {"bleu2": bleu(truth, replies, 2, units), "distinct1": distinct(replies, 1, units),
                  "distinct2": distinct(replies, 2, units)}
        metrics.update({f"{how}_{k}": v for k, v in scores.items()})
        print(f"{how}: BLEU-2 {scores['bleu2']:.4f}, distinct-1 {scores['distinct1']:.3f}, "
              f"distinct-2 {scores['distinct2']:.3f} over {len(replies)} dev questions")
    for (context, reply), greedy, beam in list(zip(dev_pairs, answered["greedy"], answered["beam"]))[:5]:
        print(f"Q: {context[-1]}\n   true:   {reply}\n   greedy: {greedy}\n   beam:   {beam}")
    if args.export:
        export_seq2seq(args.export, trainer.raw_model, tok,
                       extra={"history": history, "train_config": cfg.to_dict(), "command": command,
                              "corpus": args.corpus, "splits": list(SPLITS[args.corpus.partition("-")[0]]),
                              "max_src_len": args.max_src_len, "context_turns": args.context_turns,
                              "metrics": metrics})
        print(f"wrote {args.export}")

if __name__ == "__main__":
    main()
