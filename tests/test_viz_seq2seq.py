"""The cross-attention explorer and the chat box of the sequence-to-sequence bots: maps with the
documented shapes whose rows are the steps that wrote each answer token, pictures that change
with the controls, clear errors after bad input, and a PNG for static viewers."""

import base64

import numpy as np
import pytest
import torch

import minigpt as mg
from minigpt.rnn import GRUConfig, GRUSeq2Seq
from minigpt.seq2seq import Seq2Seq, Seq2SeqConfig
from minigpt.viz.plots import cjk_font
from minigpt.viz.seq2seq import (CrossAttentionExplorer, CrossAttentionMaps, Seq2SeqChat, cross_attention_maps,
                                 plot_cross_attention)

PNG = b"\x89PNG"
SPECIALS = ("<pad>", "<sos>", "<eos>", "<sep>")
TEXT = "How are you today? I am fine, thanks. What is your name? Where do you live? 你好吗？我很好，谢谢。你叫什么名字？"


@pytest.fixture(scope="module")
def tok():
    return mg.CharTokenizer.from_text(TEXT, special_tokens=SPECIALS)


def _ids(tok):
    s = tok.special_tokens
    return dict(pad_id=s["<pad>"], sos_id=s["<sos>"], eos_id=s["<eos>"])


@pytest.fixture(scope="module")
def transformer(tok):
    torch.manual_seed(0)
    model = Seq2Seq(Seq2SeqConfig(vocab_size=tok.vocab_size, block_size=12, src_block_size=40, n_layer=2, n_head=2,
                                  n_embd=16, **_ids(tok))).eval()
    with torch.no_grad():  # sharper, more varied maps than a fresh initialisation gives
        for block in model.decoder:
            block.cross.q_proj.weight.mul_(40)
            block.cross.kv_proj.weight.mul_(40)
    return model


@pytest.fixture(scope="module")
def gru(tok):
    torch.manual_seed(1)
    return GRUSeq2Seq(GRUConfig(vocab_size=tok.vocab_size, hidden_size=16, block_size=12, attention="general",
                                **_ids(tok))).eval()


def bots(transformer, gru, tok):
    return dict(transformer=(transformer, tok), gru=(gru, tok))


# ------------------------------------------------------------------ the maps


def test_maps_have_one_row_per_answer_token_and_rows_sum_to_one(transformer, tok):
    m = cross_attention_maps(transformer, tok, "How are you today?", max_new_tokens=6)
    assert isinstance(m, CrossAttentionMaps) and m.kind == "transformer" and m.how == "greedy"
    assert m.question_tokens == list("How are you today?")
    assert len(m.answer_tokens) == 6 and (m.n_layer, m.n_head) == (2, 2)
    assert [tuple(a.shape) for a in m.cross] == [(2, 6, 18)] * 2
    for a in m.cross:
        torch.testing.assert_close(a.sum(-1), torch.ones(2, 6))
    torch.testing.assert_close(torch.as_tensor(m.weights(0, "all")), m.cross[0].mean(0))
    torch.testing.assert_close(torch.as_tensor(m.weights(-1, 1)), m.cross[1][1])


def test_row_t_is_the_step_that_wrote_answer_token_t(transformer, gru, tok):
    """The teacher-forced pass reads the greedy answer: its argmax at row t is answer token t, and its
    weights are those of cached generation."""
    for model in (transformer, gru):
        m = cross_attention_maps(model, tok, "Where do you live?", max_new_tokens=8)
        src = torch.tensor([tok.encode("Where do you live?")])
        ids = [tok.stoi[t] if t in tok.stoi else tok.special_tokens[t] for t in m.answer_tokens]
        tgt = torch.tensor([[model.config.sos_id] + ids[:-1]])
        out = model(src, tgt, return_attention=True)
        logits = out.logits[0].clone()
        logits[:, [model.config.pad_id, model.config.sos_id]] = float("-inf")  # no reply holds them
        assert logits.argmax(-1).tolist() == ids
        torch.testing.assert_close(out.cross_attentions[-1][0], m.cross[-1])


