"""Corpora (local copy, cache, atomic checksum-verified download, offline errors), splits, batches.

No test touches the network: downloads are served from local bytes by a fake ``urlopen``.
"""

import hashlib
import io
import os
import urllib.error
from pathlib import Path

import pytest
import torch

from minigpt import data

SHARED = Path(os.environ.get("MINIGPT_DATA_DIR", ""))
needs_shared = pytest.mark.skipif(not (SHARED / "tinyshakespeare" / "input.txt").is_file(),
                                  reason="MINIGPT_DATA_DIR holds no copy of the corpora")


@pytest.fixture
def fake_corpus(monkeypatch, tmp_path):
    """Register a small corpus whose bytes live in tmp_path/upstream, and point the data dir
    and the cache at empty folders."""
    body = b"First Citizen:\nBefore we proceed any further, hear me speak.\n"
    upstream = tmp_path / "upstream.txt"
    upstream.write_bytes(body)
    corpus = data.Corpus(name="tiny", filename="tiny.txt", url="https://example.invalid/tiny.txt",
                         sha256=hashlib.sha256(body).hexdigest(), license="public domain",
                         size_bytes=len(body), description="test corpus", source="this test")
    monkeypatch.setitem(data.CORPORA, "tiny", corpus)
    monkeypatch.setenv("MINIGPT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("MINIGPT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(data, "_verified", set())
    return corpus, upstream


def serve(monkeypatch, payload: bytes | None):
    """Make urlopen return ``payload`` (or raise URLError when None); return the list of URLs asked for."""
    calls = []

    def fake_urlopen(url, timeout=None):
        calls.append(url)
        if payload is None:
            raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")
        return io.BytesIO(payload)

    monkeypatch.setattr(data.urllib.request, "urlopen", fake_urlopen)
    return calls


# ---------------------------------------------------------------------- corpora

def test_registry_entries_are_complete():
    assert "tinyshakespeare" in data.CORPORA
    for name, c in data.CORPORA.items():
        assert c.name == name
        assert c.url.startswith("https://") and len(c.sha256) == 64 and c.size_bytes > 0
        assert c.license and c.filename and c.description and c.source


@needs_shared
def test_registered_copies_match_their_checksums(monkeypatch):
    monkeypatch.setattr(data, "_verified", set())
    for name, c in data.CORPORA.items():
        path = data.data_path(name)
        assert path == SHARED / c.directory / c.filename
        assert path.stat().st_size == c.size_bytes


@needs_shared
def test_load_text_and_json_from_data_dir(monkeypatch):
    serve(monkeypatch, None)  # a download attempt would fail loudly
    text = data.load_text("tinyshakespeare")
    assert len(text) == 1_115_394 and text.startswith("First Citizen:") and len(set(text)) == 65
    records = data.load_json("instruction-data")
    assert len(records) == 1100 and set(records[0]) == {"instruction", "input", "output"}


def test_unknown_name_lists_known_ones():
    with pytest.raises(ValueError, match="tinyshakespeare") as e:
        data.data_path("tinyshakespear")
    assert "Did you mean 'tinyshakespeare'" in str(e.value)


def test_copy_in_data_dir_is_used(fake_corpus, monkeypatch):
    corpus, upstream = fake_corpus
    local = Path(os.environ["MINIGPT_DATA_DIR"]) / "tiny" / "tiny.txt"
    local.parent.mkdir(parents=True)
    local.write_bytes(upstream.read_bytes())
    calls = serve(monkeypatch, None)
    assert data.data_path("tiny") == local
    assert data.load_text("tiny") == upstream.read_text()
    assert calls == []


def test_wrong_copy_in_data_dir_raises_checksum_mismatch(fake_corpus, monkeypatch):
    corpus, _ = fake_corpus
    local = Path(os.environ["MINIGPT_DATA_DIR"]) / "tiny" / "tiny.txt"
    local.parent.mkdir(parents=True)
    local.write_bytes(b"not the registered text")
    serve(monkeypatch, None)
    with pytest.raises(data.ChecksumMismatch) as e:
        data.data_path("tiny")
    msg = str(e.value)
    assert corpus.sha256 in msg and hashlib.sha256(b"not the registered text").hexdigest() in msg
    assert str(local) in msg and "delete it" in msg


def test_cached_copy_is_used(fake_corpus, monkeypatch):
    _, upstream = fake_corpus
    cached = Path(os.environ["MINIGPT_CACHE_DIR"]) / "tiny" / "tiny.txt"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(upstream.read_bytes())
    calls = serve(monkeypatch, None)
    assert data.data_path("tiny") == cached
    assert calls == []


def test_default_cache_is_under_home(monkeypatch, tmp_path):
    monkeypatch.delenv("MINIGPT_CACHE_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert data.cache_dir() == tmp_path / ".cache" / "minigpt"


def test_download_writes_cache_once(fake_corpus, monkeypatch, capsys):
    corpus, upstream = fake_corpus
    calls = serve(monkeypatch, upstream.read_bytes())
    path = data.data_path("tiny")
    cached = Path(os.environ["MINIGPT_CACHE_DIR"]) / "tiny" / "tiny.txt"
    assert path == cached and cached.read_bytes() == upstream.read_bytes()
    assert calls == [corpus.url]
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "downloading tiny" in out and corpus.url in out
    assert sorted(p.name for p in cached.parent.iterdir()) == ["tiny.txt"]  # no temp file left
    assert data.load_text("tiny") == upstream.read_text()
    assert calls == [corpus.url]  # the second call read the cache


def test_download_with_wrong_checksum_leaves_nothing(fake_corpus, monkeypatch):
    corpus, _ = fake_corpus
    serve(monkeypatch, b"an error page from a proxy")
    with pytest.raises(data.ChecksumMismatch) as e:
        data.data_path("tiny")
    assert corpus.sha256 in str(e.value) and "Nothing was saved" in str(e.value)
    folder = Path(os.environ["MINIGPT_CACHE_DIR"]) / "tiny"
    assert list(folder.iterdir()) == []


def test_interrupted_download_leaves_nothing(fake_corpus, monkeypatch):
    class Broken(io.BytesIO):
        def read(self, n=-1):
            if self.tell() > 0:
                raise ConnectionResetError("connection reset by peer")
            return super().read(8)

    monkeypatch.setattr(data.urllib.request, "urlopen", lambda url, timeout=None: Broken(b"x" * 100))
    with pytest.raises(data.DataUnavailable, match="connection reset"):
        data.data_path("tiny")
    assert list((Path(os.environ["MINIGPT_CACHE_DIR"]) / "tiny").iterdir()) == []


def test_offline_without_copy_says_where_to_put_the_file(fake_corpus, monkeypatch):
    corpus, _ = fake_corpus
    serve(monkeypatch, None)
    with pytest.raises(data.DataUnavailable) as e:
        data.load_text("tiny")
    msg = str(e.value)
    assert corpus.url in msg and corpus.sha256 in msg and "name resolution" in msg
    assert str(Path(os.environ["MINIGPT_DATA_DIR"]) / "tiny" / "tiny.txt") in msg
    assert str(Path(os.environ["MINIGPT_CACHE_DIR"]) / "tiny" / "tiny.txt") in msg
    assert not (Path(os.environ["MINIGPT_CACHE_DIR"]) / "tiny" / "tiny.txt").exists()


def test_offline_without_data_dir_explains_the_variable(fake_corpus, monkeypatch):
    monkeypatch.delenv("MINIGPT_DATA_DIR")
    serve(monkeypatch, None)
    with pytest.raises(data.DataUnavailable, match="MINIGPT_DATA_DIR=<folder>"):
        data.data_path("tiny")


def test_checksum_is_verified_once_per_process(fake_corpus, monkeypatch):
    _, upstream = fake_corpus
    cached = Path(os.environ["MINIGPT_CACHE_DIR"]) / "tiny" / "tiny.txt"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(upstream.read_bytes())
    hashed = []
    real = data.sha256_file
    monkeypatch.setattr(data, "sha256_file", lambda p: hashed.append(p) or real(p))
    data.data_path("tiny")
    data.data_path("tiny")
    assert len(hashed) == 1
    cached.write_bytes(b"edited by hand")  # a changed file is checked again
    with pytest.raises(data.ChecksumMismatch):
        data.data_path("tiny")


# ---------------------------------------------------------------------- split

def test_split_sizes_first_ninety_percent():
    ids = list(range(1000))
    train, val = data.split(ids)
    assert train.tolist() == list(range(900)) and val.tolist() == list(range(900, 1000))
    train, val = data.split(torch.arange(10), val_fraction=0.25)
    assert (len(train), len(val)) == (7, 3)


@pytest.mark.parametrize("fraction", [0, 1, -0.1, 1.5, True, "0.1"])
def test_split_rejects_bad_fraction(fraction):
    with pytest.raises(ValueError, match="val_fraction"):
        data.split(list(range(100)), val_fraction=fraction)


def test_split_rejects_too_few_ids_and_text():
    with pytest.raises(ValueError, match="train would get 0"):
        data.split([7])
    with pytest.raises(ValueError, match="val 0"):
        data.split(list(range(10)), val_fraction=1e-17)  # 1 - 1e-17 rounds to 1.0
    with pytest.raises(ValueError, match="encode"):
        data.split("raw text")


# ---------------------------------------------------------------------- get_batch

def test_get_batch_shapes_and_shift():
    ids = torch.arange(100, 200)
    x, y = data.get_batch(ids, batch_size=4, block_size=8, generator=torch.Generator().manual_seed(0))
    assert x.shape == y.shape == (4, 8) and x.dtype == y.dtype == torch.long
    assert torch.equal(y[:, :-1], x[:, 1:])
    assert torch.equal(y[:, -1], x[:, -1] + 1)  # the token after the window, taken from the data
    assert torch.equal(x - x[:, :1], torch.arange(8).expand(4, 8))  # contiguous windows of the data


def test_get_batch_casts_small_int_dtypes_and_reaches_the_end():
    ids = torch.arange(9, dtype=torch.int16)  # exactly block_size + 1 tokens: one possible window
    x, y = data.get_batch(ids, batch_size=3, block_size=8)
    assert x.dtype == torch.long
    assert x.tolist() == [list(range(8))] * 3 and y.tolist() == [list(range(1, 9))] * 3


def test_get_batch_is_deterministic_with_a_seeded_generator():
    ids = torch.randint(0, 50, (1000,), generator=torch.Generator().manual_seed(1))
    a = data.get_batch(ids, 8, 16, generator=torch.Generator().manual_seed(42))
    b = data.get_batch(ids, 8, 16, generator=torch.Generator().manual_seed(42))
    c = data.get_batch(ids, 8, 16, generator=torch.Generator().manual_seed(43))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])


def test_get_batch_too_short_says_how_long():
    with pytest.raises(ValueError, match=r"data has 8 tokens .* at least 9"):
        data.get_batch(torch.arange(8), batch_size=2, block_size=8)


@pytest.mark.parametrize("kwargs", [dict(batch_size=0, block_size=4), dict(batch_size=2, block_size=2.5)])
def test_get_batch_rejects_bad_sizes(kwargs):
    with pytest.raises(ValueError, match="must be an integer >= 1"):
        data.get_batch(torch.arange(50), **kwargs)


def test_get_batch_rejects_float_data():
    with pytest.raises(ValueError, match="integer token ids"):
        data.get_batch(torch.rand(50), batch_size=2, block_size=4)


def test_get_batch_device():
    x, y = data.get_batch(list(range(50)), 2, 4, device="cpu")
    assert x.device.type == y.device.type == "cpu"
    if torch.cuda.is_available():
        x, y = data.get_batch(torch.arange(50), 2, 4, device="cuda")
        assert x.is_cuda and y.is_cuda and torch.equal(y[:, :-1].cpu(), x[:, 1:].cpu())
    else:
        with pytest.raises(ValueError, match="CUDA is not available"):
            data.get_batch(torch.arange(50), 2, 4, device="cuda")
