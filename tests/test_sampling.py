"""Tests for minigpt.sampling: the knobs on hand-made logits, distributions, seeds, stops,
streaming, the KV cache past block_size, and beam search against exhaustive search."""

import itertools
import math

import pytest
import torch
import torch.nn as nn
from torch.nn import functional as F

import minigpt as mg
from minigpt.model import GPTOutput
from minigpt.beam import Beam, BeamSearchResult, BeamStep, beam_search
from minigpt.sampling import (
    apply_repetition_penalty, apply_temperature, generate, next_token_distribution, stream, top_k_filter,
    top_p_filter, trace_generation,
)


# ------------------------------------------------------------------ small things to test with

class CharTok:
    """One token per character of a fixed alphabet (the tokenizer interface, nothing more)."""

    def __init__(self, chars, special_tokens=None):
        self.chars = list(chars)
        self.index = {c: i for i, c in enumerate(self.chars)}
        self.special_tokens = dict(special_tokens or {})
        self.vocab_size = len(self.chars)

    def encode(self, text):
        unknown = sorted(set(text) - set(self.index))
        if unknown:
            raise ValueError(f"unknown characters {unknown}")
        return [self.index[c] for c in text]

    def decode(self, ids):
        ids = ids.tolist() if isinstance(ids, torch.Tensor) else ids
        return "".join(self.chars[i] for i in ids)

    def token_str(self, i):
        return repr(self.chars[i])[1:-1]


class ByteTok:
    """Byte-level: one token per byte, so a character like '中' takes three tokens."""

    vocab_size = 256
    special_tokens = {}

    def encode(self, text):
        return list(text.encode("utf-8"))

    def decode(self, ids):
        return bytes(ids).decode("utf-8", errors="replace")

    def token_str(self, i):
        return chr(i) if 32 <= i < 127 else f"<0x{i:02X}>"


class ChainModel(nn.Module):
    """A deterministic bigram 'model': the next token is next_of[last token], with certainty.
    Speaks the GPT interface (config, device, past_key_values) so the sampler can drive it."""

    def __init__(self, next_of: dict, vocab_size: int, block_size: int = 64, scores: dict = None):
        super().__init__()
        self.config = mg.GPTConfig(vocab_size=vocab_size, block_size=block_size, n_layer=1, n_head=1, n_embd=1)
        table = torch.full((vocab_size, vocab_size), -10.0)
        for a, b in next_of.items():
            table[a, b] = 10.0
        for (a, b), score in (scores or {}).items():  # logit of b after a
            table[a, b] = score
        self.register_buffer("table", table)

    @property
    def device(self):
        return self.table.device

    def forward(self, idx, past_key_values=None, use_cache=False):
        P = 0 if past_key_values is None else past_key_values[0][0].size(2)
        assert P + idx.size(1) <= self.config.block_size
        kv = torch.zeros(idx.size(0), 1, P + idx.size(1), 1)
        return GPTOutput(logits=self.table[idx], past_key_values=[(kv, kv)] if use_cache else None)


def chain_over(tok, text):
    """ChainModel that, after each character of text, says the next one (cyclically)."""
    ids = tok.encode(text)
    return ChainModel({a: b for a, b in zip(ids, ids[1:] + ids[:1])}, tok.vocab_size)


ALPHABET = "abcdefghij \n"


def random_gpt(vocab_size=len(ALPHABET), block_size=16, seed=0):
    """A tiny GPT with weights wide enough that its distributions are far from uniform."""
    torch.manual_seed(seed)
    model = mg.GPT(mg.GPTConfig(vocab_size=vocab_size, block_size=block_size, n_layer=2, n_head=2, n_embd=16))
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1:
                p.normal_(0, 0.5)
    return model.eval()


@pytest.fixture
def tok():
    return CharTok(ALPHABET)


@pytest.fixture
def model():
    return random_gpt()


def greedy_by_recomputing(model, ids, n):
    """The reference: recompute the whole cropped context for every new token."""
    ids = list(ids)
    with torch.no_grad():
        for _ in range(n):
            logits = model(torch.tensor([ids[-model.config.block_size:]])).logits[0, -1]
            ids.append(int(logits.argmax()))
    return ids


