"""Real numbers for the animations, computed through ``minigpt`` from the shipped model.

(Named model_numbers, not numbers, so it never shadows the standard library module ``numbers``.)

A scene never types a probability or an attention weight: it asks this module, which runs the
shipped checkpoint (``mg.pretrained.load("shakespeare-char")``) and returns plain JSON-ready
dicts and lists. Results are cached on disk, so re-rendering a scene reruns no model and
retrains no tokenizer:

    ~/.cache/minigpt/animations/<function>-<key>.json

The key hashes the function's name and arguments, the sha256 of the weights file (so a
re-trained model refreshes every number), and the source of this file and of the minigpt
modules the function uses (so a fix to either refreshes them too).

Environment variables:
    MINIGPT_ANIMATION_WEIGHTS   render with another checkpoint file (default: the shipped one)
    MINIGPT_ANIMATION_CACHE     cache folder (default: $XDG_CACHE_HOME or ~/.cache, then minigpt/animations)
    MINIGPT_ANIMATION_NO_CACHE  set to 1 to recompute everything and write nothing

Every function returns lists and dicts of str / int / float only (tuples become lists).
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import math
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
try:
    import minigpt as mg
except ImportError:  # a checkout that was not pip-installed: use the package beside this folder
    sys.path.insert(0, str(REPO))
    import minigpt as mg
from minigpt.files import atomic_file, sha256_file

MODEL_NAME = "shakespeare-char"
CORPUS = "tinyshakespeare"


# ------------------------------------------------------------------ where the numbers come from


def weights_path() -> Path:
    """The checkpoint the animations read: $MINIGPT_ANIMATION_WEIGHTS, else the shipped one."""
    override = os.environ.get("MINIGPT_ANIMATION_WEIGHTS")
    if override:
        p = Path(override).expanduser()
        if not p.is_file():
            raise FileNotFoundError(f"MINIGPT_ANIMATION_WEIGHTS points to {p}, which is not a file; "
                                    f"unset it to use the shipped {MODEL_NAME!r} model")
        return p
    return mg.pretrained.path(MODEL_NAME)


@functools.lru_cache(maxsize=8)
def _sha_of(path: str, size: int, mtime_ns: int) -> str:  # size and mtime: a new file gets a new hash
    return sha256_file(Path(path))


def weights_sha256() -> str:
    """sha256 of the weights file the animations read."""
    p = weights_path()
    st = p.stat()
    return _sha_of(str(p), st.st_size, st.st_mtime_ns)


def provenance() -> str:
    """One line saying which model the numbers came from, for a corner of the frame."""
    return f"numbers from {weights_path().name} (sha256 {weights_sha256()[:8]})"


@functools.lru_cache(maxsize=2)
def _load(path: str, sha: str):
    import torch

    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    if os.environ.get("MINIGPT_ANIMATION_WEIGHTS"):
        return mg.checkpoint.load_model(path)
    return mg.pretrained.load(MODEL_NAME)


def model_and_tokenizer():
    """(GPT in eval mode on the CPU, its CharTokenizer): the model every scene shows."""
    p = weights_path()
    return _load(str(p), weights_sha256())


# ------------------------------------------------------------------ the disk cache


def cache_dir() -> Path:
    """Where cached numbers live."""
    if os.environ.get("MINIGPT_ANIMATION_CACHE"):
        return Path(os.environ["MINIGPT_ANIMATION_CACHE"]).expanduser()
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "minigpt" / "animations"


def _source_sha(*files) -> str:
    h = hashlib.sha256(Path(__file__).read_bytes())
    for f in files:
        h.update(Path(f).read_bytes())
    return h.hexdigest()


def _write_json_atomic(path: Path, obj) -> None:
    with atomic_file(path, "w", encoding="utf-8") as f:  # readers see the old file or the whole new one
        json.dump(obj, f, ensure_ascii=False)


def cached(uses_weights: bool = True, modules: tuple = ()):
    """Decorator: keep a function's JSON result on disk, keyed by its name and arguments, the
    weights' sha256 (when ``uses_weights``) and the source of this file, of the file that defines
    the function, and of ``modules`` (minigpt modules the result depends on). Other files of
    numbers (``numbers_extra.py``) use it too."""

    def wrap(fn):
        signature = inspect.signature(fn)

        @functools.wraps(fn)
        def inner(*args, **kwargs):
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            key = {"function": fn.__name__, "args": bound.arguments,
                   "weights": weights_sha256() if uses_weights else None,
                   "source": _source_sha(inspect.getsourcefile(fn), *[_module(m).__file__ for m in modules])}
            digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:20]
            path = cache_dir() / f"{fn.__module__}-{fn.__name__}-{digest}.json"
            use_cache = os.environ.get("MINIGPT_ANIMATION_NO_CACHE", "") in ("", "0")
            if use_cache and path.is_file():
                try:
                    return json.loads(path.read_text(encoding="utf-8"))
                except (OSError, ValueError):
                    pass  # unreadable or half-written by an old version: compute it again
            result = json.loads(json.dumps(fn(*args, **kwargs)))  # exactly what a cache hit returns
            if use_cache:
                try:
                    _write_json_atomic(path, result)
                except OSError:
                    pass  # a read-only home still renders, just without the cache
            return result

        inner.uncached = fn
        return inner

    return wrap


def _module(name: str):
    return getattr(mg, name)


def _floats(t, digits: int = 6):
    """A tensor (any shape) as nested lists of rounded floats (masked -inf stays None)."""
    values = t.detach().cpu().double().tolist()

    def r(v):
        if isinstance(v, list):
            return [r(x) for x in v]
        return round(v, digits) if math.isfinite(v) else None

    return r(values)


def _encode(text: str):
    import torch

    model, tok = model_and_tokenizer()
    ids = tok.encode(text)
    if not ids:
        raise ValueError("the text is empty; give at least one character")
    if len(ids) > model.config.block_size:
        raise ValueError(f"the text is {len(ids)} tokens long but the model sees at most "
                         f"{model.config.block_size}; use a shorter text")
    return model, tok, ids, torch.tensor([ids])


@cached()
def model_info() -> dict:
    """{"n_layer", "n_head", "n_embd", "block_size", "vocab_size", "params"} of the model the scenes show."""
    model, _ = model_and_tokenizer()
    return {**{k: getattr(model.config, k) for k in ("n_layer", "n_head", "n_embd", "block_size", "vocab_size")},
            "params": model.num_params()}


# ------------------------------------------------------------------ next-token probabilities


@cached(modules=("sampling",))
def next_token_probs(prompt: str, temperature: float = 1.0, k: int = 5) -> dict:
    """The k most likely next tokens after ``prompt`` at ``temperature``.

    Returns {"prompt", "temperature", "tokens": [str], "ids": [int], "probs": [float], "rest": float},
    tokens best first, ``rest`` the probability of every other token together.
    """
    model, tok = model_and_tokenizer()
    dist = mg.next_token_distribution(model, tok, prompt, temperature=temperature)
    top = dist.top(k, stage="after_temperature")
    probs = [p for _, _, p in top]
    return {"prompt": prompt, "temperature": temperature, "tokens": [s for s, _, _ in top],
            "ids": [i for _, i, _ in top], "probs": probs, "rest": max(0.0, 1.0 - sum(probs))}


@cached(modules=("sampling",))
def temperature_sweep(prompt: str, temperatures: list = (0.5, 1.0, 1.5), k: int = 5) -> dict:
    """The same k tokens (the most likely at temperature 1) at each temperature.

    Returns {"prompt", "tokens", "ids", "temperatures": [T], "probs": [[p per token] per T],
    "rest": [mass of all other tokens per T]}.
    """
    model, tok = model_and_tokenizer()
    base = mg.next_token_distribution(model, tok, prompt, temperature=1.0).top(k, stage="after_temperature")
    ids = [i for _, i, _ in base]
    probs, rest = [], []
    for t in temperatures:
        p = mg.next_token_distribution(model, tok, prompt, temperature=t).after_temperature
        row = [float(p[i]) for i in ids]
        probs.append(row)
        rest.append(max(0.0, 1.0 - sum(row)))
    return {"prompt": prompt, "tokens": [s for s, _, _ in base], "ids": ids, "temperatures": list(temperatures),
            "probs": probs, "rest": rest}


def _step_dict(step, k: int) -> dict:
    # the model's own probabilities ("raw"): at temperature 0 the final stage is one-hot, which
    # would hide what greedy decoding chose between
    top = step.distribution.top(k, stage="raw")
    ids = [i for _, i, _ in top]
    return {"tokens": [s for s, _, _ in top], "ids": ids, "probs": [p for _, _, p in top],
            "chosen": step.token, "chosen_id": step.token_id,
            "chosen_prob": float(step.distribution.raw[step.token_id]),
            "chosen_rank": ids.index(step.token_id) if step.token_id in ids else None}


@cached(modules=("sampling",))
def generation_steps(prompt: str, steps: int = 4, temperature: float = 1.0, k: int = 5, seed: int = 0) -> dict:
    """Sample ``steps`` tokens after ``prompt`` (as ``mg.generate`` with this seed would) and keep,
    for each step, the context, the k most likely tokens and the one that was drawn.

    Returns {"prompt", "temperature", "seed", "text" (the new text), "steps": [{"context",
    "tokens", "ids", "probs", "chosen", "chosen_id", "chosen_prob", "chosen_rank" (None when
    outside the top k)}]}.
    """
    model, tok = model_and_tokenizer()
    trace = mg.sampling.trace_generation(model, tok, prompt, max_new_tokens=steps, temperature=temperature,
                                         seed=seed)
    out, context = [], prompt
    for step in trace:
        d = _step_dict(step, k)
        d["context"] = context
        context += tok.decode([step.token_id])
        out.append(d)
    return {"prompt": prompt, "temperature": temperature, "seed": seed, "text": context[len(prompt):],
            "steps": out}


# ------------------------------------------------------------------ embeddings and attention


@cached(modules=("model",))
def embeddings(text: str) -> dict:
    """Token and position embeddings of ``text`` and their sum (the input of block 0).

    Returns {"tokens": [str], "ids": [int], "n_embd", "vocab_size", "block_size",
    "wte": [T][C] (row ids[t] of the token table), "wpe": [T][C] (row t of the position table),
    "sum": [T][C]}.
    """
    import torch

    model, tok, ids, idx = _encode(text)
    with torch.no_grad():
        wte = model.transformer.wte.weight[ids]
        wpe = model.transformer.wpe.weight[: len(ids)]
        x = model(idx, return_hidden_states=True).hidden_states[0][0]
    if not torch.allclose(wte + wpe, x, atol=1e-5):
        raise RuntimeError("token + position embeddings do not equal the model's first hidden state")
    c = model.config
    return {"tokens": [tok.token_str(i) for i in ids], "ids": ids, "n_embd": c.n_embd, "vocab_size": c.vocab_size,
            "block_size": c.block_size, "wte": _floats(wte), "wpe": _floats(wpe), "sum": _floats(x)}


@cached(modules=("model",))
def embedding_table(which: str = "wte") -> dict:
    """A whole embedding table: "wte" (token embeddings, [vocab_size][n_embd]) or "wpe" (position
    embeddings, [block_size][n_embd]). Returns {"which", "rows": [[float]], "tokens" (wte: each
    row's token, printable; wpe: the positions as strings)}."""
    model, tok = model_and_tokenizer()
    if which not in ("wte", "wpe"):
        raise ValueError(f"which must be 'wte' (token embeddings) or 'wpe' (position embeddings), got {which!r}")
    table = getattr(model.transformer, which).weight
    names = [tok.token_str(i) for i in range(table.size(0))] if which == "wte" else [str(i) for i in range(table.size(0))]
    return {"which": which, "rows": _floats(table, 4), "tokens": names}


@cached(modules=("model",))
def all_attention(text: str) -> dict:
    """Every attention map of ``text``: {"tokens", "ids", "n_layer", "n_head",
    "weights": [layer][head][query][key]} (a query's weights over keys sum to 1; future keys are 0)."""
    import torch

    model, tok, ids, idx = _encode(text)
    with torch.no_grad():
        att = model(idx, return_attention=True).attentions
    return {"tokens": [tok.token_str(i) for i in ids], "ids": ids, "n_layer": len(att), "n_head": att[0].size(1),
            "weights": [_floats(a[0], 5) for a in att]}


def attention(text: str, layer: int, head: int) -> dict:
    """One head's attention map: {"tokens", "ids", "layer", "head", "weights": [query][key]}."""
    a = all_attention(text)
    if not (0 <= layer < a["n_layer"] and 0 <= head < a["n_head"]):
        raise ValueError(f"layer must be in 0..{a['n_layer'] - 1} and head in 0..{a['n_head'] - 1}, "
                         f"got layer={layer}, head={head}")
    return {"tokens": a["tokens"], "ids": a["ids"], "layer": layer, "head": head, "weights": a["weights"][layer][head]}


@cached(modules=("model",))
def qkv_for(text: str, layer: int, head: int, query_pos: int = -1) -> dict:
    """One attention step by hand, for one query position of one head.

    x = ln_1(hidden state entering ``layer``); q, k, v = x @ W_q, W_k, W_v (this head's slice);
    scores_j = q · k_j for every key j <= query; scaled = scores / sqrt(d_head);
    weights = softmax(scaled); output = sum_j weights_j v_j.
    Checked against the model's own attention map (RuntimeError if they differ).

    Returns {"tokens", "ids", "layer", "head", "query_pos", "d_head", "x" [T'][C], "q" [D],
    "k" [T'][D], "v" [T'][D], "scores" [T'], "scaled" [T'], "weights" [T'], "output" [D]},
    with T' = query_pos + 1 (the keys the query may see).
    """
    import torch
    import torch.nn.functional as F

    model, tok, ids, idx = _encode(text)
    T, L, H = len(ids), model.config.n_layer, model.config.n_head
    if not (0 <= layer < L and 0 <= head < H):
        raise ValueError(f"layer must be in 0..{L - 1} and head in 0..{H - 1}, got layer={layer}, head={head}")
    if not -T <= query_pos < T:
        raise ValueError(f"query_pos {query_pos} is outside the text's {T} tokens")
    i = query_pos % T
    with torch.no_grad():
        out = model(idx, return_attention=True, return_hidden_states=True)
        block = model.transformer.h[layer]
        x = block.ln_1(out.hidden_states[layer][0])  # [T, C]
        C = x.size(-1)
        D = C // H
        q, k, v = block.attn.c_attn(x).split(C, dim=-1)
        sl = slice(head * D, (head + 1) * D)
        q, k, v = q[i, sl], k[: i + 1, sl], v[: i + 1, sl]  # [D], [i+1, D], [i+1, D]
        scores = k @ q
        scaled = scores / math.sqrt(D)
        weights = F.softmax(scaled, dim=-1)
        output = weights @ v
        theirs = out.attentions[layer][0, head, i, : i + 1]
    if not torch.allclose(weights, theirs, atol=1e-5):
        raise RuntimeError("the hand-computed attention weights differ from the model's attention map")
    return {"tokens": [tok.token_str(t) for t in ids], "ids": ids, "layer": layer, "head": head, "query_pos": i,
            "d_head": D, "x": _floats(x[: i + 1]), "q": _floats(q), "k": _floats(k), "v": _floats(v),
            "scores": _floats(scores), "scaled": _floats(scaled), "weights": _floats(weights),
            "output": _floats(output)}


# ------------------------------------------------------------------ tokenization


def utf8_bytes(text: str) -> list:
    """Each character of ``text`` with its UTF-8 bytes: [{"char", "bytes": [int], "hex": ["E4", ...]}]."""
    return [{"char": c, "bytes": list(c.encode("utf-8")), "hex": [f"{b:02X}" for b in c.encode("utf-8")]}
            for c in text]


@functools.lru_cache(maxsize=4)
def _bpe_from_cache(vocab_size: int, train_chars: int):
    return mg.tokenizer.tokenizer_from_dict(_bpe_dict(vocab_size, train_chars))


@cached(uses_weights=False, modules=("tokenizer", "data"))
def _bpe_dict(vocab_size: int, train_chars: int) -> dict:
    text = mg.data.load_text(CORPUS)[:train_chars]
    return mg.BPETokenizer.train(text, vocab_size=vocab_size).to_dict()


def bpe_tokenizer(vocab_size: int = 512, train_chars: int = 1_000_000):
    """A byte-level ``mg.BPETokenizer`` trained on the first ``train_chars`` characters of Tiny
    Shakespeare (trained once, then loaded from the cache)."""
    return _bpe_from_cache(vocab_size, train_chars)


@cached(uses_weights=False, modules=("tokenizer", "data"))
def bpe_merges(sentence: str, vocab_size: int = 512, train_chars: int = 1_000_000, n: int = 0) -> dict:
    """Encode ``sentence`` with a BPE learned on Tiny Shakespeare, one merge at a time.

    The sentence is cut into chunks (the tokenizer's split pattern), each chunk into its UTF-8
    bytes; then, as the encoder does, the earliest-learned merge that applies anywhere is
    applied everywhere, again and again. ``n`` > 0 keeps only the first n steps.

    Returns {"sentence", "chunks": [str], "vocab_size", "num_merges" (learned),
    "start": {"tokens": [[str] per chunk], "ids": [[int] per chunk]},
    "steps": [{"pair": [a, b], "pair_tokens": [str, str], "new_id", "token", "rank" (learning
    order, 0 = first), "tokens", "ids"}], "final_ids" (= tokenizer.encode(sentence)), "final_tokens",
    "final_lengths" (bytes per final token)}.
    """
    from minigpt.tokenizer import merge_pair

    tok = bpe_tokenizer(vocab_size, train_chars)
    chunks = tok.split(sentence)
    ids = [list(c.encode("utf-8")) for c in chunks]
    ranks = dict(tok.merges)  # (a, b) -> new id, smaller = learned earlier

    def strs(rows):
        return [[tok.token_str(i) for i in row] for row in rows]

    start = {"tokens": strs(ids), "ids": [list(r) for r in ids]}
    steps = []
    while True:
        present = {p for row in ids for p in zip(row, row[1:]) if p in ranks}
        if not present:
            break
        pair = min(present, key=ranks.get)
        new_id = ranks[pair]
        ids = [merge_pair(row, pair, new_id) for row in ids]
        steps.append({"pair": list(pair), "pair_tokens": [tok.token_str(pair[0]), tok.token_str(pair[1])],
                      "new_id": new_id, "token": tok.token_str(new_id), "rank": new_id - 256,
                      "tokens": strs(ids), "ids": [list(r) for r in ids]})
    final = [i for row in ids for i in row]
    if final != tok.encode(sentence):
        raise RuntimeError("merging step by step did not reproduce BPETokenizer.encode")
    return {"sentence": sentence, "chunks": chunks, "vocab_size": tok.vocab_size, "num_merges": len(tok.merges),
            "start": start, "steps": steps[:n] if n > 0 else steps, "final_ids": final,
            "final_tokens": [tok.token_str(i) for i in final], "final_lengths": [len(tok.vocab[i]) for i in final]}


@cached(modules=("tokenizer",))
def char_ids(text: str) -> dict:
    """``text`` through the shipped model's character tokenizer: {"tokens": [str], "ids": [int], "vocab_size"}."""
    _, tok = model_and_tokenizer()
    ids = tok.encode(text)
    return {"tokens": [tok.token_str(i) for i in ids], "ids": ids, "vocab_size": tok.vocab_size}


# ------------------------------------------------------------------ training and decoding


@cached()
def loss_curve(max_points: int = 400) -> dict:
    """The shipped model's recorded training history (``mg.pretrained.training_history``),
    the per-step curves thinned to at most ``max_points`` points.

    Returns {"iter", "loss", "lr", "eval_iter", "val_loss", "train_eval_loss"} (lists; missing keys empty).
    """
    if os.environ.get("MINIGPT_ANIMATION_WEIGHTS"):
        hist = mg.load_checkpoint(weights_path()).get("extra", {}).get("history", {})
    else:
        hist = mg.pretrained.training_history(MODEL_NAME)
    n = len(hist.get("iter", []))
    every = max(1, math.ceil(n / max_points))
    keep = list(range(0, n, every)) + ([n - 1] if n and (n - 1) % every else [])

    def thin(name):
        values = list(hist.get(name, []))
        return [float(values[i]) for i in keep] if len(values) == n else [float(v) for v in values]

    return {"iter": [int(hist["iter"][i]) for i in keep] if n else [], "loss": thin("loss"), "lr": thin("lr"),
            "eval_iter": [int(v) for v in hist.get("eval_iter", [])],
            "val_loss": [float(v) for v in hist.get("val_loss", [])],
            "train_eval_loss": [float(v) for v in hist.get("train_eval_loss", [])]}


