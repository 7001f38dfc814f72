"""The third family: an encoder alone, trained as BERT was, by masked-language modelling.

    model = MaskedLM(MLMConfig(vocab_size=tok.vocab_size, pad_id=..., mask_id=...))
    inputs, labels = mask_tokens(ids, mask_id=..., vocab_size=...)   # 15% chosen: 80/10/10
    out = model(inputs, targets=labels)        # out.logits [B, T, V], out.loss over the chosen tokens
    fill_in(model, tok, "How ___ you?")        # top candidates for each blank, with probabilities

The encoder is the encoder–decoder's own: ``minigpt.seq2seq.EncoderBlock`` (bidirectional
self-attention with a padding mask, GPT's MLP and norms), not a copy; ``encoder_weights()``
hands its weights over under the encoder–decoder's names. What is new is the task. A GPT
predicts each next token from the ones before it; here 15% of the tokens are chosen and the
model predicts them from both sides. Of the chosen tokens 80% are replaced by ``<mask>``, 10% by
a random token and 10% left alone, so that the model cannot tell which visible tokens are to be
predicted and must keep a good picture of every token, not only of the masked ones. The loss is
taken only at the chosen positions (labels are -100 elsewhere).

The MLM head is BERT's: a dense layer, GELU and a norm, then scores against the token embedding
matrix (tied weights) plus a bias per token.

Training (characters of DailyDialog's dialogues, the seq2seq chatbots' tokenizer style, with
<pad> and <mask> added) goes through the package's Trainer, on random windows of the text:

    python -m minigpt.mlm --corpus dailydialog --max-iters 3000 --export minigpt/weights/mlm-en.pt

For its first few hundred steps the loss sits at the level of plain character frequencies: a
blank's own input is <mask>, so everything the model learns has to come through attention to
its neighbours, which starts out uniform; once the encoder finds the neighbours the loss falls.

Shapes: B batch, T sequence length, C n_embd, H n_head, V vocab_size.
"""

from __future__ import annotations

import argparse
import math
import re
from dataclasses import asdict, dataclass
from typing import Optional, Sequence

import torch
import torch.nn as nn
from torch.nn import functional as F

from .checks import check_int, check_number, from_dict, is_int
from .model import GPT, GPTConfig, make_norm
from .runtime import eval_mode
from .seq2seq import EncoderBlock, check_source

SPECIALS = ("<pad>", "<mask>")
BLANK = re.compile(r"\[MASK\]|<mask>|_")  # what marks a blank in fill_in: each one is one token


@dataclass
class MLMConfig:
    """Hyper-parameters of the masked language model (and the ids of <pad> and <mask>)."""

    vocab_size: int = 256
    block_size: int = 64     # longest input
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    dropout: float = 0.0
    bias: bool = True
    pad_id: int = 0
    mask_id: int = 1
    mask_rate: float = 0.15  # share of tokens chosen for prediction while training

    def __post_init__(self):
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
            check_int(getattr(self, name), f"MLMConfig.{name}", low=1)
        for name in ("pad_id", "mask_id"):
            value = getattr(self, name)
            if not is_int(value) or not 0 <= value < self.vocab_size:
                raise ValueError(f"MLMConfig.{name} must be a token id in [0, {self.vocab_size}), got {value!r}")
        if self.pad_id == self.mask_id:
            raise ValueError("MLMConfig.pad_id and mask_id must differ: <pad> is hidden from attention, <mask> is not")
        check_number(self.mask_rate, "MLMConfig.mask_rate", 0, 1, low_open=True, high_open=True)
        self.gpt_config()  # n_embd divisible by n_head, dropout in [0, 1): GPTConfig says so

    def gpt_config(self) -> GPTConfig:
        """The GPTConfig the shared pieces (the encoder blocks, norms) are built from."""
        return GPTConfig(vocab_size=self.vocab_size, block_size=self.block_size, n_layer=self.n_layer,
                         n_head=self.n_head, n_embd=self.n_embd, dropout=self.dropout, bias=self.bias)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "MLMConfig":
        return from_dict(cls, d)


@dataclass
class MLMOutput:
    """logits [B, T, V]; loss (mean cross-entropy over labels that are not -100) when targets were
    given; attentions: one [B, H, T, T] per layer with ``return_attention=True``."""

    logits: torch.Tensor
    loss: Optional[torch.Tensor] = None
    attentions: Optional[tuple] = None