# ------------------------------------------------------------------ the knobs on hand-made logits

def test_temperature_divides_logits_and_zero_keeps_only_the_argmax():
    logits = torch.tensor([1.0, 3.0, 2.0])
    torch.testing.assert_close(apply_temperature(logits, 2.0), torch.tensor([0.5, 1.5, 1.0]))
    torch.testing.assert_close(apply_temperature(logits, 1.0), logits)
    greedy = apply_temperature(logits, 0)
    assert torch.equal(F.softmax(greedy, -1), torch.tensor([0.0, 1.0, 0.0]))

    def entropy(t):
        p = F.softmax(apply_temperature(logits, t), -1)
        return float(-(p * p.log()).sum())
    assert entropy(0.5) < entropy(1.0) < entropy(2.0) < math.log(3)


def test_top_k_keeps_exactly_the_k_largest_in_each_row():
    logits = torch.tensor([[1.0, 5.0, 3.0, 2.0], [4.0, 0.0, 1.0, 2.0]])
    out = top_k_filter(logits, 2)
    assert torch.isfinite(out).tolist() == [[False, True, True, False], [True, False, False, True]]
    assert out[0, 1] == 5.0 and out[1, 3] == 2.0  # kept logits are unchanged
    assert torch.equal(top_k_filter(logits, 4), logits) and torch.equal(top_k_filter(logits, 99), logits)
    assert torch.isfinite(top_k_filter(torch.randn(2, 3, 7), 3)).sum(-1).eq(3).all()  # any leading shape


def test_top_p_keeps_the_smallest_set_reaching_p():
    probs = torch.tensor([0.125, 0.5, 0.125, 0.25])  # sorted: 0.5, 0.25, 0.125, 0.125
    logits = probs.log()
    kept = lambda p: torch.isfinite(top_p_filter(logits, p)).nonzero().flatten().tolist()
    assert kept(0.01) == [1]            # the top token is always kept
    assert kept(0.4) == [1]             # 0.5 alone reaches 0.4
    assert kept(0.6) == [1, 3]          # 0.5 + 0.25 = 0.75 is the first to reach 0.6
    assert sorted(kept(0.8)) == [0, 1, 3] or sorted(kept(0.8)) == [1, 2, 3]  # ties: either 0.125
    assert len(kept(0.8)) == 3
    assert kept(1.0) == [0, 1, 2, 3]
    rows = torch.stack([logits, logits.flip(0)])  # batched rows are filtered separately
    assert torch.isfinite(top_p_filter(rows, 0.6)).tolist() == [[False, True, False, True],
                                                                 [True, False, True, False]]


def test_repetition_penalty_divides_positive_and_multiplies_negative_seen_logits():
    logits = torch.tensor([2.0, -1.0, 0.5, 3.0])
    before = logits.clone()
    out = apply_repetition_penalty(logits, [0, 1, 1], 2.0)  # repeats count once
    torch.testing.assert_close(out, torch.tensor([1.0, -2.0, 0.5, 3.0]))
    assert torch.equal(logits, before)  # the input is left alone
    assert torch.equal(apply_repetition_penalty(logits, [0, 1], 1.0), logits)
    assert torch.equal(apply_repetition_penalty(logits, [], 2.0), logits)
    # one row of seen ids per row of logits (as for a batch of beams)
    rows = torch.tensor([[2.0, 2.0, 2.0], [-2.0, -2.0, -2.0]])
    out = apply_repetition_penalty(rows, torch.tensor([[0], [2]]), 4.0)
    torch.testing.assert_close(out, torch.tensor([[0.5, 2.0, 2.0], [-2.0, -2.0, -8.0]]))
    with pytest.raises(ValueError, match=r"token ids in \[0, 4\)"):
        apply_repetition_penalty(logits, [4], 2.0)


