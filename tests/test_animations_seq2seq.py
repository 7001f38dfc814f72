"""The sequence-to-sequence scenes (EncoderDecoder, TeacherForcing): the numbers they draw are the
shipped encoder–decoder's own, computed here a second way.
Their renders are tested with every other scene in test_animations.py."""

import importlib
import importlib.util
import os
import sys
from pathlib import Path

import pytest
import torch

import minigpt as mg
from minigpt.dialogue_pairs import make_pairs
from minigpt.seq2seq import greedy_reply, load_seq2seq

REPO = Path(__file__).resolve().parent.parent
ANIMATIONS = REPO / "animations"


def _import(name: str):
    sys.path.insert(0, str(ANIMATIONS))  # what manim does for the scene it renders
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(ANIMATIONS))


@pytest.fixture(scope="module")
def numbers():
    return _import("numbers_seq2seq")


@pytest.fixture(scope="module")
def reference(numbers):
    """The model loaded on its own, as a learner loads it (another copy than the scenes' one)."""
    override = os.environ.get("MINIGPT_ANIMATION_SEQ2SEQ_WEIGHTS")
    model, tok = load_seq2seq(override) if override else mg.pretrained.load(numbers.MODEL_NAME)
    return model.eval(), tok


def _decoder_probs(model, src_ids, decoder_input):
    with torch.no_grad():
        return torch.softmax(model(torch.tensor([src_ids]), torch.tensor([decoder_input])).logits[0], dim=-1)


def test_the_question_is_held_out_and_its_reply_is_the_one_that_followed(numbers):
    test_pairs = make_pairs(mg.data.load_dialogues("dailydialog", "test"))
    assert (numbers.QUESTION, numbers.true_reply()) in {(c[-1], r) for c, r in test_pairs}
    with pytest.raises(ValueError, match="test split"):
        numbers.true_reply("A question nobody in DailyDialog ever asked?")


def test_cross_attention_on_screen_is_the_models(numbers, reference):
    d = numbers.cross_attention_numbers()
    model, tok = reference
    src_ids = tok.encode(d["question"], allowed_special="none")
    reply = greedy_reply(model, src_ids, 32)
    eos = model.config.eos_id
    assert d["reply_tokens"] == [("<eos>" if i == eos else tok.token_str(i)) for i in reply]
    assert d["src_tokens"] == [tok.token_str(i) for i in src_ids]
    with torch.no_grad():
        out = model(torch.tensor([src_ids]), torch.tensor([[model.config.sos_id] + reply[:-1]]), return_attention=True)
    cross = out.cross_attentions[-1][0, d["head"]]                       # [T, S]
    torch.testing.assert_close(torch.tensor(d["cross"]), cross, atol=1e-5, rtol=0)
    torch.testing.assert_close(cross.sum(-1), torch.ones(len(reply)))
    # the number the first step's caption shows: the largest weight of the first row, in percent
    shown = max(d["cross"][0])
    assert f"{100 * shown:.0f}%" == f"{100 * float(cross[0].max()):.0f}%"
    probs = torch.softmax(out.logits[0], dim=-1)
    assert d["probs"][0] == pytest.approx(float(probs[0, reply[0]]), abs=1e-5)
    # the chosen head looks most sharply: the lowest mean entropy of the last layer's heads
    heads = out.cross_attentions[-1][0]
    entropy = -(heads.clamp_min(1e-12).log() * heads).sum(-1).mean(-1)
    assert d["head"] == int(entropy.argmin())
    enc = out.encoder_attentions[-1][0, d["encoder"]["head"], d["encoder"]["query"]]
    assert d["encoder"]["after"] == pytest.approx(float(enc[d["encoder"]["query"] + 1:].sum()), abs=1e-5)
    assert d["encoder"]["after"] > 0  # the encoder looks ahead: no causal mask