def test_a_typed_answer_is_read_with_eos_and_the_gru_has_one_grid(gru, tok):
    m = cross_attention_maps(gru, tok, "你好吗？", "我很好")
    assert m.kind == "gru" and m.how == "typed" and m.answer == "我很好"
    assert m.answer_tokens == ["我", "很", "好", "<eos>"] and m.question_tokens == list("你好吗？")
    assert [tuple(a.shape) for a in m.cross] == [(1, 4, 4)]
    np.testing.assert_allclose(m.weights(5, 7), m.weights())  # layer and head do not apply to the GRU
    np.testing.assert_allclose(m.weights().sum(1), 1, rtol=1e-5)
    assert cross_attention_maps(gru, tok, "你好吗？", "我很好", eos=False).answer_tokens == ["我", "很", "好"]


def test_beam_search_answers_too(transformer, tok):
    m = cross_attention_maps(transformer, tok, "How are you today?", decoding="beam", beam_width=3, max_new_tokens=5)
    assert m.how == "beam search (width 3)" and 1 <= len(m.answer_tokens) <= 5


def test_a_long_question_is_cropped_at_the_left_and_says_so(transformer, tok):
    question = "How are you today? " * 4  # 76 characters, the encoder takes 40
    m = cross_attention_maps(transformer, tok, question, "fine")
    assert len(m.question_tokens) == 40 and m.cropped == len(question.strip()) - 40
    assert "".join(m.question_tokens) == question.strip()[-40:]


@pytest.mark.parametrize("question, answer, words", [
    ("", None, "question is empty"),
    ("   ", None, "question is empty"),
    ("How are you?", "   ", "answer is empty"),
    ("How are you ☃?", None, "does not know"),
    ("How are you?", "fine " * 5, "block_size"),
])
def test_bad_input_gets_a_clear_error(transformer, tok, question, answer, words):
    with pytest.raises(ValueError, match=words):
        cross_attention_maps(transformer, tok, question, answer)


def test_a_decoder_only_model_or_a_bad_layer_is_refused(transformer, tok, tiny_model):
    with pytest.raises(ValueError, match="no cross-attention"):
        cross_attention_maps(tiny_model, tok, "How are you?")
    m = cross_attention_maps(transformer, tok, "How are you?", "fine")
    with pytest.raises(ValueError, match="layer must be"):
        m.weights(2)
    with pytest.raises(ValueError, match="head must be"):
        m.weights(0, 2)
    with pytest.raises(ValueError, match="decoding"):
        cross_attention_maps(transformer, tok, "How are you?", decoding="sample")


# ------------------------------------------------------------------ the picture


def test_the_static_picture_puts_both_bots_side_by_side_with_bars_for_the_selected_token(transformer, gru, tok):
    t = cross_attention_maps(transformer, tok, "你好吗？", "我很好")
    g = cross_attention_maps(gru, tok, "你好吗？", "我很好")
    fig = plot_cross_attention([t, g], layer=0, head=1, selected=2)
    grids = [ax for ax in fig.axes if ax.get_images()]
    bars = [ax for ax in fig.axes if ax.patches and not ax.get_images()]
    assert len(grids) == 2 and len(bars) == 1  # both read the same question: one bar chart, a colour each
    assert grids[0].get_position().y0 == grids[1].get_position().y0  # a short question: side by side
    assert [tl.get_text() for tl in grids[0].get_xticklabels()] == list("你好吗？")
    assert [tl.get_text() for tl in grids[1].get_yticklabels()] == ["我", "很", "好", "<eos>"]
    np.testing.assert_allclose(grids[0].get_images()[0].get_array(), t.cross[0][1].numpy())
    assert "layer 0, head 1" in grids[0].get_title() and "Luong" in grids[1].get_title()
    # the selected row's weights are the bars: the Transformer's, then the GRU's
    heights = [p.get_height() for p in bars[0].patches]
    np.testing.assert_allclose(heights, np.concatenate([t.weights(0, 1)[2], g.weights()[2]]), rtol=1e-6)
    if cjk_font():  # drawn with a CJK font, not empty boxes
        assert cjk_font() in grids[0].get_xticklabels()[0].get_fontfamily()
    one = plot_cross_attention(t)
    assert len([ax for ax in one.axes if ax.get_images()]) == 1 and not any(
        ax.patches and not ax.get_images() for ax in one.axes)
    with pytest.raises(ValueError, match="CrossAttentionMaps"):
        plot_cross_attention([])
    with pytest.raises(ValueError, match="selected must be"):
        plot_cross_attention(t, selected=4)