@pytest.mark.parametrize("call, match", [
    (lambda x: apply_temperature(x, -0.5), r"temperature.*>= 0"),
    (lambda x: apply_temperature(x, float("nan")), "temperature"),
    (lambda x: top_k_filter(x, 0), r"top_k.*positive"),
    (lambda x: top_k_filter(x, 1.5), "top_k"),
    (lambda x: top_p_filter(x, 0.0), r"top_p.*\(0, 1\]"),
    (lambda x: top_p_filter(x, 1.01), "top_p"),
    (lambda x: apply_repetition_penalty(x, [0], 0.0), r"repetition_penalty.*> 0"),
])
def test_knobs_reject_values_outside_their_range(call, match):
    with pytest.raises(ValueError, match=match):
        call(torch.zeros(4))


# ------------------------------------------------------------------ bad input to the generators

@pytest.mark.parametrize("kwargs, match", [
    (dict(temperature=-1), r"temperature.*>= 0"),
    (dict(top_p=0), r"top_p.*\(0, 1\]"),
    (dict(top_p=1.5), r"top_p.*\(0, 1\]"),
    (dict(top_k=0), r"top_k.*positive"),
    (dict(repetition_penalty=0), r"repetition_penalty.*> 0"),
    (dict(repetition_penalty=-1.2), "repetition_penalty"),
    (dict(max_new_tokens=-1), r"max_new_tokens.*>= 0"),
    (dict(seed="zero"), "seed"),
    (dict(stop=""), r"non-empty.*token id"),
    (dict(stop=[3.5]), r"non-empty.*token id"),
    (dict(stop=999), r"token id in \[0, 12\)"),
])
def test_generate_and_stream_reject_bad_arguments_at_once(model, tok, kwargs, match):
    with pytest.raises(ValueError, match=match):
        generate(model, tok, "ab", **kwargs)
    with pytest.raises(ValueError, match=match):
        stream(model, tok, "ab", **kwargs)  # raised at the call, not at the first next()


@pytest.mark.parametrize("kwargs, match", [
    (dict(beam_width=0), r"beam_width.*>= 1"),
    (dict(max_new_tokens=-3), "max_new_tokens"),
    (dict(length_penalty=float("nan")), "length_penalty"),
    (dict(repetition_penalty=0), "repetition_penalty"),
])
def test_beam_search_rejects_bad_arguments(model, tok, kwargs, match):
    with pytest.raises(ValueError, match=match):
        beam_search(model, tok, "ab", **kwargs)


def test_empty_prompt_is_an_error_unless_the_tokenizer_has_endoftext(model, tok):
    for call in (generate, beam_search, next_token_distribution):
        with pytest.raises(ValueError, match=r"prompt is empty"):
            call(model, tok, "")
    with pytest.raises(ValueError, match=r"prompt.*string.*token ids"):
        generate(model, tok, 3.0)
    with pytest.raises(ValueError, match=r"out of range.*vocab_size"):
        generate(model, tok, [0, 50])
    bos_tok = CharTok(ALPHABET, special_tokens={"<|endoftext|>": ALPHABET.index("\n")})
    assert generate(model, bos_tok, "", max_new_tokens=8, temperature=0) == \
        generate(model, bos_tok, "\n", max_new_tokens=8, temperature=0)


def test_unknown_characters_in_the_prompt_raise_the_tokenizers_error(model, tok):
    with pytest.raises(ValueError, match="unknown characters"):
        generate(model, tok, "XYZ")


# ------------------------------------------------------------------ one step, stage by stage

def test_next_token_distribution_stages_are_probabilities(model, tok):
    d = next_token_distribution(model, tok, "abc", temperature=0.7, top_k=5, top_p=0.8, repetition_penalty=1.3)
    V = tok.vocab_size
    for stage in ("raw", "after_penalty", "after_temperature", "after_top_k", "after_top_p", "final"):
        p = getattr(d, stage)
        assert p.shape == (V,) and p.dtype == torch.float32 and p.device.type == "cpu"
        assert float(p.sum()) == pytest.approx(1.0, abs=1e-5) and (p >= 0).all()
    with torch.no_grad():
        logits = model(torch.tensor([tok.encode("abc")])).logits[0, -1]
    torch.testing.assert_close(d.logits, logits)
    torch.testing.assert_close(d.raw, F.softmax(logits, -1))
    assert (d.after_top_k > 0).sum() == 5
    assert (d.final > 0).sum() <= 5
    assert d.final is d.after_top_p
    seen = tok.encode("abc")  # the penalty moves probability away from the seen tokens
    assert d.after_penalty[seen].sum() < d.raw[seen].sum()


