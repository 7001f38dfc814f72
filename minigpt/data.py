"""Named corpora, and how text becomes training batches.

Every corpus is registered with its upstream URL, sha256, license and size. ``data_path(name)``
finds the file in this order:

    1. ``$MINIGPT_DATA_DIR/<name>/<filename>``   a folder of copies (tests and CI use one)
    2. ``$MINIGPT_CACHE_DIR/<name>/<filename>``  the user cache, by default ``~/.cache/minigpt``
    3. a download into the user cache            checksum-verified, written atomically

Offline with no copy it raises ``DataUnavailable``, whose message says where to put the file.
Links die and files change upstream, so every file is checked against its sha256 before use.

Then, as in nanoGPT: ``split`` keeps the first 90% of the token ids for training and the last
10% for validation, and ``get_batch`` cuts random windows out of them.
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import http.client
import json
import os
import re
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import torch

from .checks import as_ids, check_int, check_number
from .files import atomic_file, sha256_file
from .runtime import resolve_device


class DataUnavailable(OSError):
    """The corpus is not on this machine and could not be downloaded."""


class ChecksumMismatch(ValueError):
    """A file's sha256 is not the registered one: damaged, truncated, or another version."""


@dataclass(frozen=True)
class Corpus:
    """One registered file: where it comes from and how to recognise it."""

    name: str         # registry key, also the folder name under MINIGPT_DATA_DIR and the cache
    filename: str
    url: str          # upstream download URL
    sha256: str
    license: str
    size_bytes: int
    description: str
    source: str       # where the file was taken from (repository, path, commit)
    folder: str = ""  # folder under MINIGPT_DATA_DIR and the cache when several files share one (else name)

    @property
    def directory(self) -> str:
        return self.folder or self.name


_RASBT = "https://raw.githubusercontent.com/rasbt/LLMs-from-scratch/28c65cdfbc3338e2e040016eea4b7fdf556e4d57/ch07"

_KDCONV = "https://raw.githubusercontent.com/thu-coai/KdConv/653db76432de09a004ba708a68f8bbd5500e6bec"
_KDCONV_FILES = (  # (domain, split, sha256, bytes): the dev and test splits
    ("film", "dev", "2f156d8d34bdd3eac31c196772156d36e017f8cb2255a2c312bd98e367ed363e", 1_363_416),
    ("film", "test", "5ba2b79f9791bedbe5fe8a1bf5d7cbf277697743ee426ecd05459d9e28bcf21b", 1_547_354),
    ("music", "dev", "ee34a4af167195db43fdcc910f8d125956222517f0572d248a069057493d557f", 945_559),
    ("music", "test", "46f048c5db9dde45127cf6630b2fa06b685be369b71c5bc2dc3022d3f4bbad65", 1_148_564),
    ("travel", "dev", "8d1f31295888cf61eff398bab8aa042f7fccd04a088bd63c939f0b79625a9093", 904_751),
    ("travel", "test", "730426b0997b8375c8477c7e658c0ec645fced6ab8d546adda114b21cf30faac", 1_100_567),
)

_DAILYDIALOG = ("https://raw.githubusercontent.com/Ls-Dai/Deep-Reinforcement-Learning-for-Dialogue-Generation-"
                "in-PyTorch/bae51b16e3e8c0ce4ffd70b75ecfc40fbeb8e7ee")
_DAILYDIALOG_FILES = (  # (split, sha256, bytes) of the zips: text, act and emotion files line for line
    ("train", "6191257f8250da0e045bfd1d017645e15b2358df975ec4c5c431a5a1f99662a4", 2_059_812),
    ("validation", "f068cf7526a56ab5f26e99b74ce9edbc2766f7b060a3c6cef035920b0dd28153", 191_273),
    ("test", "5f9526a5ce4b8af4ca237aa3ff38cbf03becbc596c70b0974d7f5f9af2ea0615", 188_867),
)

