"""Tokenizers: character and byte-level BPE — round trips, special tokens, training, files, errors.

Expected merges and encodings come from brute-force reference code written here, independent of
the package's incremental training and cached encoding.
"""

import json
import re
from collections import Counter

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import minigpt as mg
from minigpt.tokenizer import (GPT2_SPLIT_PATTERN, GPT4_SPLIT_PATTERN, BPETokenizer, CharTokenizer,
                               TokenizerError, count_pairs, load_tokenizer, merge_pair,
                               tokenizer_from_dict)

EOT = "<|endoftext|>"
MULTILINGUAL = "Hello, world! 你好，世界。 Grüße 🤗🎉👩‍👩‍👧 ñandú 12345 it's\tdone\r\n"
any_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=200)  # every code point but lone surrogates


@pytest.fixture(scope="module")
def sample(shakespeare):
    return shakespeare[:100_000]


@pytest.fixture(scope="module")
def bpe(sample):
    return BPETokenizer.train(sample + MULTILINGUAL, vocab_size=400)


def brute_force_merges(text, n):
    """Reference BPE: chunk, count every pair with plain loops, merge the most frequent (ties:
    smallest pair), repeat."""
    words = Counter(tuple(c.encode("utf-8")) for c in re.findall(GPT4_SPLIT_PATTERN, text))
    merges = []
    for step in range(n):
        counts = Counter()
        for w, f in words.items():
            for i in range(len(w) - 1):
                counts[w[i], w[i + 1]] += f
        best = max(counts.items(), key=lambda kv: (kv[1], -kv[0][0], -kv[0][1]))[0]
        merged = Counter()
        for w, f in words.items():
            out, i = [], 0
            while i < len(w):
                if w[i:i + 2] == best:
                    out.append(256 + step)
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            merged[tuple(out)] += f
        words = merged
        merges.append((best, 256 + step))
    return merges


def reference_encode(tok, text):
    """Encode by applying every merge in learning order to each chunk's bytes."""
    ids = []
    for chunk in re.findall(tok.pattern, text):
        chunk_ids = list(chunk.encode("utf-8"))
        for pair, new_id in tok.merges:
            chunk_ids = merge_pair(chunk_ids, pair, new_id)
        ids += chunk_ids
    return ids


def test_names_are_exported():
    assert mg.CharTokenizer is CharTokenizer and mg.BPETokenizer is BPETokenizer
    assert mg.TokenizerError is TokenizerError and issubclass(TokenizerError, ValueError)
    assert mg.tokenizer.load_tokenizer is load_tokenizer


# ----------------------------------------------------------------------------- CharTokenizer

def test_char_vocabulary_is_sorted_characters_then_specials():
    tok = CharTokenizer.from_text("hello world", special_tokens=(EOT,))
    assert tok.chars == sorted(set("hello world"))
    assert tok.special_tokens == {EOT: len(tok.chars)}
    assert tok.vocab_size == len(tok) == len(set("hello world")) + 1
    assert all(tok.stoi[s] == i for i, s in tok.itos.items())


def test_char_round_trip_on_shakespeare(sample):
    tok = CharTokenizer.from_text(sample)
    ids = tok.encode(sample)
    assert len(ids) == len(sample)
    assert tok.decode(ids) == sample
    assert tok.decode(torch.tensor(ids[:100])) == sample[:100]


@settings(max_examples=100, deadline=None)
@given(st.text(st.sampled_from(sorted(set(MULTILINGUAL)))))
def test_char_round_trip_of_any_text_over_its_alphabet(text):
    tok = CharTokenizer.from_text(MULTILINGUAL)
    assert tok.decode(tok.encode(text)) == text


def test_char_special_tokens():
    tok = CharTokenizer.from_text("<>|abdefnotx", special_tokens=(EOT,))
    ids = tok.encode(f"ab{EOT}ba")
    assert ids == [tok.stoi["a"], tok.stoi["b"], tok.special_tokens[EOT], tok.stoi["b"], tok.stoi["a"]]
    plain = tok.encode(f"ab{EOT}", allowed_special="none")
    assert tok.special_tokens[EOT] not in plain and len(plain) == 2 + len(EOT)
    assert tok.decode(ids) == tok.decode(plain[:2]) + EOT + "ba"
    assert tok.token_str(tok.special_tokens[EOT]) == EOT