def test_next_token_distribution_top_and_greedy(model, tok):
    d = next_token_distribution(model, tok, "ab\nc")
    top = d.top(3)
    assert [i for _, i, _ in top] == d.final.topk(3).indices.tolist()
    assert [p for _, _, p in top] == sorted((p for _, _, p in top), reverse=True)
    assert all(s == tok.token_str(i) for s, i, _ in top)
    assert len(d.top(100)) == tok.vocab_size
    with pytest.raises(ValueError, match=r"stage.*final"):
        d.top(3, stage="after_softmax")
    greedy = next_token_distribution(model, tok, "ab\nc", temperature=0)
    assert float(greedy.final.max()) == 1.0 and int(greedy.final.argmax()) == int(greedy.raw.argmax())
    torch.testing.assert_close(greedy.raw, d.raw)


# ------------------------------------------------------------------ generation

def test_same_seed_same_text_and_global_rng_untouched(model, tok):
    state = torch.get_rng_state()
    a = generate(model, tok, "abc", max_new_tokens=30, temperature=1.5, seed=7)
    b = generate(model, tok, "abc", max_new_tokens=30, temperature=1.5, seed=7)
    c = generate(model, tok, "abc", max_new_tokens=30, temperature=1.5, seed=8)
    assert torch.equal(torch.get_rng_state(), state)
    assert a == b and a != c
    assert len(a) == 30 and set(a) <= set(ALPHABET)


def test_stream_yields_one_piece_per_token_and_matches_generate(model, tok):
    kwargs = dict(max_new_tokens=25, temperature=0.9, top_k=6, top_p=0.95, repetition_penalty=1.1, seed=3)
    pieces = list(stream(model, tok, "hi", **kwargs))
    assert len(pieces) == 25 and all(len(p) == 1 for p in pieces)
    assert "".join(pieces) == generate(model, tok, "hi", **kwargs)


def test_kv_cache_gives_exactly_the_tokens_of_recomputing_past_block_size(tok):
    for seed in range(3):
        model = random_gpt(block_size=16, seed=seed)
        prompt = "abcabc"
        reference = greedy_by_recomputing(model, tok.encode(prompt), 40)[len(prompt):]
        cached = generate(model, tok, prompt, max_new_tokens=40, temperature=0, use_cache=True)
        uncached = generate(model, tok, prompt, max_new_tokens=40, temperature=0, use_cache=False)
        assert tok.encode(cached) == reference
        assert cached == uncached
    # sampling too: the same seed draws the same tokens with and without the cache
    kwargs = dict(max_new_tokens=40, temperature=1.0, seed=11)
    assert generate(model, tok, "ab", use_cache=True, **kwargs) == generate(model, tok, "ab", use_cache=False, **kwargs)


def test_long_prompt_is_cropped_to_block_size(model, tok):
    long_prompt = "abcdefghij abcdefghij abcdefghij"  # 32 characters, block_size is 16
    out = generate(model, tok, long_prompt, max_new_tokens=10, temperature=0)
    assert out == generate(model, tok, long_prompt[-16:], max_new_tokens=10, temperature=0)
    d = next_token_distribution(model, tok, long_prompt)
    torch.testing.assert_close(d.raw, next_token_distribution(model, tok, long_prompt[-16:]).raw)


def test_generate_accepts_token_ids_and_zero_new_tokens(model, tok):
    ids = tok.encode("abc")
    assert generate(model, tok, ids, max_new_tokens=6, temperature=0) == \
        generate(model, tok, torch.tensor(ids), max_new_tokens=6, temperature=0) == \
        generate(model, tok, "abc", max_new_tokens=6, temperature=0)
    assert generate(model, tok, "abc", max_new_tokens=0) == ""


