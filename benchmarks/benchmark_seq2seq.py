"""Speed of the Transformer encoder–decoder (minigpt.seq2seq), not a test: prints figures and ratios.

1. Training tokens/s: our Seq2Seq against torch.nn.Transformer of the same size (same widths,
   layers, pre-norm, GELU, tied embedding and learned positions around it), both driven by the
   package's Trainer on the same batches. Tokens = question + reply tokens per step.
2. Decoding tokens/s of greedy replies: with the decoder's KV cache (cross-attention keys and
   values computed once) against recomputing the whole reply at every step.
3. For the comparison: training tokens/s of the GRU + Luong baseline (minigpt.rnn) with about as
   many parameters, through the same Trainer on the same batches (its decoder runs step by step).

    python benchmarks/benchmark_seq2seq.py                       # the defaults below
    python benchmarks/benchmark_seq2seq.py --n-embd 256 --steps 30 --device cuda

Runs alternate (ours, reference, ours, ...) and the best of each is kept, so a busy machine
penalises both alike.
"""

from __future__ import annotations

import argparse
import time
import warnings

import torch
import torch.nn as nn
from torch.nn import functional as F

import minigpt as mg
from minigpt.dialogue_pairs import PairData
from minigpt.rnn import GRUConfig, GRUSeq2Seq
from minigpt.seq2seq import Seq2Seq, Seq2SeqConfig, Seq2SeqOutput, greedy_reply


class TorchTransformer(nn.Module):
    """torch.nn.Transformer with the same embeddings, head and initialisation scale as Seq2Seq."""

    def __init__(self, config: Seq2SeqConfig):
        super().__init__()
        self.config, C = config, config.n_embd
        self.wte = nn.Embedding(config.vocab_size, C)
        self.wpe_src = nn.Embedding(config.src_block_size, C)
        self.wpe_tgt = nn.Embedding(config.block_size, C)
        with warnings.catch_warnings():  # "enable_nested_tensor ... norm_first": a note, not a problem
            warnings.simplefilter("ignore", UserWarning)
            self.transformer = nn.Transformer(
                d_model=C, nhead=config.n_head, num_encoder_layers=config.encoder_layers,
                num_decoder_layers=config.n_layer, dim_feedforward=4 * C, dropout=config.dropout,
                activation=lambda x: F.gelu(x, approximate="tanh"), batch_first=True, norm_first=True,
                bias=config.bias)
        self.lm_head = nn.Linear(C, config.vocab_size, bias=False)
        self.wte.weight = self.lm_head.weight
        nn.init.normal_(self.wte.weight, std=0.02)

    def forward(self, x, targets=None):
        S, T = x.src.size(1), x.tgt.size(1)
        src = self.wte(x.src) + self.wpe_src(torch.arange(S, device=x.src.device))
        tgt = self.wte(x.tgt) + self.wpe_tgt(torch.arange(T, device=x.tgt.device))
        causal = nn.Transformer.generate_square_subsequent_mask(T, device=tgt.device)
        pad = ~x.src_mask
        h = self.transformer(src, tgt, tgt_mask=causal, src_key_padding_mask=pad, memory_key_padding_mask=pad,
                             tgt_is_causal=True)
        logits = self.lm_head(h)
        loss = None if targets is None else F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=-100)
        return Seq2SeqOutput(logits, loss)


def pairs(n, src_len, tgt_len, vocab, seed=0):
    """n pairs of a fixed length (no padding: both models do the same work on every token)."""
    g = torch.Generator().manual_seed(seed)
    return PairData([(torch.randint(3, vocab, (src_len,), generator=g).tolist(),
                      [1] + torch.randint(3, vocab, (tgt_len,), generator=g).tolist()) for _ in range(n)], pad_id=0)


def train_speed(model, data, args) -> float:
    """Question + reply tokens per second over args.steps Trainer steps (after 3 warm-up steps)."""
    cfg = mg.TrainConfig(max_iters=3, batch_size=args.batch_size, eval_interval=10**6, eval_iters=1,
                         device=args.device, dtype=args.dtype, progress=False, warmup_iters=0, learning_rate=1e-4,
                         min_lr=1e-5)
    trainer = mg.Trainer(model, data, None, cfg, get_batch=PairData.get_batch)
    trainer.fit()
    trainer.config.max_iters = 3 + args.steps
    if trainer.device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    trainer.fit()
    if trainer.device.type == "cuda":
        torch.cuda.synchronize()
    return args.steps * args.batch_size * (args.src_len + args.tgt_len) / (time.perf_counter() - t0)