def test_char_unknown_character_names_it_and_says_what_to_do():
    tok = CharTokenizer.from_text("hello world")
    with pytest.raises(TokenizerError) as err:
        tok.encode("hello wörld")
    msg = str(err.value)
    assert repr("ö") in msg and "position 7" in msg
    assert "from_text" in msg and "filter" in msg


def test_char_token_str_and_errors():
    tok = CharTokenizer.from_text("a\nb\t")
    assert tok.token_str(tok.stoi["\n"]) == "\\n" and tok.token_str(tok.stoi["\t"]) == "\\t"
    with pytest.raises(TokenizerError, match="out of range"):
        tok.decode([0, 99])
    with pytest.raises(TokenizerError, match="out of range"):
        tok.token_str(-1)
    with pytest.raises(ValueError, match="empty"):
        CharTokenizer.from_text("")
    with pytest.raises(ValueError, match="also ordinary characters"):
        CharTokenizer.from_text("abc", special_tokens=("a",))
    with pytest.raises(TypeError, match="str"):
        tok.encode(b"ab")


def test_char_save_load(tmp_path):
    tok = CharTokenizer.from_text(MULTILINGUAL, special_tokens=(EOT,))
    path = tok.save(tmp_path / "char.json")
    for loaded in (CharTokenizer.load(path), load_tokenizer(path)):
        assert isinstance(loaded, CharTokenizer)
        assert loaded.to_dict() == tok.to_dict()
        assert loaded.encode(MULTILINGUAL + EOT) == tok.encode(MULTILINGUAL + EOT)
    assert [p.name for p in tmp_path.iterdir()] == ["char.json"]  # no temporary file left behind


# ----------------------------------------------------------------------------- BPE building blocks

def test_count_pairs_and_merge_pair():
    assert count_pairs([1, 2, 3, 1, 2]) == {(1, 2): 2, (2, 3): 1, (3, 1): 1}
    assert count_pairs([7, 7, 7]) == {(7, 7): 2}
    assert merge_pair([1, 2, 3, 1, 2], (1, 2), 4) == [4, 3, 4]
    assert merge_pair([7, 7, 7], (7, 7), 8) == [8, 7]  # left to right, no overlaps


@settings(max_examples=200, deadline=None)
@given(any_text)
def test_split_patterns_keep_every_character(text):
    for pattern in (GPT2_SPLIT_PATTERN, GPT4_SPLIT_PATTERN):
        assert "".join(re.findall(pattern, text)) == text


