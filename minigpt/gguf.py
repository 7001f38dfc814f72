"""Reading a GGUF file: the format llama.cpp uses to ship a model in one file.

A GGUF file holds three things, and this module reads each with the ``gguf`` package:

    metadata   key -> value: the architecture (``llama.block_count`` ...), the tokenizer
               (``tokenizer.ggml.tokens``, ``.merges``, special token ids) and the chat template
    tensors    name -> shape, type and bytes; big matrices are *quantised*: stored in blocks of
               32 numbers that share a scale (and an offset), 4 or 8 bits per number
    alignment  padding, so the tensor bytes can be memory-mapped

    gg = mg.gguf.read("SmolLM2-135M-Instruct.Q4_1.gguf")
    gg.metadata["llama.attention.head_count"]          # 9
    w = gg.tensor("blk.0.attn_q.weight")                # float32 [576, 576], dequantised
    model = mg.gguf.load_model(gg)                      # a minigpt GPT with these weights

Dequantisation, block by block (one block = 32 weights):
    Q8_0: a float16 scale d and 32 int8 q:                     w = d * q
    Q4_1: a float16 scale d, a float16 minimum m, 32 4-bit q:  w = d * q + m
``dequantize_q4_1_block`` spells one block out by hand; ``tensor`` uses the library's vectorised
``gguf.quants.dequantize`` for whole matrices (tests hold the two equal).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .model import GPT, GPTConfig
from .tokenizer import BPETokenizer

SUPPORTED_TYPES = ("F32", "F16", "Q8_0", "Q4_1")


class GGUFError(ValueError):
    """A GGUF file that cannot be used: unreadable, another architecture, or an unsupported type."""


def _gguf():
    try:
        import gguf
    except ImportError as e:
        raise ImportError("reading GGUF files needs the gguf package: pip install gguf") from e
    return gguf


@dataclass
class GGUFFile:
    """An opened GGUF file: metadata (key -> value), and its tensors by name, read on demand.

    ``tensor_types`` maps each tensor name to its type ("Q4_1", "F32", ...) and ``tensor_shapes``
    to its shape as torch sees it ([rows, columns], e.g. [out_features, in_features]).
    """

    path: Path
    metadata: dict
    tensor_types: dict
    tensor_shapes: dict
    _reader: object = field(repr=False, default=None)

    def raw(self, name: str):
        """The tensor's stored bytes or numbers: a numpy array as in the file ([rows, bytes per
        row] for quantised types)."""
        return self._tensor_info(name).data

    def _tensor_info(self, name):
        for t in self._reader.tensors:
            if t.name == name:
                return t
        raise GGUFError(f"{self.path.name} has no tensor {name!r}; it has e.g. {list(self.tensor_types)[:4]}")

    def tensor(self, name: str) -> torch.Tensor:
        """Tensor ``name`` as float32, dequantised: shape ``tensor_shapes[name]``."""
        gguf = _gguf()
        info = self._tensor_info(name)
        kind = info.tensor_type.name
        if kind not in SUPPORTED_TYPES:
            raise GGUFError(f"tensor {name!r} of {self.path.name} is stored as {kind}, which minigpt does "
                            f"not dequantise; supported types: {', '.join(SUPPORTED_TYPES)}. Use a GGUF file "
                            f"quantised to one of those (e.g. Q8_0 or Q4_1).")
        values = gguf.quants.dequantize(info.data, info.tensor_type)
        values = np.require(values, np.float32, ["C_CONTIGUOUS", "WRITEABLE"])  # F32 comes as a read-only view
        return torch.from_numpy(values).reshape(self.tensor_shapes[name])


def read(path) -> GGUFFile:
    """Open a GGUF file (memory-mapped; tensors are read when asked for).

    Raises FileNotFoundError (no such file) or GGUFError (not a readable GGUF file).
    """
    gguf = _gguf()
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"no GGUF file at {path}")
    try:
        reader = gguf.GGUFReader(path)
        metadata = {}
        for key, f in reader.fields.items():
            if key.startswith("GGUF."):
                continue  # the header (version, counts), not metadata
            value = f.contents()
            metadata[key] = value
    except Exception as e:  # truncated or not GGUF: the reader fails in many ways
        raise GGUFError(f"{path} is not a readable GGUF file ({type(e).__name__}: {e}); it may be "
                        f"truncated or damaged: download it again and check its sha256") from e
    types = {t.name: t.tensor_type.name for t in reader.tensors}
    # GGUF lists dimensions fastest-first ([in, out]); torch's order is the reverse
    shapes = {t.name: tuple(int(d) for d in reversed(t.shape.tolist())) for t in reader.tensors}
    return GGUFFile(path, metadata, types, shapes, reader)


# ------------------------------------------------------------------ one block by hand

def dequantize_q4_1_block(block: bytes) -> np.ndarray:
    """One Q4_1 block (20 bytes) -> its 32 float32 weights.

    Layout: d (float16 scale), m (float16 minimum), then 16 bytes holding 32 unsigned 4-bit
    numbers q in 0..15: byte j holds weight j in its low nibble and weight j + 16 in its high
    nibble. Each weight is w = d * q + m: 16 evenly spaced levels from m to m + 15 d.
    """
    if len(block) != 20:
        raise ValueError(f"a Q4_1 block is 20 bytes (2 + 2 + 16), got {len(block)}")
    d = np.frombuffer(block[0:2], dtype=np.float16)[0].astype(np.float32)
    m = np.frombuffer(block[2:4], dtype=np.float16)[0].astype(np.float32)
    packed = np.frombuffer(block[4:20], dtype=np.uint8)
    q = np.concatenate([packed & 0x0F, packed >> 4]).astype(np.float32)  # low nibbles first
    return d * q + m


def dequantize_q8_0_block(block: bytes) -> np.ndarray:
    """One Q8_0 block (34 bytes) -> 32 float32 weights: d (float16), then 32 int8 q; w = d * q."""
    if len(block) != 34:
        raise ValueError(f"a Q8_0 block is 34 bytes (2 + 32), got {len(block)}")
    d = np.frombuffer(block[0:2], dtype=np.float16)[0].astype(np.float32)
    return d * np.frombuffer(block[2:34], dtype=np.int8).astype(np.float32)


# ------------------------------------------------------------------ the model

def config_from_gguf(gg: GGUFFile, block_size: int | None = None) -> GPTConfig:
    """The GPTConfig of a Llama-architecture GGUF, from its metadata.

    block_size defaults to the file's context length (``llama.context_length``).
    """
    md = gg.metadata
    arch = md.get("general.architecture")
    if arch != "llama":
        raise GGUFError(f"{gg.path.name} holds a {arch!r} model; minigpt reads Llama-architecture GGUF files")

    def get(key):
        if f"llama.{key}" not in md:
            raise GGUFError(f"{gg.path.name} lacks the metadata llama.{key}; is the file complete?")
        return md[f"llama.{key}"]

    vocab = md.get("llama.vocab_size") or len(md["tokenizer.ggml.tokens"])
    return GPTConfig(
        vocab_size=int(vocab), block_size=int(block_size or get("context_length")),
        n_layer=int(get("block_count")), n_head=int(get("attention.head_count")),
        n_embd=int(get("embedding_length")), n_kv_head=int(get("attention.head_count_kv")),
        dropout=0.0, bias=False, norm="rmsnorm", norm_eps=float(get("attention.layer_norm_rms_epsilon")),
        positions="rope", rope_base=float(md.get("llama.rope.freq_base", 10000.0)),
        mlp="swiglu", mlp_hidden=int(get("feed_forward_length")),
        tie_weights="output.weight" not in gg.tensor_types)


def _unpermute(w: torch.Tensor, n_head: int) -> torch.Tensor:
    """Undo llama.cpp's reordering of q and k rows. llama.cpp rotates adjacent pairs (x0, x1),
    (x2, x3) ...; our RoPE (and Hugging Face's) rotates (x_i, x_{i+D/2}). The converter
    interleaved each head's rows to match; this puts them back. w: [n_head * D, C]."""
    D = w.size(0) // n_head
    return w.view(n_head, D // 2, 2, -1).transpose(1, 2).reshape(w.shape)


def llama_state_dict(gg: GGUFFile, config: GPTConfig) -> dict:
    """The GGUF's tensors under ``transformers``' Llama names, dequantised to float32."""
    sd = {"model.embed_tokens.weight": gg.tensor("token_embd.weight"),
          "model.norm.weight": gg.tensor("output_norm.weight")}
    if not config.tie_weights:
        sd["lm_head.weight"] = gg.tensor("output.weight")
    names = {"attn_norm": "input_layernorm", "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj",
             "attn_v": "self_attn.v_proj", "attn_output": "self_attn.o_proj",
             "ffn_norm": "post_attention_layernorm", "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj",
             "ffn_down": "mlp.down_proj"}
    for i in range(config.n_layer):
        for ours, theirs in names.items():
            w = gg.tensor(f"blk.{i}.{ours}.weight")
            if ours == "attn_q":
                w = _unpermute(w, config.n_head)
            elif ours == "attn_k":
                w = _unpermute(w, config.kv_heads)
            sd[f"model.layers.{i}.{theirs}.weight"] = w
    return sd


def load_model(gg, block_size: int | None = None) -> GPT:
    """A GPT (eval mode, float32, CPU) with the weights of a Llama GGUF (a path or a GGUFFile)."""
    if not isinstance(gg, GGUFFile):
        gg = read(gg)
    config = config_from_gguf(gg, block_size)
    return GPT.from_llama_state_dict(llama_state_dict(gg, config), config).eval()


# ------------------------------------------------------------------ the tokenizer

# tokenizer.ggml.pre -> how text is cut into chunks before BPE (llama.cpp's pre-tokenizers).
# "smollm" first isolates every number character, then applies GPT-2's pattern; written as one
# pattern: a number character is a chunk of its own, and a run of spaces ends before a number
# as it would at the end of the text. ``\p{L}`` / ``\p{N}`` need the ``regex`` module.
SPLIT_PATTERNS = {
    "gpt2": r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""",
    "smollm": r"""\p{N}|'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?[^\s\p{L}\p{N}]+|\s+(?![^\s\p{N}])|\s+""",
}


def bytes_to_unicode() -> dict:
    """GPT-2's byte -> printable character table, in which byte-level BPE vocabularies are written:
    printable bytes stand for themselves, the others (space, control bytes ...) get characters
    from 256 up, e.g. the space byte is 'Ġ' and the newline 'Ċ'."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table, extra = {b: chr(b) for b in printable}, 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + extra)
            extra += 1
    return table


def load_tokenizer(gg) -> BPETokenizer:
    """The GGUF's byte-level BPE as a ``BPETokenizer`` with the model's own ids.

    Tokens are written in GPT-2's byte alphabet (``bytes_to_unicode``); each merge "a b" joins
    tokens a and b into token "ab"; control tokens (<|im_start|> ...) become special tokens,
    which ``encode`` matches only when asked (``allowed_special``).
    """
    if not isinstance(gg, GGUFFile):
        gg = read(gg)
    md = gg.metadata
    kind, pre = md.get("tokenizer.ggml.model"), md.get("tokenizer.ggml.pre", "gpt2")
    if kind != "gpt2":
        raise GGUFError(f"{gg.path.name} has a {kind!r} tokenizer; minigpt reads byte-level BPE ('gpt2') ones")
    if pre not in SPLIT_PATTERNS:
        raise GGUFError(f"{gg.path.name} splits text with the {pre!r} pre-tokenizer, which minigpt does not "
                        f"know; known: {', '.join(SPLIT_PATTERNS)}")
    tokens, types = md["tokenizer.ggml.tokens"], md["tokenizer.ggml.token_type"]
    id_of = {t: i for i, t in enumerate(tokens)}
    char_of = bytes_to_unicode()
    byte_ids = [id_of.get(char_of[b]) for b in range(256)]
    merges = []
    for m in md["tokenizer.ggml.merges"]:
        a, b = m.split(" ")
        merges.append(((id_of[a], id_of[b]), id_of[a + b]))
    control = (3, 4)  # gguf.TokenType.CONTROL, USER_DEFINED
    specials = {t: i for i, t in enumerate(tokens) if types[i] in control}
    # Bytes the vocabulary lacks (a few control bytes, bytes of no UTF-8 character) are dropped,
    # as transformers' tokenizer does: the model's unknown token is <|endoftext|>, which would end the text.
    tok = BPETokenizer(merges, specials, SPLIT_PATTERNS[pre], byte_ids, unknown_id=None, allowed_special="none")
    tok.chat_template = chat_template(gg)  # the Jinja source, for reference (minigpt.chat renders it in Python)
    return tok


def chat_template(gg: GGUFFile) -> str | None:
    """The Jinja chat template stored in the file's metadata, or None."""
    return gg.metadata.get("tokenizer.chat_template")