class MaskedLM(nn.Module):
    """Token + position embeddings, the encoder–decoder's encoder blocks, a final norm, BERT's MLM head."""

    def __init__(self, config: MLMConfig):
        super().__init__()
        if not isinstance(config, MLMConfig):
            raise TypeError(f"MaskedLM takes an MLMConfig, got {type(config).__name__}")
        self.config = config
        g = config.gpt_config()
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.wpe = nn.Embedding(config.block_size, config.n_embd)
        self.drop = nn.Dropout(config.dropout)
        self.encoder = nn.ModuleList([EncoderBlock(g) for _ in range(config.n_layer)])
        self.ln_enc = make_norm(g)
        # BERT's head: transform each vector once more, then score it against every token's embedding
        self.head_dense = nn.Linear(config.n_embd, config.n_embd)
        self.head_act = nn.GELU(approximate="tanh")
        self.head_norm = make_norm(g)
        self.head_bias = nn.Parameter(torch.zeros(config.vocab_size))
        self.apply(GPT._init_weights)
        for name, p in self.named_parameters():  # GPT's 1/sqrt(number of residual additions)
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    @property
    def device(self) -> torch.device:
        return self.wte.weight.device

    def encode(self, idx, attention_mask=None, return_attention=False):
        """idx: [B, T] ids (a 1-D tensor or list is one sequence); attention_mask: [B, T] bool, True
        at real tokens (default idx != pad_id). Returns (hidden [B, T, C], attentions or None)."""
        c = self.config
        idx, attention_mask = check_source(idx, attention_mask, c.vocab_size, c.block_size, c.pad_id)
        idx, attention_mask = idx.to(self.device), attention_mask.to(self.device)
        mask = attention_mask[:, None, None, :]  # [B, 1, 1, T]: every token sees every real token
        x = self.drop(self.wte(idx) + self.wpe(torch.arange(idx.size(1), device=idx.device)))
        maps = []
        for block in self.encoder:
            x, att = block(x, mask, return_attention)
            maps.append(att)
        return self.ln_enc(x), tuple(maps) if return_attention else None

    def forward(self, idx, targets=None, attention_mask=None, return_attention=False) -> MLMOutput:
        """idx: [B, T] ids with some tokens masked; targets: [B, T] the original ids at the chosen
        positions, -100 elsewhere (``mask_tokens`` makes both). Returns an MLMOutput."""
        h, maps = self.encode(idx, attention_mask, return_attention)
        h = self.head_norm(self.head_act(self.head_dense(h)))
        logits = h @ self.wte.weight.T + self.head_bias  # [B, T, V], tied to the input embedding
        loss = None
        if targets is not None:
            if targets.shape != logits.shape[:2]:
                raise ValueError(f"targets must be shaped like the input {tuple(logits.shape[:2])}, got "
                                 f"{tuple(targets.shape)}")
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1).to(logits.device),
                                   ignore_index=-100)
        return MLMOutput(logits, loss, maps)

    def encoder_weights(self) -> dict:
        """The encoder's weights under ``minigpt.seq2seq.Seq2Seq``'s names (wte, wpe_src, encoder.*,
        ln_enc.*), e.g. to start an encoder–decoder from this encoder:
        ``seq2seq.load_state_dict(mlm.encoder_weights(), strict=False)`` (same sizes needed)."""
        rename = {"wpe.": "wpe_src."}
        return {next((new + k[len(old):] for old, new in rename.items() if k.startswith(old)), k): v
                for k, v in self.state_dict().items()
                if k.startswith(("wte.", "wpe.", "encoder.", "ln_enc."))}


# ------------------------------------------------------------------ masking