def test_training_mode_is_restored_and_dropout_is_off_while_generating(tok):
    torch.manual_seed(0)
    model = mg.GPT(mg.GPTConfig(vocab_size=len(ALPHABET), block_size=16, n_layer=1, n_head=2,
                                n_embd=16, dropout=0.5))
    expected = generate(model.eval(), tok, "ab", max_new_tokens=12, temperature=0)
    model.train()
    assert generate(model, tok, "ab", max_new_tokens=12, temperature=0) == expected
    assert model.training
    assert torch.is_grad_enabled()


def test_repetition_penalty_steers_greedy_away_from_seen_tokens(tok):
    a, b, c = tok.encode("abc")
    scores = {(a, b): 2.0, (a, c): 1.0, (b, a): 2.0, (b, c): 1.0, (c, a): 2.0, (c, b): 1.5}
    model = ChainModel({}, tok.vocab_size, scores=scores)
    assert generate(model, tok, "a", max_new_tokens=6, temperature=0) == "bababa"
    # after "ab" a's logit 2 becomes 2/3 < c's 1; after "abc" a (2/3) beats b (1.5/3)
    assert generate(model, tok, "a", max_new_tokens=4, temperature=0, repetition_penalty=3.0) == "bcab"


# ------------------------------------------------------------------ stops

def test_stop_strings_end_generation_and_are_not_returned(tok):
    model = chain_over(tok, "hi abc\n")
    assert generate(model, tok, "h", max_new_tokens=20, temperature=0) == "i abc\nhi abc\nhi abc\n"
    assert generate(model, tok, "h", max_new_tokens=20, temperature=0, stop="\n") == "i abc"
    assert generate(model, tok, "h", max_new_tokens=20, temperature=0, stop=["zz", "bc"]) == "i a"
    assert generate(model, tok, "h", max_new_tokens=20, temperature=0, stop=tok.encode(" ")) == "i"
    assert generate(model, tok, "h", max_new_tokens=20, temperature=0, stop="c\nh") == "i ab"
    # only the new text is searched: the prompt's own "hi" does not stop it at once
    assert generate(model, tok, "hi", max_new_tokens=20, temperature=0, stop="hi") == " abc\n"


def test_stream_holds_back_a_possible_stop_string_and_matches_generate(tok):
    model = chain_over(tok, "hi abc\n")
    pieces = list(stream(model, tok, "h", max_new_tokens=20, temperature=0, stop="c\nx"))
    assert "".join(pieces) == generate(model, tok, "h", max_new_tokens=20, temperature=0, stop="c\nx")
    assert "".join(pieces) == "i abc\nhi abc\nhi abc\n"  # "c\n" looked like the stop, then was not
    assert pieces[:4] == ["i", " ", "a", "b"] and pieces[4] == "c\nh"  # "c\n" waited until "h" ruled out "c\nx"


def test_stream_holds_incomplete_utf8_until_the_character_is_whole():
    tok = ByteTok()
    a, b = tok.encode("a")[0], tok.encode("b")[0]
    zhong = tok.encode("中")  # three bytes
    model = ChainModel({a: zhong[0], zhong[0]: zhong[1], zhong[1]: zhong[2], zhong[2]: b, b: a}, 256)
    pieces = list(stream(model, tok, "a", max_new_tokens=10, temperature=0))
    assert pieces == ["中", "b", "a", "中", "b", "a"]
    cut = list(stream(model, tok, "a", max_new_tokens=2, temperature=0))  # stops mid-character
    assert cut == ["\ufffd"]


# ------------------------------------------------------------------ beam search

def sequence_logprob(model, prompt_ids, new_ids):
    """Sum of log p(new token | everything before it), recomputing the cropped window."""
    ids, total = list(prompt_ids), 0.0
    with torch.no_grad():
        if len(ids) + len(new_ids) <= model.config.block_size:  # it all fits: one forward
            logp = F.log_softmax(model(torch.tensor([ids + list(new_ids)])).logits[0], -1)
            return sum(float(logp[len(ids) - 1 + i, t]) for i, t in enumerate(new_ids))
        for t in new_ids:
            logits = model(torch.tensor([ids[-model.config.block_size:]])).logits[0, -1]
            total += float(F.log_softmax(logits, -1)[t])
            ids.append(t)
    return total