def test_a_long_question_puts_the_grids_one_above_the_other(transformer, gru, tok):
    question = "How are you today? What is your name? Where do you live?"
    t = cross_attention_maps(transformer, tok, question, "I am fine")
    g = cross_attention_maps(gru, tok, question, "I am fine")
    fig = plot_cross_attention([t, g], selected=0)
    grids = [ax for ax in fig.axes if ax.get_images()]
    assert grids[0].get_position().y0 > grids[1].get_position().y1  # stacked, each the full width
    assert len(grids[0].get_xticklabels()) == len(question) - 16  # cropped to the encoder's 40


# ------------------------------------------------------------------ the explorer


def test_explorer_first_state_shows_both_bots_on_the_transformers_answer(transformer, gru, tok):
    w = CrossAttentionExplorer(**bots(transformer, gru, tok), question="How are you today?")
    assert w.error is None and set(w.maps) == {"transformer", "gru"}
    t, g = w.maps["transformer"], w.maps["gru"]
    assert t.answer_tokens == g.answer_tokens and w.answer.value == t.answer  # the same answer, read by both
    assert t.how.startswith("Transformer's greedy") and g.how == t.how
    assert len(w.token_buttons) == len(t.answer_tokens) and w.selected == 0
    assert w.static_png().startswith(PNG)
    data, _ = w._repr_mimebundle_()
    assert base64.b64decode(data["image/png"]).startswith(PNG)  # what static viewers show
    assert "question token" in w.status.value and "each row sums to 1" in w.status.value


def test_explorer_maps_change_with_layer_head_and_selected_token(transformer, gru, tok):
    w = CrossAttentionExplorer(**bots(transformer, gru, tok), question="What is your name?")
    first_png, first = w.static_png(), w.weights().copy()
    w.head.value = 0
    head0 = w.weights().copy()
    w.head.value = 1
    head1 = w.weights().copy()
    w.layer.value = 0
    layer0 = w.weights().copy()
    assert w.static_png() != first_png
    for a, b in ((first, head0), (head0, head1), (head1, layer0)):
        assert not np.allclose(a, b, atol=1e-3)
    torch.testing.assert_close(torch.as_tensor(layer0), w.maps["transformer"].cross[0][1])
    before = w.static_png()
    w.token_buttons[3].click()
    assert w.selected == 3 and w.token_buttons[3].layout.border and not w.token_buttons[0].layout.border
    np.testing.assert_allclose(w.selected_weights("gru"), w.maps["gru"].weights()[3])
    assert w.static_png() != before
    with pytest.raises(ValueError, match="position"):
        w.select(99)


def test_explorer_answer_from_the_gru_or_typed(transformer, gru, tok):
    w = CrossAttentionExplorer(**bots(transformer, gru, tok), question="How are you today?", answer_from="gru")
    assert w.maps["gru"].how.startswith("GRU's greedy") and w.answer.value == w.maps["gru"].answer
    w.answer.value = "I am fine"  # typing an answer makes it the one both bots read
    assert w.answer_from.value == "typed"
    for m in w.maps.values():
        assert m.answer_tokens == list("I am fine") + ["<eos>"] and m.how == "typed"
    w.decoding.value = "beam"  # a typed answer stays
    assert w.maps["gru"].answer == "I am fine"
    w.answer_from.value = "transformer"
    assert w.maps["transformer"].how.startswith("Transformer's beam search")