def mask_tokens(ids: torch.Tensor, mask_id: int, vocab_size: int, rate: float = 0.15,
                protected: Sequence[int] = (), generator: Optional[torch.Generator] = None):
    """BERT's masking: choose each token with probability ``rate`` (at least one per row), then
    replace 80% of the chosen by ``mask_id``, 10% by a random ordinary token, leave 10% alone.

    ids:       [B, T] long token ids. protected: ids never chosen nor drawn as random tokens
               (the special tokens: <pad>, <mask>, ...; mask_id always counts as protected).
    generator: for repeatable masks (the Trainer passes one).
    Returns (inputs [B, T]: ids with the replacements, labels [B, T]: the original id at the
    chosen positions, -100 elsewhere).
    """
    if not isinstance(ids, torch.Tensor) or ids.dim() != 2 or ids.dtype != torch.long:
        raise ValueError("ids must be a [batch, seq] tensor of torch.long token ids")
    check_number(rate, "rate", 0, 1, low_open=True, high_open=True)
    protected = torch.tensor(sorted({int(i) for i in protected} | {int(mask_id)}), dtype=torch.long)
    ordinary = torch.ones(vocab_size, dtype=torch.bool)
    ordinary[protected[protected < vocab_size]] = False
    ordinary = ordinary.nonzero().squeeze(1)
    if len(ordinary) == 0:
        raise ValueError("every token id is protected: nothing can be masked or drawn at random")
    device = ids.device
    draw = lambda: torch.rand(ids.shape, generator=generator).to(device)  # noqa: E731
    maskable = ~torch.isin(ids, protected.to(device))
    chosen = (draw() < rate) & maskable
    # a row with nothing chosen would teach nothing: choose one of its maskable tokens
    empty = ~chosen.any(1) & maskable.any(1)
    if empty.any():
        pick = (draw() * maskable).argmax(1)  # a random maskable position of each row
        chosen[empty, pick[empty]] = True
    labels = torch.where(chosen, ids, torch.full_like(ids, -100))
    r = draw()
    inputs = ids.clone()
    inputs[chosen & (r < 0.8)] = mask_id
    swap = chosen & (r >= 0.8) & (r < 0.9)
    random_ids = ordinary[torch.randint(len(ordinary), ids.shape, generator=generator)].to(device)
    inputs[swap] = random_ids[swap]
    return inputs, labels


class MLMData:
    """A token stream (e.g. dialogues as text) from which the Trainer draws masked windows.

    ids:       [N] token ids. mask_id, vocab_size, rate, protected: as ``mask_tokens``.
    Pass it as the Trainer's data with ``get_batch=MLMData.get_batch``: each batch is
    batch_size random windows of block_size tokens, masked afresh (inputs, labels).
    """

    def __init__(self, ids, mask_id: int, vocab_size: int, rate: float = 0.15, protected: Sequence[int] = ()):
        from .checks import as_ids
        self.ids = as_ids(ids, "ids").long()
        if len(self.ids) < 2:
            raise ValueError("MLMData needs a stream of at least 2 tokens")
        self.mask_id, self.vocab_size, self.rate, self.protected = mask_id, vocab_size, rate, tuple(protected)

    def __len__(self) -> int:
        return len(self.ids)

    @staticmethod
    def get_batch(data: "MLMData", batch_size: int, block_size: int, generator=None, device=None):
        """(inputs [B, T], labels [B, T]) for ``Trainer(get_batch=MLMData.get_batch)``, T = block_size
        (or the whole stream, when it is shorter)."""
        T = min(block_size, len(data.ids))
        starts = torch.randint(len(data.ids) - T + 1, (batch_size,), generator=generator)
        windows = torch.stack([data.ids[s:s + T] for s in starts.tolist()])
        x, y = mask_tokens(windows, data.mask_id, data.vocab_size, data.rate, data.protected, generator)
        return (x, y) if device is None else (x.to(device), y.to(device))


# ------------------------------------------------------------------ filling in the blanks


@dataclass
class FillIn:
    """What ``fill_in`` found.

    text:       the sentence as given. tokens: its token strings, each blank as "<mask>".
    positions:  the blanks' positions among the tokens.
    candidates: per blank, the top-k [(token string, id, probability)], most likely first.
    probs:      [n_blanks, V] the model's distribution at each blank (one pass, all blanks masked),
                over the ordinary tokens (special tokens such as <pad> and <mask> get 0).
    filled:     the sentence with every blank replaced by its most likely token (all at once).
    filled_in_order: blanks filled one at a time, the most confident first, each choice seen by
                the next pass (better for a run of blanks that make one word).
    """

    text: str
    tokens: list
    positions: list
    candidates: list
    probs: torch.Tensor
    filled: str
    filled_in_order: str