def test_beam_width_one_is_greedy(model, tok):
    assert beam_search(model, tok, "abc", beam_width=1, max_new_tokens=30).text == \
        generate(model, tok, "abc", max_new_tokens=30, temperature=0)


def test_beams_are_sorted_and_their_scores_are_what_they_say(model, tok):
    beams = beam_search(model, tok, "ab", beam_width=4, max_new_tokens=12, length_penalty=0.7).beams
    assert len(beams) == 4 and all(isinstance(b, Beam) for b in beams)
    assert [b.score for b in beams] == sorted((b.score for b in beams), reverse=True)
    result = beam_search(model, tok, "ab", beam_width=4, max_new_tokens=12, length_penalty=0.7)
    assert isinstance(result, BeamSearchResult) and result.tree is None
    assert result.text == result.best.text == beams[0].text
    for b in beams:
        assert len(b.ids) == 12 and b.text == tok.decode(b.ids) and not b.finished
        assert b.score == pytest.approx(b.logprob / 12 ** 0.7)
        assert b.logprob == pytest.approx(sequence_logprob(model, tok.encode("ab"), b.ids), abs=1e-4)
    assert len({tuple(b.ids) for b in beams}) == 4


def test_beam_search_past_block_size_scores_the_real_sequences(tok):
    model = random_gpt(block_size=8, seed=1)
    beams = beam_search(model, tok, "abcde", beam_width=3, max_new_tokens=12).beams
    for b in beams:  # the cache is re-prefilled on the cropped windows once they slide
        assert b.logprob == pytest.approx(sequence_logprob(model, tok.encode("abcde"), b.ids), abs=1e-4)
    assert beams[0].logprob >= sequence_logprob(
        model, tok.encode("abcde"), tok.encode(generate(model, tok, "abcde", max_new_tokens=12, temperature=0))) - 1e-4


def test_wide_beam_search_finds_the_most_likely_sequence_by_exhaustive_search():
    tok = CharTok("abcde")
    model = random_gpt(vocab_size=5, block_size=16, seed=2)
    prompt = tok.encode("ab")
    every = torch.tensor([prompt + list(seq) for seq in itertools.product(range(5), repeat=3)])  # [125, 5]
    with torch.no_grad():
        logp = F.log_softmax(model(every).logits, -1)  # [125, 5, V]
    totals = logp[:, 1:-1].gather(-1, every[:, 2:, None]).squeeze(-1).sum(-1)  # [125]
    ranked = sorted(zip((tuple(r[2:]) for r in every.tolist()), totals.tolist()), key=lambda kv: kv[1], reverse=True)
    # width 25 = 5 ** 2 keeps every 2-token prefix, so step 3 looks at all 125 sequences
    beams = beam_search(model, tok, "ab", beam_width=25, max_new_tokens=3, length_penalty=0.0).beams
    assert tuple(beams[0].ids) == ranked[0][0]
    torch.testing.assert_close(torch.tensor([b.logprob for b in beams]),
                               torch.tensor([lp for _, lp in ranked[:25]]), atol=1e-4, rtol=0)
    assert all(b.score == b.logprob for b in beams)  # length_penalty 0 ranks by total log-probability


def test_beam_search_stops_and_early_exit(tok):
    model = chain_over(tok, "hi abc\n")
    beams = beam_search(model, tok, "h", beam_width=3, max_new_tokens=30, stop="\n").beams
    assert beams[0].text == "i abc" and beams[0].finished
    assert tok.decode(beams[0].ids) == "i abc\n"  # the stop token is in ids, not in text
    empty = beam_search(model, tok, "h", beam_width=3, max_new_tokens=0)
    assert empty.text == "" and [b.ids for b in empty.beams] == [[]]