def test_explorer_after_bad_input_forgets_its_maps_then_recovers(transformer, gru, tok):
    w = CrossAttentionExplorer(**bots(transformer, gru, tok), question="How are you today?")
    w.question.value = "Wh☃t?"
    assert w.maps == {} and w.selected is None and w.token_buttons == []
    assert "does not know" in w.error and "does not know" in w.status.value
    assert w.static_png().startswith(PNG)  # the picture says what is wrong
    with pytest.raises(ValueError, match="no maps"):
        w.weights()
    w.select(0)  # nothing to select: a note, not a crash
    assert "nothing to select" in w.status.value
    w.question.value = "Where do you live?"
    assert w.error is None and w.maps["gru"].question_tokens == list("Where do you live?")


def test_explorer_with_one_bot_and_bad_arguments(transformer, gru, tok):
    w = CrossAttentionExplorer(gru=(gru, tok), question="你好吗？", answer_from="gru")
    assert set(w.maps) == {"gru"} and w.layer.disabled and w.head.disabled
    with pytest.raises(ValueError, match="at least one bot"):
        CrossAttentionExplorer()
    with pytest.raises(ValueError, match="pass it as gru="):
        CrossAttentionExplorer(transformer=(gru, tok))
    with pytest.raises(ValueError, match="answer_from"):
        CrossAttentionExplorer(gru=(gru, tok), answer_from="transformer")
    with pytest.raises(ValueError, match="head must be"):
        CrossAttentionExplorer(transformer=(transformer, tok), head=5)
    with pytest.raises(ValueError, match="tokenizer"):
        CrossAttentionExplorer(transformer=(transformer, None))


# ------------------------------------------------------------------ the chat box


def test_chat_answers_and_draws_the_cross_attention_of_the_reply(transformer, gru, tok):
    c = Seq2SeqChat({("transformer", "en"): (transformer, tok), ("gru", "en"): (gru, tok),
                     ("gru", "zh"): (gru, tok)}, question="How are you today?", max_new_tokens=6)
    assert c.error is None and len(c.turns) == 1 and c.reply.kind == "transformer"
    assert "How are you today?" in c.conversation.value and "Transformer, English, greedy" in c.status.value
    assert [o[1] for o in c.layer.options] == [0, 1] and c.layer.value == 1 and not c.layer.disabled
    first = c.static_png()
    assert first.startswith(PNG)
    c.head.value = 0
    assert c.static_png() != first  # the picture follows the head
    c.bot.value = "gru"
    c.decoding.value = "beam"
    reply = c.send("Where do you live?")
    assert reply.kind == "gru" and reply.how.startswith("beam") and c.layer.disabled
    assert len(c.turns) == 2 and c.message.value == ""
    c.language.value = "zh"
    assert c.send("你好吗？").question_tokens == list("你好吗？")
    c.clear()
    assert c.turns == [] and c.reply is None and c.static_png().startswith(PNG)


def test_chat_keeps_the_message_and_says_what_is_wrong(transformer, tok):
    c = Seq2SeqChat({("transformer", "en"): (transformer, tok), ("gru", "en"): "no-such-model"}, question=None)
    assert c.turns == [] and c.static_png().startswith(PNG)
    c.message.value = "Wh☃t?"
    assert c.send() is None and "does not know" in c.error and c.message.value == "Wh☃t?" and c.turns == []
    c.bot.value = "gru"  # a bot that cannot be loaded: said in the status, nothing lost
    assert "no-such-model" in c.error and "no-such-model" in c.status.value
    assert c.send("How are you?") is None
    c.bot.value = "transformer"
    assert c.send("How are you?") is not None and len(c.turns) == 1
    with pytest.raises(ValueError, match="no bot for"):
        Seq2SeqChat({("gru", "en"): (transformer, tok)})
    with pytest.raises(ValueError, match="keys must be"):
        Seq2SeqChat({("bert", "en"): (transformer, tok)}, bot="bert")


def test_chat_whose_first_bot_cannot_load_shows_why(monkeypatch):
    from minigpt.checkpoint import CheckpointError

    def damaged(name, device=None):
        raise CheckpointError(f"{name}.pt is truncated or corrupt")

    monkeypatch.setattr(mg.pretrained, "load", damaged)
    c = Seq2SeqChat({("transformer", "en"): "qa-en"}, question="How are you?")
    assert c.turns == [] and "truncated or corrupt" in c.error and "truncated" in c.status.value
    assert c.static_png().startswith(PNG)  # the picture says it too