def blank_ids(tokenizer, text: str, mask_id: int) -> list[int]:
    """``text`` as ids with each blank (``_``, ``[MASK]`` or ``<mask>``) as ``mask_id``."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError("the sentence is empty: type a sentence with a blank, e.g. 'How ___ you?'")
    if not BLANK.search(text):
        raise ValueError(f"there is no blank in {text!r}: put _ (one per missing character) or [MASK] where "
                         f"a token is missing, e.g. 'How ___ you?'")
    ids, at = [], 0
    for m in BLANK.finditer(text):
        ids += tokenizer.encode(text[at:m.start()], allowed_special="none") if m.start() > at else []
        ids.append(mask_id)
        at = m.end()
    if at < len(text):
        ids += tokenizer.encode(text[at:], allowed_special="none")
    return ids


def _fillable(logits, never):
    """logits [n, V] as float, with the special tokens ruled out (no blank is a <pad> or a <mask>)."""
    logits = logits.float().clone()
    logits[:, [i for i in never if i < logits.size(1)]] = float("-inf")
    return logits


@torch.no_grad()
def fill_in(model: MaskedLM, tokenizer, text: str, k: int = 5) -> FillIn:
    """Predict every blank of ``text`` from both sides.

    model, tokenizer: a MaskedLM and its tokenizer (e.g. ``mg.pretrained.load("mlm-en")``).
    text:             a sentence with blanks: each ``_`` is one missing token (a character for a
                      character-level model, so ``___`` is three), and so is ``[MASK]`` or ``<mask>``.
    k:                candidates listed per blank.
    Returns a FillIn (candidates with probabilities; the top-k of a blank sum to at most 1).
    """
    if not isinstance(model, MaskedLM):
        raise ValueError(f"fill_in needs a MaskedLM, got {type(model).__name__}")
    c = model.config
    check_int(k, "k", low=1)
    k = min(k, c.vocab_size)
    ids = blank_ids(tokenizer, text, c.mask_id)
    if len(ids) > c.block_size:
        raise ValueError(f"the sentence is {len(ids)} tokens but the model reads at most {c.block_size}; shorten it")
    positions = [i for i, t in enumerate(ids) if t == c.mask_id]
    never = sorted({c.pad_id, c.mask_id, *getattr(tokenizer, "special_tokens", {}).values()})
    with eval_mode(model):
        probs = F.softmax(_fillable(model(torch.tensor([ids])).logits[0, positions], never), dim=-1).cpu()  # [n, V]
        filled = list(ids)
        for pos, p in zip(positions, probs):
            filled[pos] = int(p.argmax())
        in_order, left = list(ids), list(positions)
        while left:  # fill the blank the model is surest of, then look again
            p = F.softmax(_fillable(model(torch.tensor([in_order])).logits[0, left], never), dim=-1)
            best, token = divmod(int(p.argmax()), p.size(1))
            in_order[left.pop(best)] = token
    top = probs.topk(k, dim=-1)
    candidates = [[(tokenizer.token_str(int(i)), int(i), float(p)) for p, i in zip(ps, ix)]
                  for ps, ix in zip(top.values, top.indices)]
    return FillIn(text=text, tokens=[tokenizer.token_str(i) for i in ids], positions=positions,
                  candidates=candidates, probs=probs, filled=tokenizer.decode(filled),
                  filled_in_order=tokenizer.decode(in_order))


# ------------------------------------------------------------------ saving, loading, training


def save(path, model: MaskedLM, tokenizer, extra: Optional[dict] = None):
    """Write model, tokenizer and ``extra`` (e.g. the loss history) as a weights-only checkpoint."""
    from .checkpoint import export_weights
    return export_weights(path, model, tokenizer, extra={"model_type": "mlm", **(extra or {})})


def load(path, device=None):
    """(MaskedLM in eval mode, tokenizer) from a file written by ``save``."""
    from .checkpoint import CheckpointError, _strip_prefixes, load_checkpoint, resolve_path
    from .tokenizer import tokenizer_from_dict
    ckpt = load_checkpoint(path)
    if ckpt.get("extra", {}).get("model_type") != "mlm":
        raise CheckpointError(f"{resolve_path(path)} does not hold a masked language model; "
                              f"load a GPT with minigpt.checkpoint.load_model")
    try:
        model = MaskedLM(MLMConfig.from_dict(ckpt["model_config"]))
        model.load_state_dict(_strip_prefixes(ckpt["model"]))
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{resolve_path(path)}: the weights do not fit a MaskedLM: {e}") from e
    tokenizer = tokenizer_from_dict(ckpt["tokenizer"]) if ckpt.get("tokenizer") else None
    return model.to(device or "cpu").eval(), tokenizer


def mlm_text(corpus: str = "dailydialog", split: str = "train", limit: Optional[int] = None) -> str:
    """A corpus's dialogues as one text, a turn per line (the first ``limit`` dialogues)."""
    from .data import load_dialogues
    return "\n".join(t.strip() for d in load_dialogues(corpus, split)[:limit] for t in d if t.strip())