def test_beam_search_tree_records_candidates_and_kept_beams(model, tok):
    result = beam_search(model, tok, "ab", beam_width=3, max_new_tokens=5, record_tree=True)
    beams, tree = result.beams, result.tree
    assert len(tree) == 5 and all(isinstance(s, BeamStep) for s in tree)
    assert len(tree[0].beams) == 3 and {c.parent for c in tree[0].candidates} == {0}
    for prev, step in zip(tree, tree[1:]):
        assert all(0 <= c.parent < len(prev.beams) for c in step.candidates)
        for c in step.candidates:
            parent = prev.candidates[prev.beams[c.parent]]
            assert c.total_logprob == pytest.approx(parent.total_logprob + c.logprob, abs=1e-5)
    for step in tree:
        kept = [step.candidates[i] for i in step.beams]
        assert all(c.status == "kept" for c in kept)
        assert [c.total_logprob for c in kept] == sorted((c.total_logprob for c in kept), reverse=True)
        assert sum(c.status == "kept" for c in step.candidates) == len(step.beams)
        assert {c.token for c in step.candidates} <= {tok.token_str(i) for i in range(tok.vocab_size)}
    # follow the best beam back through the tree: it spells its own ids
    best = tree[-1].candidates[tree[-1].beams[0]]
    assert best.total_logprob == pytest.approx(beams[0].logprob)
    ids, node, depth = [], best, len(tree) - 1
    while True:
        ids.append(node.token_id)
        if depth == 0:
            break
        prev = tree[depth - 1]
        node, depth = prev.candidates[prev.beams[node.parent]], depth - 1
    assert ids[::-1] == beams[0].ids


def test_trace_generation_follows_generate_and_keeps_each_distribution(model, tok):
    kwargs = dict(max_new_tokens=8, temperature=0.8, top_k=5, seed=4)
    steps = trace_generation(model, tok, "ab", **kwargs)
    assert "".join(tok.decode([s.token_id]) for s in steps) == generate(model, tok, "ab", **kwargs)
    for s in steps:
        assert float(s.distribution.final.sum()) == pytest.approx(1.0, abs=1e-5)
        assert s.distribution.final[s.token_id] > 0 and s.token == tok.token_str(s.token_id)
    first = next_token_distribution(model, tok, "ab", temperature=0.8, top_k=5)
    torch.testing.assert_close(steps[0].distribution.final, first.final)


# ------------------------------------------------------------------ with the course's tokenizer

def test_generate_with_char_tokenizer():
    text = "to be or not to be\nthat is the question\n"
    tok = mg.CharTokenizer.from_text(text)
    model = random_gpt(vocab_size=tok.vocab_size, block_size=16, seed=5)
    pieces = list(stream(model, tok, "to be", max_new_tokens=20, temperature=0.9, seed=1))
    assert len(pieces) == 20 and "".join(pieces) == generate(model, tok, "to be", max_new_tokens=20,
                                                                 temperature=0.9, seed=1)
    with pytest.raises(mg.TokenizerError):
        generate(model, tok, "XYZ")
    d = next_token_distribution(model, tok, "to be")
    assert [s for s, _, _ in d.top(3)] == [tok.token_str(i) for _, i, _ in d.top(3)]


def test_beam_search_with_char_tokenizer_and_stop():
    tok = mg.CharTokenizer.from_text("ab\n")
    model = random_gpt(vocab_size=tok.vocab_size, block_size=16, seed=6)
    beams = beam_search(model, tok, "ab", beam_width=3, max_new_tokens=10, stop="\n").beams
    assert all("\n" not in b.text for b in beams)
    assert [b.score for b in beams] == sorted((b.score for b in beams), reverse=True)