def test_split_patterns_match_the_originals(sample):
    regex = pytest.importorskip("regex")
    gpt4 = r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]++[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+"""
    gpt2 = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
    text = sample + MULTILINGUAL + " I'M  x__y  \n\n  1234567 "
    assert re.findall(GPT4_SPLIT_PATTERN, text) == regex.findall(gpt4, text)
    assert re.findall(GPT2_SPLIT_PATTERN, text) == regex.findall(gpt2, text)


# ----------------------------------------------------------------------------- BPE training

def test_first_merge_is_the_most_frequent_pair_counted_by_hand():
    text = "aaabdaaabac"
    tok = BPETokenizer.train(text, vocab_size=256 + 3, special_tokens=())
    counts = Counter(zip(text.encode(), text.encode()[1:]))
    top = max(counts.values())
    expected = min(p for p, c in counts.items() if c == top)  # ties go to the smallest pair
    assert tok.merges[0] == (expected, 256)
    assert tok.merges == brute_force_merges(text, 3)


def test_first_merges_on_shakespeare_match_brute_force(sample):
    tok = BPETokenizer.train(sample, vocab_size=256 + 20, special_tokens=())
    assert tok.merges == brute_force_merges(sample, 20)
    assert all(tok.vocab[new_id] == tok.vocab[a] + tok.vocab[b] for (a, b), new_id in tok.merges)


def test_incremental_training_matches_full_recount(sample):
    fast = BPETokenizer.train(sample[:50_000], vocab_size=360)
    slow = BPETokenizer.train(sample[:50_000], vocab_size=360, incremental=False)
    assert fast.merges == slow.merges and len(fast.merges) == 360 - 257


def test_training_is_deterministic(sample):
    a = BPETokenizer.train(sample[:30_000], vocab_size=300)
    b = BPETokenizer.train(sample[:30_000], vocab_size=300)
    assert a.merges == b.merges and a.vocab == b.vocab


def test_on_merge_sees_every_merge_with_falling_counts(sample, capsys):
    seen = []
    tok = BPETokenizer.train(sample[:30_000], vocab_size=300, verbose=True,
                             on_merge=lambda *args: seen.append(args))
    assert [(pair, new_id) for _, pair, new_id, _, _ in seen] == tok.merges
    assert [step for step, *_ in seen] == list(range(len(tok.merges)))
    assert all(token == tok.vocab[new_id] for _, _, new_id, token, _ in seen)
    counts = [count for *_, count in seen]
    assert counts == sorted(counts, reverse=True) and counts[-1] > 0
    assert "merge 1/" in capsys.readouterr().out


def test_merges_never_cross_special_tokens():
    with pytest.warns(UserWarning, match="no pair left"):  # only "hello" and " world" have pairs
        tok = BPETokenizer.train(f"hello world{EOT}" * 50, vocab_size=300)
    learned = [tok.vocab[new_id] for _, new_id in tok.merges]
    assert len(learned) == (len("hello") - 1) + (len(" world") - 1)
    assert not any(b"endoftext" in t or b"<|" in t or b"|>" in t for t in learned)


def test_training_on_too_little_text_warns_and_stops():
    with pytest.warns(UserWarning, match="no pair left"):
        tok = BPETokenizer.train("abab", vocab_size=400)
    assert tok.vocab_size < 400 and tok.decode(tok.encode("abab")) == "abab"


def test_vocab_size_too_small_is_explained():
    with pytest.raises(ValueError, match="at least 257"):
        BPETokenizer.train("some text", vocab_size=256)
    with pytest.raises(ValueError, match="at least 256"):
        BPETokenizer.train("some text", vocab_size=100, special_tokens=())
    with pytest.raises(ValueError, match="list of strings"):
        BPETokenizer.train("some text", vocab_size=300, special_tokens=EOT)


def test_chinese_characters_become_single_tokens():
    # "你好" is 6 bytes (5 merges); " 你好" needs one more
    tok = BPETokenizer.train("你好 " * 20, vocab_size=256 + 1 + 6)
    ids = tok.encode("你好")
    assert len(ids) == 1 and tok.token_str(ids[0]) == "你好" and tok.decode(ids) == "你好"


# ----------------------------------------------------------------------------- BPE encode / decode

def test_bpe_round_trip_on_shakespeare(bpe, sample):
    ids = bpe.encode(sample)
    assert len(ids) < len(sample) / 1.5  # merges compress
    assert bpe.decode(ids) == sample
    assert ids[:2000] == reference_encode(bpe, sample[:5000])[:2000]


@pytest.mark.parametrize("text", ["你好，世界。", "🤗🎉👩‍👩‍👧", "Grüße, ñandú", MULTILINGUAL])
def test_bpe_chinese_and_emoji(bpe, text):
    ids = bpe.encode(text)
    assert bpe.decode(ids) == text
    assert bpe.decode_bytes(ids) == text.encode("utf-8")
    assert ids == reference_encode(bpe, text)


@settings(max_examples=200, deadline=None)
@given(any_text)
def test_bpe_round_trips_any_unicode(bpe, text):
    ids = bpe.encode(text)
    assert bpe.decode(ids) == text
    assert ids == bpe.encode(text, allowed_special="none") == reference_encode(bpe, text)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.one_of(any_text, st.just(EOT)), max_size=6))
def test_bpe_round_trips_text_with_special_tokens(bpe, parts):
    text = "".join(parts)
    for allowed in ("all", "none", {EOT}, set()):
        assert bpe.decode(bpe.encode(text, allowed_special=allowed)) == text


def test_bpe_special_tokens(bpe):
    eot = bpe.special_tokens[EOT]
    assert eot == 256 + len(bpe.merges) == bpe.vocab_size - 1
    assert bpe.token_str(eot) == EOT
    text = f"To be{EOT}or not"
    assert bpe.encode(text).count(eot) == 1
    assert eot not in bpe.encode(text, allowed_special="none")
    with pytest.raises(ValueError, match="not special tokens"):
        bpe.encode(text, allowed_special={"<|pad|>"})
    with pytest.raises(ValueError, match="allowed_special"):
        bpe.encode(text, allowed_special="some")


def test_bpe_only_the_allowed_special_tokens_become_ids(sample):
    tok = BPETokenizer.train(sample[:20_000], vocab_size=300, special_tokens=(EOT, "<|pad|>"))
    eot, pad = tok.special_tokens[EOT], tok.special_tokens["<|pad|>"]
    assert (eot, pad) == (298, 299)
    ids = tok.encode(f"a{EOT}b<|pad|>", allowed_special={"<|pad|>"})
    assert pad in ids and eot not in ids
    assert tok.decode(ids) == f"a{EOT}b<|pad|>"


def test_bpe_token_str_is_readable(bpe):
    assert bpe.token_str(ord("\n")) == "\\n"
    assert bpe.token_str(0xE4) == "<0xE4>"  # a lead byte means nothing on its own
    assert bpe.token_str(ord("a")) == "a"
    newline_merges = [new_id for _, new_id in bpe.merges if bpe.vocab[new_id] == b"\n\n"]
    assert [bpe.token_str(i) for i in newline_merges] == ["\\n\\n"] * len(newline_merges)


def test_bpe_decode_partial_utf8_and_tensors(bpe):
    first_byte = "你".encode("utf-8")[:1]
    assert bpe.decode_bytes(list(first_byte)) == first_byte
    assert bpe.decode(list(first_byte)) == "\ufffd"
    ids = bpe.encode(MULTILINGUAL)
    assert bpe.decode(torch.tensor(ids)) == MULTILINGUAL


def test_bpe_decode_errors(bpe):
    with pytest.raises(TokenizerError, match="out of range"):
        bpe.decode([1, bpe.vocab_size])
    with pytest.raises(TokenizerError, match="out of range"):
        bpe.decode([-1])
    with pytest.raises(TokenizerError, match="1-D"):
        bpe.decode([[1, 2]])
    with pytest.raises(TokenizerError, match="single id"):
        bpe.decode(5)
    with pytest.raises(TokenizerError, match="surrogate"):
        bpe.encode("ok \ud800")


def test_split_gives_the_chunks_that_merges_stay_inside(bpe):
    text = "Hello world, it's 2024!\n  ok"
    chunks = bpe.split(text)
    assert "".join(chunks) == text and len(chunks) > 5
    assert [i for c in chunks for i in bpe.encode(c)] == bpe.encode(text)


def test_custom_pattern_never_loses_text():
    tok = BPETokenizer(pattern=r"[a-z]+")  # matches only lowercase words; the rest is kept as chunks
    text = "Hi there, 世界!"
    assert tok.decode(tok.encode(text)) == text


def test_constructor_checks_merges():
    with pytest.raises(ValueError, match="must make 256"):
        BPETokenizer([((1, 2), 300)])
    with pytest.raises(ValueError, match="only ids below"):
        BPETokenizer([((1, 999), 256)])


# ----------------------------------------------------------------------------- BPE files

def test_bpe_save_load_round_trip(bpe, tmp_path):
    path = bpe.save(tmp_path / "sub" / "bpe.json")
    stored = json.loads(path.read_text())
    assert stored["type"] == "BPETokenizer" and stored["merges"][0] == list(bpe.merges[0][0])
    for loaded in (BPETokenizer.load(path), load_tokenizer(path), tokenizer_from_dict(bpe.to_dict())):
        assert isinstance(loaded, BPETokenizer)
        assert loaded.merges == bpe.merges and loaded.special_tokens == bpe.special_tokens
        assert loaded.pattern == bpe.pattern and loaded.vocab == bpe.vocab
        assert loaded.encode(MULTILINGUAL + EOT) == bpe.encode(MULTILINGUAL + EOT)


def test_loading_something_else_is_a_clear_error(bpe, tmp_path):
    cases = {
        "binary.pt": b"\x80\x02\x8a\nl\xfc\x9cF\xf9 j\xa8P\x19.",
        "notes.txt": b"not json at all",
        "other.json": json.dumps({"vocab_size": 65}).encode(),
        "future.json": json.dumps({**bpe.to_dict(), "version": 99}).encode(),
        "broken.json": json.dumps({**bpe.to_dict(), "merges": [[1, 2, 3]]}).encode(),
        "list.json": b"[1, 2, 3]",
    }
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(TokenizerError, match=re.escape(name)):
            load_tokenizer(tmp_path / name)
    path = bpe.save(tmp_path / "bpe.json")
    with pytest.raises(TokenizerError, match="load_tokenizer"):
        CharTokenizer.load(path)
