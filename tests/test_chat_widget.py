"""The chat widget: every reply token is a button coloured by its probability; a click shows the
distribution the package's sampler drew it from; a branch keeps the reply up to there; bad input
leaves a clear message and nothing lost; a PNG stands in for the widget in static viewers."""

import base64

import pytest
import torch

import minigpt as mg
from minigpt.viz.chat import ChatWidget, CompareSystemPrompts, ReplyView, plot_replies, probability_colour

from smollm import ours

PNG = b"\x89PNG"
CHATML = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")


@pytest.fixture(scope="module")
def tok():
    text = "Hello there! How are you today? I am fine, thank you. What is the capital of France? Paris.\n" * 20
    return mg.BPETokenizer.train(text, vocab_size=300, special_tokens=CHATML)


@pytest.fixture(scope="module")
def model(tok):
    torch.manual_seed(0)
    cfg = mg.GPTConfig(vocab_size=tok.vocab_size, block_size=256, n_layer=2, n_head=4, n_kv_head=2, n_embd=32,
                       bias=False, norm="rmsnorm", positions="rope", mlp="swiglu")
    return mg.GPT(cfg).eval()


def distribution_of(widget_or_chat, reply, position, **knobs):
    """The package's own distribution for the token at ``position`` of ``reply``."""
    ids = list(reply.prompt.ids) + reply.token_ids[:position]
    return mg.next_token_distribution(widget_or_chat.model, widget_or_chat.tokenizer, ids, **knobs)


def test_first_state_shows_a_reply_as_coloured_buttons_with_a_selected_token(model, tok):
    w = ChatWidget(model, tok, system="Be brief.", max_new_tokens=12)
    reply = w.reply
    assert reply is not None and len(reply.steps) == 12 and reply.stopped == "max_new_tokens"
    buttons = w.reply_view.buttons
    assert len(buttons) == 12 and len(w.reply_view.tokens.children) == 12
    for b, step in zip(buttons, reply.steps):
        assert b.style.button_color == probability_colour(step.prob)
    # the least likely token is selected first, and its table is shown
    least = min(range(12), key=lambda i: reply.steps[i].prob)
    assert w.reply_view.selected == least and buttons[least].layout.border
    assert f"token {least}" in w.reply_view.details.value
    assert "Be brief." in w.conversation.value and "What is the capital of France?" in w.conversation.value
    assert "12 tokens" in w.status.value


def test_colours_run_from_red_to_green():
    red, green = probability_colour(0.0), probability_colour(1.0)
    assert int(red[1:3], 16) > int(red[3:5], 16) and int(green[3:5], 16) > int(green[1:3], 16)
    assert probability_colour(-1) == red and probability_colour(2) == green


def test_a_click_shows_the_distribution_the_packages_sampler_drew_from(model, tok):
    knobs = dict(temperature=0.8, top_k=20, top_p=0.95)
    w = ChatWidget(model, tok, max_new_tokens=8, **knobs)
    reply = w.reply
    w.reply_view.buttons[3].click()
    assert w.reply_view.selected == 3
    dist = distribution_of(w.chat, reply, 3, **knobs)
    want = dist.top(10, "final")
    got = reply.steps[3].top
    assert [i for _, i, _ in got] == [i for _, i, _ in want]
    torch.testing.assert_close(torch.tensor([p for *_, p in got]), torch.tensor([p for *_, p in want]))
    assert reply.steps[3].prob == pytest.approx(float(dist.final[reply.steps[3].token_id]), rel=1e-5)
    # the table lists them, and the alternatives are every top token but the chosen one
    for s, _, p in got[:3]:
        assert f"{p:.1%}" in w.reply_view.details.value
    offered = [v for _, v in w.reply_view.alternative.options]
    assert reply.steps[3].token_id not in offered and set(offered) <= {i for _, i, _ in got}


def test_branch_keeps_the_reply_up_to_the_token_and_puts_the_choice_there(model, tok):
    w = ChatWidget(model, tok, max_new_tokens=10)
    before = w.reply
    w.reply_view.select(4)
    other = w.reply_view.alternative.options[1][1]
    w.reply_view.alternative.value = other
    w.reply_view.branch_button.click()
    after = w.reply
    assert after is w.chat.last_reply and after is not before
    assert after.token_ids[:4] == before.token_ids[:4] and after.token_ids[4] == other
    assert w.reply_view.selected == 4 and "branched at token 4" in w.reply_view.status.value
    assert len(w.turns) == 1 and [m.role for m in w.chat.messages] == ["user", "assistant"]
    # the branched token's distribution is still the one at that place (same context)
    assert [i for _, i, _ in after.steps[4].top] == [i for _, i, _ in before.steps[4].top]


def test_a_second_turn_keeps_the_first_and_reuses_the_cache(model, tok):
    w = ChatWidget(model, tok, max_new_tokens=6)
    first = w.reply
    w.message.value = "And then?"
    w.send_button.click()
    assert len(w.turns) == 2 and w.message.value == ""
    assert w.reply.reused_tokens > 0 and "from the kept KV cache" in w.status.value
    # the first reply is in the conversation view, token by token, coloured
    assert w.conversation.value.count("<span title='p = ") == len(first.steps)
    assert "And then?" in w.conversation.value
    w.reset_button.click()
    assert w.turns == [] and w.reply is None and w.chat.messages == []