def test_stream_with_byte_level_bpe_decodes_like_the_whole_text():
    text = "一个中文句子。English words too. 中文和英文。" * 4
    tok = mg.BPETokenizer.train(text, vocab_size=290)  # fewer merges than the text offers
    model = random_gpt(vocab_size=tok.vocab_size, block_size=16, seed=7)
    kwargs = dict(max_new_tokens=30, temperature=1.0, seed=2)
    pieces = list(stream(model, tok, "中文", **kwargs))
    ids = [s.token_id for s in trace_generation(model, tok, "中文", **kwargs)]
    assert "".join(pieces) == tok.decode(ids) == generate(model, tok, "中文", **kwargs)
    assert all(pieces)
    # an empty prompt starts from <|endoftext|>, which BPETokenizer.train adds
    assert generate(model, tok, "", max_new_tokens=5, temperature=0) == \
        generate(model, tok, [tok.special_tokens["<|endoftext|>"]], max_new_tokens=5, temperature=0)


def test_next_token_distribution_repr_is_a_short_summary(model, tok):
    text = repr(next_token_distribution(model, tok, "abc", top_k=3))
    assert text.startswith("NextTokenDistribution(V=12, 3 tokens possible, top ") and len(text) < 200


# ------------------------------------------------------------------ beam search driven by a step function

def test_search_with_a_step_function_that_recomputes_equals_beam_search(model, tok):
    """The search is the same for any model: a step function without a cache (the whole window
    every step, as an encoder-decoder model without one would) finds the same beams."""
    from minigpt.beam import search
    from minigpt.sampling import Stops

    calls = []

    def recompute(seqs, state, parents):
        calls.append((seqs.clone(), state, None if parents is None else parents.clone()))
        return model(seqs[:, -model.config.block_size:]).logits[:, -1], len(calls)

    kwargs = dict(beam_width=3, max_new_tokens=10, length_penalty=0.5, repetition_penalty=1.3)
    want = beam_search(model, tok, "ab\n", stop="\n", **kwargs)
    got = search(recompute, tok, tok.encode("ab\n"), stops=Stops.parse("\n", tok.vocab_size), **kwargs)
    assert [(b.ids, b.text, b.finished) for b in got.beams] == [(b.ids, b.text, b.finished) for b in want.beams]
    torch.testing.assert_close(torch.tensor([b.score for b in got.beams]), torch.tensor([b.score for b in want.beams]))
    # what the step function is given: the state it returned, and the parents each row extends
    assert calls[0][1] is None and calls[0][2] is None and calls[0][0].tolist() == [tok.encode("ab\n")]
    for i, ((seqs, state, parents), (prev, _, _)) in enumerate(zip(calls[1:], calls), start=1):
        assert state == i and seqs.size(1) == prev.size(1) + 1
        assert torch.equal(seqs[:, :-1], prev[parents])  # each beam extends the row its parent names


def test_stream_leaves_autograd_and_training_mode_alone_between_pieces(tok):
    torch.manual_seed(0)
    model = mg.GPT(mg.GPTConfig(vocab_size=len(ALPHABET), block_size=16, n_layer=1, n_head=2, n_embd=16,
                                dropout=0.5)).train()
    for _ in stream(model, tok, "ab", max_new_tokens=5, temperature=0):
        assert torch.is_grad_enabled() and not torch.is_inference_mode_enabled() and model.training


def test_beam_search_with_a_llama_style_model_reorders_its_kv_cache(tok):
    """Rotary positions and grouped-query attention: the preallocated cache follows the beams."""
    from minigpt.beam import search

    torch.manual_seed(3)
    model = mg.GPT(mg.GPTConfig(vocab_size=len(ALPHABET), block_size=12, n_layer=2, n_head=4, n_kv_head=2, n_embd=16,
                                norm="rmsnorm", positions="rope", mlp="swiglu", bias=False, tie_weights=False)).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.5)

    def recompute(seqs, state, parents):
        return model(seqs[:, -model.config.block_size:]).logits[:, -1], None

    for n in (6, 15):  # within the window, and past it
        want = search(recompute, tok, tok.encode("abc"), beam_width=3, max_new_tokens=n)
        got = beam_search(model, tok, "abc", beam_width=3, max_new_tokens=n)
        assert [b.ids for b in got.beams] == [b.ids for b in want.beams]
        torch.testing.assert_close(torch.tensor([b.logprob for b in got.beams]),
                                   torch.tensor([b.logprob for b in want.beams]), atol=1e-4, rtol=0)
