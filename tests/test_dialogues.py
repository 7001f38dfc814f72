"""KdConv dialogues through the data registry: registered files, offline copies, turns as strings."""

import pytest

import minigpt as mg


def test_kdconv_files_are_registered_with_checksums():
    names = [n for n in mg.data.CORPORA if n.startswith("kdconv-")]
    assert len(names) == 6
    for n in names:
        c = mg.data.get_corpus(n)
        assert c.directory == "kdconv" and len(c.sha256) == 64 and c.license == "Apache-2.0"
        assert c.url.endswith(c.filename)


def test_load_dialogues_returns_lists_of_turns():
    film = mg.data.load_dialogues("kdconv-film", "dev")
    assert len(film) == 150
    assert all(isinstance(t, str) and t for d in film for t in d)
    assert film[0][0] == "知道恋恋笔记本这部电影吗？"
    everything = mg.data.load_dialogues("kdconv", "dev")
    assert len(everything) == 450 and everything[:150] == film


def test_load_dialogues_names_what_exists():
    with pytest.raises(ValueError, match="known ones"):
        mg.data.load_dialogues("kdconv-cooking")
    with pytest.raises(ValueError, match="registered splits"):
        mg.data.load_dialogues("kdconv", "train")


def test_missing_copy_says_where_to_put_it(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIGPT_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("MINIGPT_CACHE_DIR", str(tmp_path / "cache"))
    def offline(*a, **k):
        raise ConnectionError("offline")
    monkeypatch.setattr(mg.data.urllib.request, "urlopen", offline)
    with pytest.raises(mg.data.DataUnavailable, match="kdconv/travel/test.json"):
        mg.data.load_dialogues("kdconv-travel", "test")