CORPORA: dict[str, Corpus] = {c.name: c for c in (
    Corpus(
        name="tinyshakespeare",
        filename="input.txt",
        url="https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
        sha256="86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
        license="public domain",
        size_bytes=1_115_394,
        description="About 40,000 lines of Shakespeare's plays in one ASCII text file (65 distinct characters).",
        source="karpathy/char-rnn, data/tinyshakespeare/input.txt (the file nanoGPT's shakespeare_char uses)",
    ),
    Corpus(
        name="instruction-data",
        filename="instruction-data.json",
        url=f"{_RASBT}/01_main-chapter-code/instruction-data.json",
        sha256="7e09a9af353722ca15c18bc580f093f9c39d3178335a75177319cb1e1d163944",
        license="Apache-2.0",
        size_bytes=203_524,
        description="1,100 instruction-tuning records: a JSON list of {instruction, input, output}.",
        source="rasbt/LLMs-from-scratch @ 28c65cdf, ch07/01_main-chapter-code/instruction-data.json",
    ),
    Corpus(
        name="preference-data",
        filename="instruction-data-with-preference.json",
        url=f"{_RASBT}/04_preference-tuning-with-dpo/instruction-data-with-preference.json",
        sha256="305315abf14f65fa42c01a0877572f832606571c2a7d49f152ac1d758b16756e",
        license="Apache-2.0 (answers written by Llama 3.1 70B, whose output terms may also apply)",
        size_bytes=386_968,
        description="1,100 preference records: a JSON list of {instruction, input, output, chosen, rejected}.",
        source="rasbt/LLMs-from-scratch @ 28c65cdf, ch07/04_preference-tuning-with-dpo/"
               "instruction-data-with-preference.json",
    ),
    *(Corpus(
        name=f"kdconv-{domain}-{split}",
        filename=f"{domain}/{split}.json",
        url=f"{_KDCONV}/data/{domain}/{split}.json",
        sha256=sha,
        license="Apache-2.0",
        size_bytes=size,
        description=f"KdConv (Chinese, knowledge-grounded) {domain} dialogues, {split} split: 150 dialogues, "
                    f"a JSON list of {{name, messages: [{{message, attrs?}}]}}.",
        source=f"thu-coai/KdConv @ 653db764, data/{domain}/{split}.json (Zhou et al., ACL 2020)",
        folder="kdconv",
    ) for domain, split, sha, size in _KDCONV_FILES),
    *(Corpus(
        name=f"dailydialog-{split}",
        filename=f"{split}.zip",
        url=f"{_DAILYDIALOG}/data/{split}.zip",
        sha256=sha,
        license="CC BY-NC-SA 4.0 (non-commercial, share alike; credit: Li et al., IJCNLP 2017)",
        size_bytes=size,
        description=f"DailyDialog (English, everyday life) {split} split: one dialogue per line, turns "
                    f"ending in __eou__, with a dialogue act and an emotion label per turn.",
        source=f"the official release's {split}.zip, as copied in Ls-Dai/Deep-Reinforcement-Learning-for-"
               f"Dialogue-Generation-in-PyTorch @ bae51b16, data/{split}.zip. Yanran Li et al., 'DailyDialog: "
               f"A Manually Labelled Multi-turn Dialogue Dataset', IJCNLP 2017, http://yanran.li/dailydialog",
        folder="dailydialog",
    ) for split, sha, size in _DAILYDIALOG_FILES),
)}