SPLITS = {"dailydialog": ("train", "validation"), "kdconv": ("dev", "test")}


def main(argv=None):
    from .runtime import is_fast
    from .tokenizer import CharTokenizer
    from .train import Trainer, TrainConfig
    p = argparse.ArgumentParser(description="Train a masked language model (BERT-style) on dialogue text.")
    p.add_argument("--corpus", default="dailydialog", choices=sorted(SPLITS))
    p.add_argument("--block-size", type=int, default=32)
    p.add_argument("--n-layer", type=int, default=2)
    p.add_argument("--n-head", type=int, default=4)
    p.add_argument("--n-embd", type=int, default=128)
    p.add_argument("--dropout", type=float, default=0.0)
    p.add_argument("--mask-rate", type=float, default=0.15)
    p.add_argument("--max-iters", type=int, default=3000)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--eval-interval", type=int, default=500)
    p.add_argument("--eval-iters", type=int, default=10)
    p.add_argument("--limit", type=int, default=None, help="only the first N dialogues of each split")
    p.add_argument("--out-dir", default=None)
    p.add_argument("--export", default=None, help="write the trained weights (and tokenizer) here")
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=1337)
    args = p.parse_args(argv)
    if is_fast():
        args.limit = min(args.limit or 200, 200)
        args.max_iters, args.eval_interval, args.eval_iters = min(args.max_iters, 30), 30, 4
    train_split, dev_split = SPLITS[args.corpus]
    train_text, dev_text = mlm_text(args.corpus, train_split, args.limit), mlm_text(args.corpus, dev_split, args.limit)
    tok = CharTokenizer.from_text(train_text + dev_text, special_tokens=SPECIALS)
    ids = tok.special_tokens
    cfg = MLMConfig(vocab_size=tok.vocab_size, block_size=args.block_size, n_layer=args.n_layer, n_head=args.n_head,
                    n_embd=args.n_embd, dropout=args.dropout, pad_id=ids["<pad>"], mask_id=ids["<mask>"],
                    mask_rate=args.mask_rate)
    model = MaskedLM(cfg)
    data = [MLMData(tok.encode(t, allowed_special="none"), cfg.mask_id, cfg.vocab_size, cfg.mask_rate, ids.values())
            for t in (train_text, dev_text)]
    print(f"masked LM: {model.num_params():,} parameters; {len(data[0]):,} training characters, "
          f"{len(data[1]):,} dev characters, {tok.vocab_size} tokens")
    tcfg = TrainConfig(max_iters=args.max_iters, batch_size=args.batch_size, block_size=args.block_size,
                       learning_rate=args.lr, min_lr=args.lr / 10, warmup_iters=min(100, args.max_iters // 10),
                       eval_interval=args.eval_interval, eval_iters=args.eval_iters, out_dir=args.out_dir,
                       device=args.device, seed=args.seed, progress=False)
    trainer = Trainer(model, data[0], data[1], tcfg, tokenizer=tok, get_batch=MLMData.get_batch)
    history = trainer.fit()
    val = history["val_loss"][-1]
    print(f"dev loss {val:.3f}, perplexity {math.exp(val):.2f} at the masked characters")
    for sentence in ("How are y__ today?", "I'd like a cup of ___.", "What time is it n__?"):
        if set(sentence.replace("_", "")) <= set(tok.stoi):
            f = fill_in(model, tok, sentence)
            print(f"{sentence!r} -> {f.filled_in_order!r}; first blank: "
                  + ", ".join(f"{t!r} {p:.0%}" for t, _, p in f.candidates[0][:3]))
    if args.export:
        save(args.export, model.cpu(), tok, extra={"history": history})
        print(f"wrote {args.export}")


if __name__ == "__main__":
    main()