def test_teacher_forcing_numbers_are_the_models(numbers, reference):
    d = numbers.teacher_forcing_numbers(max_steps=24)
    model, tok = reference
    c = model.config
    src_ids = tok.encode(d["question"], allowed_special="none")
    gold = (tok.encode(d["true_reply"], allowed_special="none") + [c.eos_id])[:24]
    forced = _decoder_probs(model, src_ids, [c.sos_id] + gold[:-1])
    assert d["forced"] == pytest.approx([float(forced[t, g]) for t, g in enumerate(gold)], abs=1e-5)
    own = greedy_reply(model, src_ids, len(gold))
    assert d["own"] == [("<eos>" if i == c.eos_id else tok.token_str(i)) for i in own]
    free = _decoder_probs(model, src_ids, [c.sos_id] + own[:-1])
    for t, g in enumerate(gold):
        if t < len(own) and c.eos_id not in own[:t]:
            assert d["free"][t] == pytest.approx(float(free[t, g]), abs=1e-5)
        else:
            assert d["free"][t] is None  # it had stopped writing
    wrong = [t for t, (g, o) in enumerate(zip(gold, own)) if g != o]
    if wrong:
        assert d["first_mistake"] == wrong[0]
    # the means drawn on screen, from the model's probabilities
    steps = [t for t, p in enumerate(d["free"]) if p is not None]
    assert d["mean_forced"] == pytest.approx(sum(float(forced[t, gold[t]]) for t in steps) / len(steps), abs=1e-5)


def test_one_mistake_numbers_are_the_models(numbers, reference):
    m = numbers.one_mistake_numbers(max_steps=24)
    model, tok = reference
    c = model.config
    show = lambda ids: [("<eos>" if i == c.eos_id else tok.token_str(i)) for i in ids]  # noqa: E731
    src_ids = tok.encode(m["question"], allowed_special="none")
    gold = (tok.encode(m["true_reply"], allowed_special="none") + [c.eos_id])[:24]
    k, wrong = m["at"], m["wrong_id"]
    assert m["prefix"] == show(gold[:k]) and m["right"] == tok.token_str(gold[k]) != m["wrong"]
    assert m["wrong"] == tok.token_str(wrong) and wrong != gold[k]
    corrupted = _decoder_probs(model, src_ids, [c.sos_id] + gold[:k] + [wrong] + gold[k + 1:-1])
    assert m["wrong_next"] == pytest.approx([float(corrupted[t, gold[t]]) for t in range(k + 1, len(gold))], abs=1e-5)
    forced = _decoder_probs(model, src_ids, [c.sos_id] + gold[:-1])
    assert m["wrong_prob"] == pytest.approx(float(forced[k, wrong]), abs=1e-5)
    # its continuations, recomputed without the decoder's cache, one whole pass per token
    for first, name in ((gold[k], "clean_continuation"), (wrong, "wrong_continuation")):
        assert m[name] == show(m[name + "_ids"])
        seq = [c.sos_id] + gold[:k] + [first]
        for s in m[name + "_ids"]:
            assert int(_decoder_probs(model, src_ids, seq)[-1].argmax()) == s
            seq.append(s)
    with pytest.raises(ValueError, match="at must be"):
        numbers.one_mistake_numbers(at=500)


def test_scheduled_sampling_mixes_the_input_as_training_does(numbers, reference):
    model, tok = reference
    c = model.config
    d = numbers.scheduled_sampling_numbers(ratio=0.5, seed=3, max_steps=24)
    assert d["gold_input"][0] == "<sos>" and not d["own"][0]
    assert d["mixed"] == [p if o else g for g, p, o in zip(d["gold_input"], d["predicted"], d["own"])]
    # the model's own scheduled sampling, under the same seed, feeds the same input
    gold = (tok.encode(d["true_reply"], allowed_special="none") + [c.eos_id])[:24]
    tgt = torch.tensor([[c.sos_id] + gold[:-1]])
    src = torch.tensor([tok.encode(d["question"], allowed_special="none")])
    old, c.teacher_forcing_ratio = c.teacher_forcing_ratio, 0.5
    try:
        with torch.no_grad(), torch.random.fork_rng():
            torch.manual_seed(3)
            mixed = model._scheduled_sampling(tgt, model.start(src, use_cache=False))
    finally:
        c.teacher_forcing_ratio = old
    shown = ["<sos>" if i == c.sos_id else "<eos>" if i == c.eos_id else tok.token_str(i) for i in mixed[0].tolist()]
    assert d["mixed"] == shown
    assert [False] + [True] * (len(gold) - 1) == numbers.scheduled_sampling_numbers(ratio=0.0, max_steps=24)["own"]
    assert not any(numbers.scheduled_sampling_numbers(ratio=1.0, max_steps=24)["own"])
    with pytest.raises(ValueError, match="ratio"):
        numbers.scheduled_sampling_numbers(ratio=1.5)