def test_enter_in_the_message_box_sends(model, tok):
    w = ChatWidget(model, tok, question=None, max_new_tokens=4)
    assert w.reply is None and w.static_png().startswith(PNG)  # an empty first state still draws
    w.message.value = "Hello"
    w.message._handle_custom_msg({"event": "submit"}, None)
    assert len(w.turns) == 1 and w.turns[0][0] == "Hello"


def test_bad_input_says_what_is_wrong_and_loses_nothing(model, tok):
    w = ChatWidget(model, tok, max_new_tokens=5)
    reply = w.reply
    w.message.value = "   "
    assert w.send() is None and "empty" in w.error and "empty" in w.status.value
    assert w.reply is reply and len(w.turns) == 1 and w.message.value == "   "
    w.message.value = "word " * 400  # longer than the window
    assert w.send() is None and "window" in w.error and len(w.chat.messages) == 2
    with pytest.raises(ValueError, match="tokenizer"):
        ChatWidget(model)
    with pytest.raises(ValueError, match="im_start"):
        ChatWidget(model, mg.CharTokenizer.from_text("abc"))
    with pytest.raises(ValueError, match="position"):
        w.reply_view.select(99)


def test_a_ready_chat_can_be_given_instead_of_a_model(model, tok):
    chat = mg.chat.Chat(model, tok, system="Be kind.", max_new_tokens=3, seed=1)
    w = ChatWidget(chat, question="Hi")
    assert w.chat is chat and len(w.reply.steps) == 3 and "Be kind." in w.conversation.value


def test_static_picture_is_offered_beside_the_live_widget(model, tok):
    w = ChatWidget(model, tok, max_new_tokens=6)
    data, metadata = w._repr_mimebundle_()
    png = base64.b64decode(data["image/png"])
    assert png.startswith(PNG) and "application/vnd.jupyter.widget-view+json" in data
    assert metadata["image/png"]["width"] > 300
    texts = [t.get_text() for ax in w.figure.axes for t in ax.texts]
    assert any("user: What is the capital" in t for t in texts)
    assert any(f"token {w.reply_view.selected}" in ax.get_title() for ax in w.figure.axes)


def test_plot_replies_draws_one_box_per_token_and_the_selected_bars(model, tok):
    w = ChatWidget(model, tok, max_new_tokens=7)
    fig = plot_replies([dict(reply=w.reply, selected=2, question="q")])
    text_ax, bar_ax = fig.axes
    assert len(text_ax.patches) == 7
    assert len(bar_ax.patches) in (10, 11)  # the top 10, plus the chosen token when not among them


def test_two_system_prompts_side_by_side(model, tok):
    c = CompareSystemPrompts(model, tok, ("You are a pirate.", "You are a pirate."), question="Hi",
                             max_new_tokens=5)
    a, b = c.replies
    assert a.token_ids == b.token_ids  # same seed, same prompt: same reply
    assert [v.reply for v in c.views] == [a, b]
    c.system_boxes[1].value = "Answer in French."
    replies = c.ask()
    assert replies[1].prompt.ids != replies[0].prompt.ids and c.error is None
    assert c.static_png().startswith(PNG) and len(c.figure.axes) == 4
    c.views[0].select(1)
    c.views[0].branch_button.click()
    assert c.replies[0] is c.chats[0].last_reply and c.replies[0].token_ids[:1] == a.token_ids[:1]
    assert c.ask("") is None and "empty" in c.error
    with pytest.raises(ValueError, match="two system prompts"):
        CompareSystemPrompts(model, tok, ("one",))


def test_reply_view_on_its_own(model, tok):
    chat = mg.chat.Chat(model, tok, max_new_tokens=4, seed=0)
    view = ReplyView(chat)
    assert view.branch() is None and "select a token" in view.status.value
    view.set_reply(chat.ask("Hi"))
    assert view.selected is not None and not view.branch_button.disabled


# --------------------------------------------------------------------------- the real model


def test_real_model_answers_and_shows_its_first_word_distribution():
    model, tok = ours()
    w = ChatWidget(model, tok, system="You are a helpful assistant.", question="What is the capital of France?",
                   max_new_tokens=12, temperature=0)
    assert "Paris" in w.reply.text
    assert w.reply.stopped == "end_of_turn" and w.reply_view.buttons[-1].description == "<|im_end|>"
    first = w.reply.steps[0]
    dist = distribution_of(w.chat, w.reply, 0)  # the model's own probabilities
    assert first.token_id == int(dist.raw.argmax()) and first.prob == pytest.approx(1.0)
    assert [i for _, i, _ in first.raw_top] == [i for _, i, _ in dist.top(10, "raw")]
    # branch: another first word, the rest rewritten greedily after it
    # greedy: the alternatives offered are the model's own runners-up; branch to the first of them
    w.reply_view.select(0)
    runner_up = first.raw_top[1][1]
    assert w.reply_view.alternative.value == runner_up and not w.reply_view.branch_button.disabled
    w.reply_view.branch_button.click()
    assert w.reply.token_ids[0] == runner_up and w.turns[0][1] is w.reply
