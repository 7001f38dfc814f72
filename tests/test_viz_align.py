"""The alignment pictures and the widget that compares aligned models: the numbers they show are
the package's (reward-model scores, per-token KL on the tokens each model wrote), bad input gets
a clear message and never leaves old answers on screen, and the stored picture is a real PNG."""

import copy

import pytest
import torch
import torch.nn.functional as F

import minigpt as mg
from minigpt import align
from minigpt.viz import align as viz_align
from minigpt.viz.widgets import png_size


@pytest.fixture(scope="module")
def chat():
    model, tok = mg.pretrained.load("dailydialog-chat")
    return model, tok


@pytest.fixture(scope="module")
def moved(chat):
    """A copy of the chat model whose output layer was nudged: a stand-in for an aligned policy."""
    model, _ = chat
    other = copy.deepcopy(model)
    with torch.no_grad():
        g = torch.Generator().manual_seed(0)
        for p in other.transformer.h[-1].parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    return other


@pytest.fixture(scope="module")
def reward_model(chat):
    model, tok = chat
    rm = align.RewardModel.from_policy(model, tok)
    with torch.no_grad():
        rm.head.weight.normal_(0, 0.1, generator=torch.Generator().manual_seed(1))
    return rm


def test_kl_colour_is_white_at_zero_red_above_blue_below():
    assert viz_align.kl_colour(0.0) == "#ffffff"
    r, g, b = (int(viz_align.kl_colour(2.0)[i:i + 2], 16) for i in (1, 3, 5))
    assert r > b and r > g
    r, g, b = (int(viz_align.kl_colour(-2.0)[i:i + 2], 16) for i in (1, 3, 5))
    assert b > r
    assert viz_align.kl_colour(5.0) == viz_align.kl_colour(1.0)  # saturates at vmax
    assert viz_align.kl_colour(float("nan")) == "#ffffff"


def test_reward_score_plot_says_how_many_pairs_are_ranked_right():
    fig = viz_align.plot_reward_scores(torch.tensor([1.0, 2.0, -1.0, 0.5]), torch.tensor([0.0, 0.0, 0.0, 1.0]))
    titles = [ax.get_title() for ax in fig.axes]
    assert any("50%" in t for t in titles) and any("4 held-out pairs" in t for t in titles)
    with pytest.raises(ValueError, match="same"):
        viz_align.plot_reward_scores([1.0, 2.0], [0.0])


def test_ppo_history_plot_overlays_runs_and_skips_missing_measures():
    h = {"iter": [0, 1, 2], "score": [0.1, 0.2, 0.4], "kl": [0.0, 0.1, 0.3], "entropy": [2.0, 1.9, 1.8]}
    fig = viz_align.plot_ppo_history({"β = 0.1": h, "β = 0": {**h, "kl": [0.0, 1.0, 3.0]}})
    drawn = [ax for ax in fig.axes if ax.lines]
    assert len(drawn) == 3  # clip fraction and answer length are not in these histories
    assert all(len(ax.lines) == 4 for ax in drawn)  # raw + smoothed, two runs
    assert viz_align.plot_ppo_history(h).axes  # one history alone
    with pytest.raises(ValueError, match="PPOTrainer.history"):
        viz_align.plot_ppo_history({"run": {"iter": [0], "loss": [1.0]}})


def test_dpo_history_plot_marks_ln2():
    h = {"iter": [0, 1], "loss": [0.6931, 0.6], "margin": [0.0, 0.2], "chosen_reward": [0.0, 0.05],
         "rejected_reward": [0.0, -0.15]}
    fig = viz_align.plot_dpo_history(h)
    assert any("ln 2" in t.get_text() for ax in fig.axes for t in ax.texts)
    with pytest.raises(ValueError, match="train_dpo"):
        viz_align.plot_dpo_history({})


def test_answers_carry_the_package_numbers(chat, moved, reward_model):
    model, tok = chat
    start = viz_align.answer_and_measure("start", model, model, reward_model, tok, "How are you today?",
                                         max_new_tokens=20, temperature=0.7, top_k=40, seed=3)
    assert start.tokens and all(k == 0.0 for _, k in start.tokens)  # the reference against itself
    a = viz_align.answer_and_measure("moved", moved, model, reward_model, tok, "How are you today?",
                                     max_new_tokens=20, temperature=0.7, top_k=40, seed=3)
    reply = mg.chat.Chat(moved, tok, max_new_tokens=20, temperature=0.7, top_k=40, seed=3).ask("How are you today?")
    assert [t for t, _ in a.tokens] == [tok.token_str(i) for i in reply.token_ids]
    # the KL of each token by hand: log-softmax of both models' logits at the position before it
    ids = torch.tensor([reply.prompt.ids + reply.token_ids])
    P = len(reply.prompt.ids)
    with torch.no_grad():
        lp = F.log_softmax(moved(ids).logits[0, P - 1:-1], -1)
        lq = F.log_softmax(model(ids).logits[0, P - 1:-1], -1)
    want = [float(lp[t, i] - lq[t, i]) for t, i in enumerate(reply.token_ids)]
    assert [k for _, k in a.tokens] == pytest.approx(want, abs=1e-4)
    assert a.kl == pytest.approx(sum(want), abs=1e-3)
    # the score is the reward model's, read at the last token written
    with torch.no_grad():
        want_score = float(reward_model(ids, torch.tensor([ids.size(1) - 1]))[0])
    assert a.score == pytest.approx(want_score, abs=1e-5)


def test_compare_widget_first_state_bad_input_and_new_prompt(chat, moved, reward_model):
    model, tok = chat
    w = mg.viz.CompareAligned({"start": model, "moved": moved}, tok, reward_model, reference=model,
                              prompt="Shall we go to the cinema tonight?", max_new_tokens=16, seed=0)
    assert [a.name for a in w.answers] == ["start", "moved"] and w.error is None
    first = bytes(w.image.value)
    assert png_size(first)[0] > 300 and w.static_png() == first
    assert "highest score" in w.status.value
    w.prompt.value = "   "
    w.ask_button.click()
    assert w.answers == [] and "empty" in w.error and "empty" in w.status.value
    assert bytes(w.image.value) != first  # the message, not the old answers
    w.prompt.value = "Where is the station?"
    w.ask_button.click()
    assert w.error is None and len(w.answers) == 2
    again = viz_align.answer_and_measure("start", model, model, reward_model, tok, "Where is the station?",
                                         max_new_tokens=16, temperature=0.7, top_k=40, seed=0)
    assert w.answers[0].text == again.text  # the same seed and knobs as asked by hand


def test_compare_widget_refuses_a_reward_model_of_another_tokenizer(chat, reward_model):
    model, tok = chat
    other_tok = mg.CharTokenizer.from_text("abc")
    with pytest.raises(ValueError, match="tokenizer"):
        viz_align.CompareAligned({"start": model}, other_tok, reward_model, reference=model)
    with pytest.raises(ValueError, match="dict"):
        viz_align.CompareAligned([model], tok, reward_model, reference=model)