def test_exposure_bias_batch_equals_one_question_at_a_time(numbers):
    d = numbers.exposure_bias(n_pairs=1, max_steps=20, min_reply=12)
    _, tok = numbers.model_and_tokenizer()
    question = next(q for q, r in numbers.held_out_pairs()
                    if numbers.readable(tok, q + r) and len(tok.encode(r, allowed_special="none")) >= 12)
    one = numbers.teacher_forcing_numbers(question, max_steps=20)
    for t, (f, o) in enumerate(zip(one["forced"], one["free"])):
        if o is None:
            assert d["free"][t] is None
        else:
            assert d["forced"][t] == pytest.approx(f, abs=1e-5) and d["free"][t] == pytest.approx(o, abs=1e-5)
    assert d["first_mistake_median"] == (one["first_mistake"] + 1 if one["first_mistake"] is not None else 21)
    many = numbers.exposure_bias(n_pairs=16)
    assert many["n_pairs"] == 16 and 0 < many["mean_free"] < 1 and 0 < many["mean_forced"] < 1


def test_inverse_sigmoid_schedule(numbers):
    r = numbers.inverse_sigmoid_schedule(2000, 100)
    assert r[0] == pytest.approx(100 / 101)
    assert all(a > b for a, b in zip(r, r[1:])) and r[-1] < 0.01
    with pytest.raises(ValueError, match="k must be"):
        numbers.inverse_sigmoid_schedule(10, 0.5)


def test_captions_name_the_models_own_kind_of_token(numbers, reference):
    _, tok = reference
    assert numbers.token_unit() == ("character" if isinstance(tok, mg.CharTokenizer) else "token")
    _, zh = mg.pretrained.load("qa-zh")  # a model whose tokens are characters
    assert isinstance(zh, mg.CharTokenizer) and numbers.token_unit("qa-zh") == "character"
    assert numbers.readable(tok, numbers.QUESTION) and not numbers.readable(zh, "\U0001F600 unseen")


def test_a_cut_reply_is_cut_at_a_token_not_a_character(numbers, reference):
    d = numbers.cross_attention_numbers()
    model, tok = reference
    reply = greedy_reply(model, tok.encode(d["question"], allowed_special="none"), 32)
    words = [i for i in reply if i != model.config.eos_id]
    assert d["reply_text_after"] == [tok.decode(words[:t + 1]) for t in range(len(reply))][:len(reply)]
    assert d["reply_text_after"][-1] == d["reply_text"]


def test_each_model_can_be_replaced_by_a_file(numbers, monkeypatch, tmp_path):
    for name, variable in ((numbers.MODEL_NAME, "MINIGPT_ANIMATION_SEQ2SEQ_WEIGHTS"),
                           (numbers.GRU_NAME, "MINIGPT_ANIMATION_SEQ2SEQ_GRU_WEIGHTS")):
        monkeypatch.setenv(variable, str(tmp_path / "missing.pt"))
        with pytest.raises(FileNotFoundError, match=variable):
            numbers._override(name)
        monkeypatch.delenv(variable)
        assert numbers._override(name) is None


manim_missing = importlib.util.find_spec("manim") is None


@pytest.mark.skipif(manim_missing, reason="manim is not installed")
def test_token_rows_keep_each_step_in_one_column_and_each_word_piece_inside_its_box():
    scene = _import("teacher_forcing")
    rows = [["I", "'m", " going", " to", "<eos>"], ["I", " understand", "?"], ["<sos>", "I", "'m", " not", " to"]]
    drawn = scene.step_rows(rows, [[scene.KEY_COLOR] * len(r) for r in rows], -4.0, (1.0, 0.0, -1.0))
    for row, tokens in zip(drawn, rows):
        assert len(row.boxes) == len(tokens) and abs(row.get_left()[0] + 4.0) < 1e-6
        for box, token in zip(row.boxes, tokens):
            assert box.label.width < box.box.width          # the text fits in its box
        for a, b in zip(row.boxes, row.boxes[1:]):
            assert a.get_right()[0] < b.get_left()[0]        # no two boxes overlap
    for t in range(3):                                      # step t stands at one x in every row
        xs = [row.boxes[t].get_center()[0] for row in drawn]
        assert max(xs) - min(xs) < 1e-6
    # too many steps to read: the rows are cut (steps_that_fit) rather than shrunk beyond MIN_SCALE
    long = [[" understand"] * 40]
    fit = scene.steps_that_fit(long)
    assert 0 < fit < 40
    assert scene.step_rows([long[0][:fit]], [[scene.KEY_COLOR] * fit], 0.0, (0.0,))[0].width <= scene.ROW_WIDTH + 1e-6