@torch.inference_mode()
def decode_speed(model, q, n_tokens, cached: bool) -> float:
    """Greedy tokens per second (eos never stops it: eos_id is an id the random model never picks first)."""
    t0 = time.perf_counter()
    if cached:
        out = greedy_reply(model, q, max_new_tokens=n_tokens)
    else:
        seq = torch.tensor([[model.config.sos_id]], device=model.device)
        for _ in range(n_tokens):
            nxt = model(q[None], seq).logits[:, -1].argmax(-1, keepdim=True)
            seq = torch.cat((seq, nxt), 1)
        out = seq[0, 1:].tolist()
    return len(out) / (time.perf_counter() - t0)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n-embd", type=int, default=128)
    p.add_argument("--n-head", type=int, default=4)
    p.add_argument("--n-layer", type=int, default=2)
    p.add_argument("--vocab", type=int, default=512)
    p.add_argument("--src-len", type=int, default=48)
    p.add_argument("--tgt-len", type=int, default=32)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="float32", choices=("float32", "bfloat16", "float16"),
                   help="the same precision for every model (float32: how the Trainer trains the "
                        "encoder-decoder on a CPU, see Seq2Seq.cpu_bfloat16)")
    args = p.parse_args()
    torch.manual_seed(0)
    cfg = Seq2SeqConfig(vocab_size=args.vocab, block_size=args.tgt_len + 1, src_block_size=args.src_len,
                        n_layer=args.n_layer, n_head=args.n_head, n_embd=args.n_embd)
    data = pairs(256, args.src_len, args.tgt_len, args.vocab)
    ours, ref = Seq2Seq(cfg), TorchTransformer(cfg)
    print(f"parameters: ours {ours.num_params():,}, torch.nn.Transformer {sum(q.numel() for q in ref.parameters()):,}")
    print(f"batch {args.batch_size} x ({args.src_len} question + {args.tgt_len} reply) tokens, "
          f"{args.steps} steps per run, {args.rounds} rounds, device {args.device}, {args.dtype}, "
          f"threads {torch.get_num_threads()}")
    best = {"ours": 0.0, "torch": 0.0}
    for r in range(args.rounds):
        for name, model in (("ours", ours), ("torch", ref)):
            best[name] = max(best[name], train_speed(model, data, args))
        print(f"  round {r + 1}: ours {best['ours']:,.0f} tok/s, torch.nn.Transformer {best['torch']:,.0f} tok/s (best so far)")
    print(f"training: ours {best['ours']:,.0f} tok/s, torch.nn.Transformer {best['torch']:,.0f} tok/s, "
          f"ratio {best['ours'] / best['torch']:.2f}x")

    # decoding: a model whose eos is never chosen, so every run makes n tokens
    dec_cfg = Seq2SeqConfig(**{**cfg.to_dict(), "block_size": 128})
    model = Seq2Seq(dec_cfg).to(args.device).eval()
    q = data.examples[0][0]
    q = torch.tensor(q, device=args.device)
    n = 127
    speeds = {c: max(decode_speed(model, q, n, c) for _ in range(args.rounds)) for c in (True, False)}
    print(f"greedy decoding of {n} tokens: cached {speeds[True]:,.0f} tok/s, recomputed {speeds[False]:,.0f} tok/s, "
          f"ratio {speeds[True] / speeds[False]:.2f}x")

    # the recurrent baseline, with the hidden size that brings it closest to ours in parameters
    def gru(hidden):
        return GRUSeq2Seq(GRUConfig(vocab_size=args.vocab, hidden_size=hidden, block_size=args.tgt_len + 1,
                                    src_block_size=args.src_len, attention="general"))
    hidden = min(range(16, 4 * args.n_embd + 1, 8), key=lambda h: abs(gru(h).num_params() - ours.num_params()))
    baseline = gru(hidden)
    rnn_speed = max(train_speed(baseline, data, args) for _ in range(args.rounds))
    print(f"GRU + Luong baseline (1 layer, hidden {hidden}, {baseline.num_params():,} parameters): {rnn_speed:,.0f} tok/s "
          f"in training; ours {best['ours'] / rnn_speed:.2f}x that")


if __name__ == "__main__":
    main()