def get_corpus(name: str) -> Corpus:
    """The registered Corpus called ``name``; ValueError naming the known ones otherwise."""
    if name in CORPORA:
        return CORPORA[name]
    close = difflib.get_close_matches(str(name), CORPORA, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ValueError(f"unknown corpus {name!r}; known corpora are {sorted(CORPORA)}.{hint}")


def cache_dir() -> Path:
    """Where downloads go: ``$MINIGPT_CACHE_DIR``, else ``~/.cache/minigpt``."""
    return Path(os.environ.get("MINIGPT_CACHE_DIR") or Path.home() / ".cache" / "minigpt").expanduser()


# Files already checked in this process, keyed by (path, size, mtime) so an edited file is checked again.
_verified: set[tuple[str, int, int]] = set()


def _verify(corpus: Corpus, path: Path) -> Path:
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key in _verified:
        return path
    got = sha256_file(path)
    if got != corpus.sha256:
        raise ChecksumMismatch(
            f"{path} is not the registered {corpus.name!r}: expected sha256 {corpus.sha256} "
            f"({corpus.size_bytes:,} bytes), got {got} ({st.st_size:,} bytes). The file is damaged "
            f"or another version; delete it (it will then be downloaded again) or replace it "
            f"with a copy of {corpus.url}")
    _verified.add(key)
    return path


def _download(corpus: Corpus, dest: Path) -> Path:
    """Fetch ``corpus.url`` into ``dest``: stream into a temp file beside it, check the sha256,
    then ``os.replace`` (atomic), so ``dest`` is either absent or complete and verified."""
    print(f"minigpt: downloading {corpus.name} ({corpus.size_bytes / 1e6:.1f} MB) from {corpus.url} to {dest}")
    with atomic_file(dest, "wb") as f:  # on any error below, nothing is left at dest
        h = hashlib.sha256()
        with urllib.request.urlopen(corpus.url, timeout=60) as response:
            for chunk in iter(lambda: response.read(1 << 16), b""):
                f.write(chunk)
                h.update(chunk)
        got = h.hexdigest()
        if got != corpus.sha256:
            raise ChecksumMismatch(
                f"downloaded {corpus.url} but its sha256 is {got}, expected {corpus.sha256}: the file "
                f"changed upstream or the download was corrupted. Nothing was saved. Try again; if it "
                f"persists, get the file by hand, check it with sha256sum, and put it at {dest}")
    _verified.add((str(dest.resolve()), dest.stat().st_size, dest.stat().st_mtime_ns))
    return dest


def data_path(name: str) -> Path:
    """Path of corpus ``name`` on this machine, verified against its sha256.

    Looks in ``$MINIGPT_DATA_DIR/<name>/``, then the user cache, then downloads into the cache.
    Raises ValueError (unknown name), ChecksumMismatch (a copy that is not the registered file),
    or DataUnavailable (no copy, no download; the message says where to put the file).
    """
    corpus = get_corpus(name)
    data_dir = os.environ.get("MINIGPT_DATA_DIR")
    local = Path(data_dir).expanduser() / corpus.directory / corpus.filename if data_dir else None
    if local is not None and local.is_file():
        return _verify(corpus, local)
    cached = cache_dir() / corpus.directory / corpus.filename
    if cached.is_file():
        return _verify(corpus, cached)
    try:
        return _download(corpus, cached)
    except (urllib.error.URLError, ConnectionError, TimeoutError, http.client.HTTPException, PermissionError) as e:
        # URLError wraps the socket error in .reason; HTTPError's own str has the status code
        reason = e if isinstance(e, urllib.error.HTTPError) else getattr(e, "reason", e)
        places = [f"  {cached}   (the user cache; set MINIGPT_CACHE_DIR to move it)"]
        if local is not None:
            places.insert(0, f"  {local}   ($MINIGPT_DATA_DIR)")
        else:
            places.append(f"  <folder>/{corpus.directory}/{corpus.filename}   with MINIGPT_DATA_DIR=<folder>")
        raise DataUnavailable(
            f"corpus {corpus.name!r} is not on this machine and could not be downloaded from "
            f"{corpus.url} ({reason}).\nDownload that file where you have internet and put it at\n"
            + "\n".join(places) + f"\nIts sha256 must be {corpus.sha256}.") from e


def load_text(name: str) -> str:
    """The whole text of corpus ``name`` (e.g. "tinyshakespeare") as one str, read as UTF-8.
    A dialogue corpus gives its training dialogues as running text: one turn a line, a blank
    line between dialogues ("dailydialog": the train split; "kdconv": the dev split, since only
    dev and test are registered and test is held out for evaluation)."""
    if name in DIALOGUES:
        split = "dev" if name == "kdconv" else "train"
        return "\n\n".join("\n".join(d) for d in load_dialogues(name, split))
    return data_path(name).read_text(encoding="utf-8")


def load_json(name: str):
    """Corpus ``name`` parsed as JSON (e.g. "instruction-data": a list of dicts)."""
    return json.loads(data_path(name).read_text(encoding="utf-8"))


DIALOGUES = {"kdconv": ("film", "music", "travel"), "dailydialog": ()}  # dialogue corpora -> their domains


def load_dialogues(name: str, split: str = "dev") -> list[list[str]]:
    """Dialogues of a dialogue corpus, each a list of turns (str) whose speakers alternate.

    name:  "kdconv" (its film, music and travel domains, in that order) or one domain,
           e.g. "kdconv-film"; or "dailydialog".
    split: "dev" or "test" for KdConv; "train", "validation" or "test" for DailyDialog.
    Returns [n_dialogues] lists of [n_turns] strings; the first turn is the one who asks.
    DailyDialog's turns are ``Turn`` strings that also carry their labels (``.emotion``, ``.act``).
    """
    corpus, _, domain = name.partition("-")
    if corpus not in DIALOGUES or (domain and domain not in DIALOGUES[corpus]):
        known = [n for c, ds in DIALOGUES.items() for n in (c, *(f"{c}-{d}" for d in ds))]
        raise ValueError(f"unknown dialogue corpus {name!r}; known ones are {known}")
    splits = sorted({n.rsplit("-", 1)[1] for n in CORPORA if n.startswith(f"{corpus}-")})
    if split not in splits:
        raise ValueError(f"unknown split {split!r} for {name!r}; registered splits are {splits}")
    if corpus == "dailydialog":
        path = data_path(f"dailydialog-{split}")
        return [list(d) for d in _dailydialog(split, str(path), path.stat().st_mtime_ns)]  # fresh lists: callers may edit
    return [[m["message"] for m in d["messages"]]
            for dom in ((domain,) if domain else DIALOGUES[corpus])
            for d in load_json(f"{corpus}-{dom}-{split}")]


EMOTIONS = ("none", "anger", "disgust", "fear", "happiness", "sadness", "surprise")  # DailyDialog's labels 0-6
ACTS = ("inform", "question", "directive", "commissive")                            # DailyDialog's labels 1-4


class Turn(str):
    """One DailyDialog turn: the text (a str) with its labels, ``emotion`` (one of EMOTIONS) and
    ``act`` (one of ACTS), as the dataset's annotators gave them."""

    emotion: str
    act: str

    def __new__(cls, text: str, emotion: str, act: str):
        turn = super().__new__(cls, text)
        turn.emotion, turn.act = emotion, act
        return turn

    def __reduce__(self):
        return Turn, (str(self), self.emotion, self.act)


def _detokenize(text: str) -> str:
    """DailyDialog's text has a space before punctuation ("lunch ?"); write it as people do."""
    text = re.sub(r"\s+([.,?!;:%)\u2019'](?:\s|$))", r"\1", text.replace(" \u2019 ", "\u2019"))
    text = re.sub(r"(\w) ' (\w)", r"\1'\2", text)
    return re.sub(r"([($]) ", r"\1", re.sub(r"\s+([.,?!;:%)])", r"\1", text)).strip()


@functools.lru_cache(maxsize=4)
def _dailydialog(split: str, path: str, mtime_ns: int) -> tuple[tuple[Turn, ...], ...]:
    """DailyDialog's dialogues of ``split`` from its zip at ``path``, with the labels of every turn (the one
    dialogue whose label count differs from its turn count is left out). Cached per file and
    modification time: parsing the training split takes seconds, and a notebook asks for it often."""
    import zipfile

    with zipfile.ZipFile(path) as z:
        def lines(kind):
            return z.read(f"{split}/dialogues_{kind}{split}.txt").decode("utf-8").splitlines()
        texts, emotions, acts = lines(""), lines("emotion_"), lines("act_")
    dialogues = []
    for text, emotion, act in zip(texts, emotions, acts, strict=True):
        turns = [t.strip() for t in text.split("__eou__") if t.strip()]
        emotion, act = emotion.split(), act.split()
        if len(turns) == len(emotion) == len(act):
            dialogues.append(tuple(Turn(_detokenize(t), EMOTIONS[int(e)], ACTS[int(a) - 1])
                                   for t, e, a in zip(turns, emotion, act)))
    return tuple(dialogues)


# ---------------------------------------------------------------------- splits and batches

def split(ids, val_fraction: float = 0.1) -> tuple[torch.Tensor, torch.Tensor]:
    """Split token ids into (train, val): the first (1 - val_fraction) of the text and the rest.

    ids: [N] token ids (list of ints or 1-D integer tensor).
    Returns (train [N - M], val [M]) 1-D tensors (views of ``ids`` when it is a tensor).
    A contiguous cut, not a shuffle: validation text the model has never seen nearby.
    """
    check_number(val_fraction, "val_fraction", 0, 1, low_open=True, high_open=True)
    data = as_ids(ids, "ids")
    n = int(len(data) * (1 - val_fraction))
    if n == 0 or n == len(data):
        raise ValueError(f"{len(data)} token ids are too few to split with val_fraction={val_fraction}: "
                         f"train would get {n} and val {len(data) - n}; both need at least one")
    return data[:n], data[n:]


def get_batch(data, batch_size: int, block_size: int, generator: torch.Generator | None = None,
              device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch of random windows of ``data`` and, for each, the next token at every position.

    data:       [N] token ids (1-D integer tensor or list), N >= block_size + 1.
    generator:  optional torch.Generator (on the CPU) for repeatable batches.
    device:     where to put the batch (default: where ``data`` is; keep ``data`` on the training
                device and each batch is a gather there, with no copy from the CPU).
    Returns x [B, T] long and y [B, T] long with B = batch_size, T = block_size, and
    y[b, t] = x[b, t + 1] (y[b, -1] is the token after the window): the target at every position
    is the true next token. That is teacher forcing in a decoder-only model: one forward pass
    trains all T predictions at once, each conditioned on the real text, not on its own guesses.
    """
    check_int(batch_size, "batch_size", 1)
    check_int(block_size, "block_size", 1)
    data = as_ids(data, "data")
    if len(data) < block_size + 1:
        raise ValueError(f"data has {len(data)} tokens but block_size={block_size} needs at least "
                         f"{block_size + 1} (a window plus the token after it); use a smaller "
                         f"block_size or more text")
    # Start offsets in [0, N - T - 1], so the last target data[i + T] is still inside the data.
    ix = torch.randint(len(data) - block_size, (batch_size,), generator=generator).to(data.device)
    window = ix[:, None] + torch.arange(block_size, device=data.device)  # [B, T] positions into data
    x, y = data[window].long(), data[window + 1].long()
    if device is not None and torch.device(device) != x.device:
        device = resolve_device(device)
        if device.type == "cuda" and x.device.type == "cpu":
            # Page-locked memory lets the copy run asynchronously while the GPU keeps working.
            x, y = x.pin_memory().to(device, non_blocking=True), y.pin_memory().to(device, non_blocking=True)
        else:
            x, y = x.to(device), y.to(device)
    return x, y
