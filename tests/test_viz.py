"""minigpt.viz: static plots hold the data they claim to show; widgets react to their controls."""

import sys

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from matplotlib.patches import Rectangle

import minigpt as mg
from minigpt.viz import plots
from minigpt.viz.plots import visible

PNG = b"\x89PNG"
TEXT = "ROMEO:\nBut soft"


@pytest.fixture(scope="module")
def tok(shakespeare):
    return mg.CharTokenizer.from_text(shakespeare)


@pytest.fixture(scope="module")
def model(tok):
    torch.manual_seed(0)
    return mg.GPT(mg.GPTConfig(vocab_size=tok.vocab_size, block_size=32, n_layer=2, n_head=2, n_embd=32)).eval()


def images(fig):
    return [im for ax in fig.axes for im in ax.get_images()]


def plot_axes(fig):
    return [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]


def bars(ax):
    return [p for p in ax.patches if isinstance(p, Rectangle) and p.get_fill()]


def tick_texts(labels):
    return [t.get_text() for t in labels]


@pytest.fixture(autouse=True)
def no_figures_left_open():
    yield
    assert plt.get_fignums() == [], "plots must close their figures to pyplot"


# --------------------------------------------------------------------------- next token

def test_next_token_distribution_has_a_panel_per_stage_and_follows_top_k(model, tok):
    dist = mg.next_token_distribution(model, tok, "ROMEO:", top_k=4)
    fig = plots.plot_next_token_distribution(dist, n=10, stages="all")
    assert len(fig.axes) == len(plots.ALL_STAGES)
    raw_ax, final_ax = fig.axes[0], fig.axes[-1]
    widths = [b.get_width() for b in bars(raw_ax)]
    assert len(widths) == 10 and all(w > 0 for w in widths)
    assert sum(b.get_width() > 0 for b in bars(final_ax)) == 4  # top-k kept exactly 4 candidates
    # the candidates are labelled with their token strings, most likely first
    top = dist.top(10, "raw")
    assert tick_texts(raw_ax.get_yticklabels()) == [visible(s) for s, _, _ in top]
    np.testing.assert_allclose(widths, [p for _, _, p in top], rtol=1e-6)
    # each panel names the knob it applied, as the distribution recorded it
    titles = [a.get_title() for a in fig.axes]
    assert "top k = 4" in titles[3] and "temperature = 1.0" in titles[2] and "top p = off" in titles[4]


def test_next_token_panels_share_one_probability_axis_up_to_1(model, tok):
    dist = mg.next_token_distribution(model, tok, "ROMEO:", temperature=2.0)
    fig = plots.plot_next_token_distribution(dist, n=5, stages=("raw", "temperature"))
    raw_ax, hot_ax = fig.axes
    assert raw_ax.get_xlim() == hot_ax.get_xlim() and raw_ax.get_xlim()[1] <= 1.0
    assert max(b.get_width() for b in bars(hot_ax)) < max(b.get_width() for b in bars(raw_ax))  # flatter
    sure = mg.next_token_distribution(model, tok, "ROMEO:", temperature=0.0)
    assert plots.plot_next_token_distribution(sure, n=3, stages="final").axes[0].get_xlim()[1] == 1.0


def test_next_token_distribution_rejects_unknown_stages(model, tok):
    dist = mg.next_token_distribution(model, tok, "ROMEO:")
    with pytest.raises(ValueError, match="stage"):
        plots.plot_next_token_distribution(dist, stages=("raw", "after_softmax"))
    fig = plots.plot_next_token_distribution(dist, n=5, stages=("raw", "top_k"))  # short names work too
    assert len(fig.axes) == 2


# --------------------------------------------------------------------------- attention

def test_attention_maps_are_causal_rows_that_sum_to_one(model, tok):
    tokens, attentions = plots.attention_maps(model, tok, TEXT)
    T = len(TEXT)
    assert tokens == [tok.token_str(i) for i in tok.encode(TEXT)]
    assert len(attentions) == model.config.n_layer
    for a in attentions:
        assert a.shape == (model.config.n_head, T, T)
        torch.testing.assert_close(a.sum(-1), torch.ones(model.config.n_head, T))
        assert torch.all(a.triu(diagonal=1) == 0)


def test_attention_maps_explain_bad_input(model, tok):
    with pytest.raises(ValueError, match="block_size|at most"):
        plots.attention_maps(model, tok, "a" * 40)
    with pytest.raises(ValueError):
        plots.attention_maps(model, tok, "")


def test_plot_attention_labels_both_axes_with_tokens(model, tok):
    tokens, attentions = plots.attention_maps(model, tok, TEXT)
    fig = plots.plot_attention(attentions[1][0], tokens, query=3)
    ax = fig.axes[0]
    assert tick_texts(ax.get_xticklabels()) == [visible(t) for t in tokens]
    assert tick_texts(ax.get_yticklabels()) == [visible(t) for t in tokens]
    (im,) = ax.get_images()
    np.testing.assert_allclose(np.ma.getdata(im.get_array()), attentions[1][0].numpy(), rtol=1e-6)
    assert np.ma.getmaskarray(im.get_array())[0, 1]  # the hidden future is drawn blank
    outlined = [p for p in ax.patches if not p.get_fill()]
    assert len(outlined) == 1 and outlined[0].get_y() == pytest.approx(2.5)  # row 3 outlined
    # [H, T, T] is drawn as the mean over heads
    mean = plots.plot_attention(attentions[1], tokens).axes[0].get_images()[0].get_array()
    np.testing.assert_allclose(np.ma.getdata(mean), attentions[1].mean(0).numpy(), rtol=1e-6)
    with pytest.raises(ValueError, match="tokens"):
        plots.plot_attention(attentions[1][0], tokens[:-1])


def test_plot_attention_heads_draws_every_head(model, tok):
    tokens, attentions = plots.attention_maps(model, tok, TEXT)
    fig = plots.plot_attention_heads(attentions, tokens, layer=1)
    ims = images(fig)
    assert len(ims) == model.config.n_head
    for h, im in enumerate(ims):
        np.testing.assert_allclose(np.ma.getdata(im.get_array()), attentions[1][h].numpy(), rtol=1e-6)
    with pytest.raises(ValueError, match="layer"):
        plots.plot_attention_heads(attentions, tokens, layer=2)


def test_plot_attention_layer_shows_where_the_query_looks(model, tok):
    tokens, attentions = plots.attention_maps(model, tok, TEXT)
    fig = plots.plot_attention_layer(attentions, tokens, layer=0, head=1, query=5)
    heat, bar_ax = plot_axes(fig)
    heights = [b.get_height() for b in bars(bar_ax)]
    np.testing.assert_allclose(heights, attentions[0][1, 5].numpy(), rtol=1e-6)
    assert tick_texts(bar_ax.get_xticklabels()) == [visible(t) for t in tokens]
    fig = plots.plot_attention_layer(attentions, tokens, layer=0, head="all")  # query: the last token
    assert len(images(fig)) == model.config.n_head
    np.testing.assert_allclose([b.get_height() for b in bars(fig.axes[-1])],
                               attentions[0][:, -1].mean(0).numpy(), rtol=1e-6)


def test_plot_query_attention_caps_the_weight_axis_at_1(model, tok):
    tokens = list("abc")
    fig = plots.plot_query_attention(torch.tensor([0.0, 0.05, 0.95]), tokens, query=2)
    assert fig.axes[0].get_ylim()[1] == 1.0


def test_plot_head_view_draws_a_line_per_weight(model, tok):
    tokens, attentions = plots.attention_maps(model, tok, "abcd")
    fig = plots.plot_head_view(attentions, tokens, layer=1, heads=[0])
    (lines,) = fig.axes[0].collections
    a = attentions[1][0]
    kept = (a >= 0.01).nonzero()
    assert len(lines.get_segments()) == len(kept)  # none above the diagonal: the future is masked
    for (i, j), segment in zip(kept.tolist(), lines.get_segments()):
        assert segment.tolist() == [[0, i], [1, j]]
    np.testing.assert_allclose(lines.get_colors()[:, 3], 0.9 * a[a >= 0.01].numpy(), rtol=1e-6)
    assert len(plots.plot_model_view(attentions, tokens).axes) == model.config.n_layer * model.config.n_head
    with pytest.raises(ValueError, match="heads"):
        plots.plot_head_view(attentions, tokens, heads=[5])


# --------------------------------------------------------------------------- tokens

def test_plot_tokens_draws_one_box_per_token_with_its_id(tok):
    text = "To be, or not"
    ids = tok.encode(text)
    fig = plots.plot_tokens(tok, text)
    ax = fig.axes[0]
    assert len(ax.patches) == len(ids)
    texts = tick_texts(ax.texts)
    assert texts[0::2] == [visible(tok.token_str(i)) for i in ids]
    assert texts[1::2] == [str(i) for i in ids]
    assert f"{len(ids)} tokens" in ax.get_title(loc="left")


def test_plot_tokens_compares_tokenizers(tok, shakespeare):
    bpe = mg.BPETokenizer.train(shakespeare[:3000], vocab_size=300)
    text = "ROMEO: But soft, what light"
    fig = plots.plot_tokens({"characters": tok, "bpe": bpe}, text)
    assert [len(ax.patches) for ax in fig.axes] == [len(tok.encode(text)), len(bpe.encode(text))]
    assert fig.axes[1].get_title(loc="left").startswith("bpe:")


def test_plot_tokens_can_show_why_a_tokenizer_failed(tok):
    other = mg.CharTokenizer.from_text("xyz€")
    with pytest.raises(ValueError):
        plots.plot_tokens({"characters": tok, "other": other}, "x€")
    fig = plots.plot_tokens({"characters": tok, "other": other}, "x€", errors="show")
    assert fig.axes[0].get_title(loc="left").startswith("characters: cannot encode")
    assert fig.axes[1].get_title(loc="left") == "other: 2 tokens"
    assert plots.plot_tokens(tok, "a").axes[0].get_title(loc="left") == "CharTokenizer: 1 token"


def test_plots_draw_chinese_characters_with_a_cjk_font(recwarn):
    import io
    font = plots.cjk_font()
    if font is None:
        pytest.skip("no CJK font installed (Debian/Ubuntu: apt-get install fonts-wqy-zenhei)")
    zh = mg.CharTokenizer.from_text("你好，世界！机器学习")
    fig = plots.plot_tokens(zh, "你好，世界！")
    fig.axes[0].set_xlabel("机器学习")
    fig.savefig(io.BytesIO(), format="png")
    missing = [str(w.message) for w in recwarn if "missing from font" in str(w.message)]
    assert missing == []
    assert font in plt.rcParams["font.family"] and font in plots.MONOSPACE


def test_tokens_html_lists_every_token_and_id(tok):
    text = "a b\nc"
    out = plots.tokens_html(tok, text)
    for i in tok.encode(text):
        assert f"id {i}" in out
    assert "5 tokens" in out and "␣" in out and out.count("<br>") >= 6  # one line break for the newline


# --------------------------------------------------------------------------- embeddings

def test_project_2d_is_pca():
    g = torch.Generator().manual_seed(0)
    direction = torch.randn(8, generator=g)
    points = torch.randn(50, 1, generator=g) * 10 * direction + 0.01 * torch.randn(50, 8, generator=g)
    xy, var = plots.project_2d(points, return_variance=True)
    assert xy.shape == (50, 2)
    assert var[0] > 0.99 and var[0] >= var[1]
    torch.testing.assert_close(xy.mean(0), torch.zeros(2), atol=1e-4, rtol=0)
    torch.testing.assert_close(plots.project_2d(points), xy)  # same weights, same picture
    with pytest.raises(ValueError):
        plots.project_2d(torch.zeros(5))


def test_nearest_neighbours_use_cosine_similarity(tok):
    torch.manual_seed(0)
    m = mg.GPT(mg.GPTConfig(vocab_size=tok.vocab_size, block_size=8, n_layer=1, n_head=1, n_embd=16))
    a, b = tok.encode("a")[0], tok.encode("b")[0]
    with torch.no_grad():
        m.transformer.wte.weight[b] = 3 * m.transformer.wte.weight[a]  # same direction, longer
    (s, i, sim), *rest = plots.nearest_neighbours(m, tok, "a", k=3)
    assert (s, i) == ("b", b) and sim == pytest.approx(1.0, abs=1e-5) and len(rest) == 2
    assert plots.nearest_neighbours(m, tok, "\\n", k=1)[0][1] != tok.encode("\n")[0]  # printable form works
    with pytest.raises(ValueError, match="not one"):
        plots.nearest_neighbours(m, tok, "ab")


def test_plot_embeddings_2d_labels_each_token_and_marks_neighbours(model, tok):
    fig = plots.plot_embeddings_2d(model, tok, tokens=list("abcde"))
    assert sorted(tick_texts(fig.axes[0].texts)) == list("abcde")
    fig = plots.plot_embeddings_2d(model, tok, tokens=list("abc"), highlight="a", k=4)
    labels = tick_texts(fig.axes[0].texts)
    assert {"a", "b", "c"} <= set(labels) and len(labels) >= 5  # the neighbours are added
    with pytest.raises(ValueError, match="pca"):
        plots.plot_embeddings_2d(model, tok, method="tsne")


# --------------------------------------------------------------------------- positions and training

def test_sinusoidal_positions_follow_the_formula():
    pe = plots.sinusoidal_positions(10, 7)
    assert pe.shape == (10, 7)
    torch.testing.assert_close(pe[0, 0::2], torch.zeros(4))
    torch.testing.assert_close(pe[0, 1::2], torch.ones(3))
    assert pe[5, 2].item() == pytest.approx(np.sin(5 / 10000 ** (2 / 7)), rel=1e-5)
    assert pe[5, 3].item() == pytest.approx(np.cos(5 / 10000 ** (2 / 7)), rel=1e-5)


def test_plot_positional_encodings_shows_learned_and_sinusoidal(model):
    fig = plots.plot_positional_encodings(model)
    ims = images(fig)
    assert len(ims) == 4
    np.testing.assert_allclose(ims[0].get_array(), model.transformer.wpe.weight.detach().numpy())
    np.testing.assert_allclose(ims[1].get_array(), plots.sinusoidal_positions(32, 32).numpy(), rtol=1e-6)
    assert len(images(plots.plot_positional_encodings(T=16, C=8))) == 2


HISTORY = {"iter": [0, 1, 2, 3], "loss": [4.0, 3.5, 3.2, 3.0], "lr": [0.0, 1e-3, 1e-3, 5e-4],
           "grad_norm": [2.0, 1.5, 1.0, 0.8], "eval_iter": [0, 3], "val_loss": [4.1, 3.3],
           "train_eval_loss": [4.0, 3.1]}


def test_plot_loss_curves_draws_the_history():
    fig = plots.plot_loss_curves(HISTORY)
    loss_ax, lr_ax = fig.axes
    lines = {l.get_label(): l for l in loss_ax.get_lines()}
    assert list(lines["train loss (batch)"].get_ydata()) == HISTORY["loss"]
    assert list(lines["validation loss"].get_xdata()) == HISTORY["eval_iter"]
    assert list(lr_ax.get_lines()[0].get_ydata()) == HISTORY["lr"]
    empty = plots.plot_loss_curves({})
    assert "no training steps yet" in tick_texts(empty.axes[0].texts)
    with pytest.raises(ValueError, match="entries"):
        plots.plot_loss_curves({"iter": [0, 1], "loss": [1.0]})


def test_plot_grad_norms_draws_one_line_per_run():
    fig = plots.plot_grad_norms({"warm-up": HISTORY, "none": HISTORY}, clip=1.0)
    ax = fig.axes[0]
    assert ax.get_yscale() == "log"
    assert [l.get_label() for l in ax.get_lines()] == ["warm-up", "none", "clip at 1.0"]
    assert len(plots.plot_grad_norms(HISTORY).axes[0].get_lines()) == 1
    with pytest.raises(ValueError, match="grad_norm"):
        plots.plot_grad_norms({"x": {"iter": [0]}})


def test_plots_draw_into_given_axes(model, tok):
    fig, ax = plt.subplots()
    plt.close(fig)
    tokens, attentions = plots.attention_maps(model, tok, "abc")
    assert plots.plot_attention(attentions[0][0], tokens, ax=ax, colorbar=False) is fig
    assert plots.plot_embeddings_2d(model, tok, tokens=["a"], ax=ax) is fig


# --------------------------------------------------------------------------- widgets

widgets = pytest.importorskip("minigpt.viz.widgets")


def final_bar_count(explorer):
    return sum(b.get_width() > 0 for b in bars(explorer.figure.axes[-1]))


def figure_texts(fig):
    return " ".join(t.get_text() for ax in fig.axes for t in ax.texts + [ax.title, ax._left_title])


def test_next_token_explorer_grows_the_prompt_and_follows_the_knobs(model, tok):
    e = widgets.NextTokenExplorer(model, tok, prompt="ROMEO:", n=10, stages=("raw", "final"))
    assert e.static_png().startswith(PNG) and e.ids == tok.encode("ROMEO:")  # a first picture, untouched
    expected = int(e.distribution.final.argmax())
    e.argmax_button.click()
    assert e.ids == tok.encode("ROMEO:") + [expected]
    assert e.prompt.value == tok.decode(e.ids)
    e.top_k.value = 3
    assert final_bar_count(e) == 3 and [s for s, _, _ in e.top(3)] == [s for s, _, _ in e.distribution.top(3, "final")]
    e.top_k.value = 0
    assert final_bar_count(e) == 10
    e.undo_button.click()
    assert e.ids == tok.encode("ROMEO:")
    e.prompt.value = "JULIET"
    assert e.ids == tok.encode("JULIET")
    bundle, metadata = e._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle and "image/png" in bundle
    assert metadata["image/png"]["width"] == int(e.image.width)  # shown at its own size


@pytest.mark.parametrize("bad", ["€", ""])
def test_next_token_explorer_forgets_the_old_context_after_a_bad_prompt(model, tok, bad):
    e = widgets.NextTokenExplorer(model, tok, prompt="JULIET", stages="final")
    good_picture = e.static_png()
    e.prompt.value = bad  # unknown character, or nothing: the widget says so instead of raising
    assert e.ids == [] and e.distribution is None and e.error
    assert ("€" if bad else "empty") in e.status.value
    assert e.static_png() != good_picture and "fix the prompt" in figure_texts(e.figure)  # no stale picture
    for button in (e.argmax_button, e.sample_button, e.undo_button):
        button.click()  # nothing to pick from: the learner's text stays, no token from the old context
        assert e.prompt.value == bad and e.ids == [] and "fix the prompt" in e.status.value
    e.temperature.value = 0.5  # a knob does not bring the old context back either
    assert e.distribution is None and e.ids == []
    with pytest.raises(ValueError, match="distribution"):
        e.top()
    e.prompt.value = "ROMEO"  # fixed: back to work
    assert e.ids == tok.encode("ROMEO") and e.distribution is not None and e.error is None
    assert e.argmax_button.click() is None and len(e.ids) == 6


def test_next_token_explorer_samples_reproducibly_from_its_seed(model, tok):
    def sampled(seed):
        e = widgets.NextTokenExplorer(model, tok, prompt="ROMEO:", n=5, stages="final", seed=seed)
        e.sample_button.click()
        e.sample_button.click()
        return e.ids
    first = sampled(3)
    assert len(first) == len(tok.encode("ROMEO:")) + 2
    assert sampled(3) == first
    # the draws are those of mg.generate with the same seed and knobs
    assert tok.decode(first[-2:]) == mg.generate(model, tok, "ROMEO:", max_new_tokens=2, seed=3)


def test_next_token_explorer_reseeds_when_the_same_seed_is_entered_again(model, tok):
    e = widgets.NextTokenExplorer(model, tok, prompt="ROMEO:", stages="final", seed=7)
    draws = [e.step(greedy=False) for _ in range(4)]
    for _ in range(4):
        e.undo_button.click()
    e.seed._handle_custom_msg({"event": "submit"}, [])  # Enter in the seed box, with 7 still in it
    assert [e.step(greedy=False) for _ in range(4)] == draws
    e.seed.value = "8"
    e.seed.value = "7"  # typed anew
    for _ in range(4):
        e.undo_button.click()
    assert [e.step(greedy=False) for _ in range(4)] == draws
    e.seed.value = "seven"
    assert "whole number" in e.status.value


def test_next_token_explorer_counts_tokens_and_says_what_the_model_sees(model, tok):
    e = widgets.NextTokenExplorer(model, tok, prompt="R", stages="final")
    assert e.status.value.startswith("1 token in the context")
    e.prompt.value = "ROMEO: " * 10  # 70 tokens; the model's block_size is 32
    assert "70 tokens in the context" in e.status.value and "sees the last 32" in e.status.value


def test_figure_box_displays_its_picture_beside_the_widget(monkeypatch):
    import IPython.display
    from IPython.core.formatters import DisplayFormatter
    box = widgets.FigureBox()
    box.show(plots.plot_message("hello"))
    if widgets.IPYWIDGETS_7:  # 7.x displays a widget through _ipython_display_
        shown = []
        monkeypatch.setattr(IPython.display, "display", lambda data, **kw: shown.append((data, kw)))
        box._ipython_display_()
        ((data, kw),) = shown
        metadata = kw["metadata"]
    else:  # 8.x through _repr_mimebundle_, as IPython formats it
        data, metadata = DisplayFormatter().format(box)
    assert data["application/vnd.jupyter.widget-view+json"]["model_id"] == box.model_id
    assert data["image/png"] and metadata["image/png"]["width"] == widgets.png_size(box.static_png())[0]


def test_figure_box_shows_pictures_at_their_own_size(model, tok):
    e = widgets.EmbeddingExplorer(model, tok)
    width, height = widgets.png_size(e.static_png())
    assert e.image.width == str(width) and width == round(e.figure.get_figwidth() * e.dpi)
    assert e.image.layout.max_width == "100%" and e.image.layout.align_self == "flex-start"


def test_attention_explorer_redraws_for_layer_head_query_and_text(model, tok):
    a = widgets.AttentionExplorer(model, tok, text=TEXT, head=0)
    assert a.query.value == len(TEXT) - 1 and a.static_png().startswith(PNG)
    first = images(a.figure)[0].get_array().copy()
    np.testing.assert_allclose(np.ma.getdata(first), a.attentions[0][0].numpy(), rtol=1e-6)
    a.head.value = 1
    second = images(a.figure)[0].get_array()
    np.testing.assert_allclose(np.ma.getdata(second), a.attentions[0][1].numpy(), rtol=1e-6)
    assert not np.allclose(np.ma.getdata(first), np.ma.getdata(second))
    a.query.value = 2
    heights = [b.get_height() for b in bars(plot_axes(a.figure)[-1])]
    np.testing.assert_allclose(heights, a.attentions[0][1, 2].numpy(), rtol=1e-6)
    torch.testing.assert_close(a.query_weights(), a.attentions[0][1, 2])
    a.head.value = "all"
    assert len(images(a.figure)) == model.config.n_head and a.weights().shape[0] == model.config.n_head
    torch.testing.assert_close(a.query_weights(), a.attentions[0][:, 2].mean(0))
    a.layer.value = 1
    np.testing.assert_allclose(np.ma.getdata(images(a.figure)[0].get_array()), a.attentions[1][0].numpy(), rtol=1e-6)
    a.text.value = "abc"
    assert a.tokens == ["a", "b", "c"] and len(a.query.options) == 3 and a.query.value == 2
    with pytest.raises(ValueError, match="head"):
        widgets.AttentionExplorer(model, tok, text=TEXT, head=7)


def test_attention_explorer_keeps_newlines_in_its_text(model, tok):
    a = widgets.AttentionExplorer(model, tok, text="JULIET:\nO Romeo")
    assert isinstance(a.text, widgets.widgets.Textarea)  # a one-line Text box drops newlines on edit
    newline = tok.token_str(tok.encode("\n")[0])
    assert len(a.tokens) == len("JULIET:\nO Romeo") and a.tokens.count(newline) == 1
    a.text.value = "JULIET:\nO Romeo\nRomeo"
    assert a.tokens.count(newline) == 2


@pytest.mark.parametrize("bad", ["€uro", "", "a" * 40])
def test_attention_explorer_shows_no_stale_maps_after_a_bad_text(model, tok, bad):
    a = widgets.AttentionExplorer(model, tok, text=TEXT, head=0)
    a.text.value = bad
    assert a.tokens == [] and a.attentions == () and a.error and a.query.options == ()
    assert "fix the text" in figure_texts(a.figure) and not images(a.figure)
    error_picture = a.static_png()
    for control, value in ((a.layer, 1), (a.head, 1), (a.head, "all")):
        control.value = value  # the old text's maps do not come back
        assert a.static_png() == error_picture and not images(a.figure)
    assert "color:#b00020" in a.status.value
    with pytest.raises(ValueError, match="no attention"):
        a.weights()
    a.text.value = "abc"
    assert a.tokens == ["a", "b", "c"] and a.error is None and len(images(a.figure)) == model.config.n_head


def test_tokenizer_explorer_counts_tokens_per_tokenizer(tok, shakespeare):
    bpe = mg.BPETokenizer.train(shakespeare[:3000], vocab_size=300)
    t = widgets.TokenizerExplorer({"char": tok, "bpe": bpe}, text="the king")
    assert t.counts == {"char": 8, "bpe": len(bpe.encode("the king"))}
    assert t.counts["bpe"] < t.counts["char"]
    t.text.value = "the king is dead"
    assert t.counts["char"] == len("the king is dead")
    assert all(f"id {i}" in t.views["bpe"].value for i in bpe.encode("the king is dead"))
    assert t.static_png().startswith(PNG)
    single = widgets.TokenizerExplorer(tok, text="h")
    assert single.counts == {"CharTokenizer": 1} and "1 token," in single.views["CharTokenizer"].value


def test_tokenizer_explorer_picture_says_which_tokenizer_failed(tok, shakespeare):
    bpe = mg.BPETokenizer.train(shakespeare[:3000], vocab_size=300)
    t = widgets.TokenizerExplorer({"characters": tok, "bpe": bpe}, text="the € sign")
    assert set(t.counts) == {"bpe"} and "€" in t.errors["characters"]
    assert "cannot encode" in t.summary.value
    assert t.static_png().startswith(PNG)
    titles = [ax.get_title(loc="left") for ax in t.figure.axes]
    assert titles[0].startswith("characters: cannot encode") and titles[1].startswith("bpe: ")
    assert "€" in figure_texts(t.figure)  # the reason, in the picture too


def test_embedding_explorer_lists_neighbours_of_the_picked_token(model, tok):
    e = widgets.EmbeddingExplorer(model, tok, k=5)
    assert e.token.value == tok.encode("e")[0] and len(e.nearest) == 5 and e.static_png().startswith(PNG)
    before = e.nearest
    e.token.value = tok.encode("z")[0]
    assert e.nearest == plots.nearest_neighbours(model, tok, "z", 5) and e.nearest != before
    assert all(f"<td>{i}</td>" in e.neighbours.value for _, i, _ in e.nearest)
    e.k.value = 2
    assert len(e.nearest) == 2


class FakeTrainer:
    def __init__(self):
        self.history = {k: [] for k in ("iter", "loss", "lr", "grad_norm", "eval_iter", "val_loss", "train_eval_loss")}

    def step(self, i):
        for k, v in (("iter", i), ("loss", 4.0 - 0.1 * i), ("lr", 1e-3), ("grad_norm", 1.0)):
            self.history[k].append(v)
        return {"iter": i, "loss": 4.0 - 0.1 * i, "lr": 1e-3, "grad_norm": 1.0, "tokens_per_sec": 1.0}


def test_training_monitor_redraws_every_n_steps_and_at_eval_and_end():
    monitor = widgets.TrainingMonitor(every=3)
    assert monitor.draws == 1 and monitor.widget.static_png().startswith(PNG)  # the empty first state
    trainer = FakeTrainer()
    for i in range(7):
        monitor(trainer, "step", trainer.step(i))
    assert monitor.draws == 1 + 2
    line = monitor.widget.figure.axes[0].get_lines()[0]
    assert list(line.get_ydata()) == trainer.history["loss"][:6]
    trainer.history["eval_iter"].append(7)
    trainer.history["val_loss"].append(3.5)
    monitor(trainer, "eval", {"iter": 7, "train_loss": 3.4, "val_loss": 3.5})
    monitor(trainer, "end", {"iter": 7, "train_loss": 3.4, "val_loss": 3.5})
    assert monitor.draws == 5 and "val loss 3.5000" in monitor.status.value
    assert "image/png" in monitor.widget._repr_mimebundle_()[0]


def test_training_monitor_keeps_its_own_history_without_a_trainer_history():
    monitor = widgets.TrainingMonitor(every=5)
    monitor(object(), "step", {"iter": 0, "loss": 4.0, "lr": 1e-3, "grad_norm": 2.0})
    monitor(object(), "eval", {"iter": 1, "train_loss": 3.9, "val_loss": 4.1})
    assert monitor.history == {"iter": [0], "loss": [4.0], "lr": [1e-3], "grad_norm": [2.0],
                               "eval_iter": [1], "val_loss": [4.1], "train_eval_loss": [3.9]}
    with pytest.raises(ValueError, match="every"):
        widgets.TrainingMonitor(every=0)


def test_training_monitor_works_as_a_trainer_callback(tok, shakespeare):
    ids = torch.tensor(tok.encode(shakespeare[:5000]))
    torch.manual_seed(0)
    m = mg.GPT(mg.GPTConfig(vocab_size=tok.vocab_size, block_size=8, n_layer=1, n_head=1, n_embd=8))
    monitor = widgets.TrainingMonitor(every=10)
    cfg = mg.TrainConfig(max_iters=4, batch_size=2, eval_interval=4, eval_iters=1, progress=False)
    mg.Trainer(m, ids[:4500], ids[4500:], cfg, callbacks=[monitor]).fit()
    assert monitor.history["iter"] == [0, 1, 2, 3] and monitor.draws >= 3  # first state, evals, end
    assert monitor.status.value.startswith("step 4")  # steps done, as in the plot title


# --------------------------------------------------------------------------- bertviz

def test_bertviz_views_return_html_with_our_tokens(model, tok):
    pytest.importorskip("bertviz")
    from minigpt.viz import bertviz as adapter
    attention, tokens = adapter.bertviz_attention(model, tok, "ROMEO: hi")
    assert len(attention) == model.config.n_layer and attention[0].shape == (1, model.config.n_head, 9, 9)
    assert tokens[6] == "␣"
    for view in (adapter.head_view, adapter.model_view):
        page = view(model, tok, "ROMEO: hi", html_action="return").data
        assert '"left_text": ["R", "O", "M", "E", "O", ":", "\\u2423", "h", "i"]' in page
    # the weights are the model's, to three decimals, and every row still sums to 1
    _, exact = mg.viz.attention_maps(model, tok, "ROMEO: hi")
    torch.testing.assert_close(attention[1][0].float(), exact[1], atol=5e-4, rtol=0)
    torch.testing.assert_close(attention[1][0].sum(-1), torch.ones(model.config.n_head, 9, dtype=torch.float64),
                               atol=5e-3, rtol=0)
    assert "0000000" not in page  # no float32 noise digits in the page


def test_bertviz_view_shows_our_still_picture_then_a_page_that_fails_politely(model, tok, monkeypatch):
    pytest.importorskip("bertviz")
    import IPython.display
    from minigpt.viz import bertviz as adapter
    shown = []
    monkeypatch.setattr(IPython.display, "display", lambda obj, **kw: shown.append((obj, kw)))
    for view, still in ((adapter.head_view, plots.plot_head_view), (adapter.model_view, plots.plot_model_view)):
        shown.clear()
        assert view(model, tok, "ROMEO: hi") is None
        (still, still_kw), (bundle, kw) = shown
        assert still["image/png"] and still_kw == kw == {"raw": True}
        assert set(bundle) == {"text/html", "text/plain"}  # no Javascript output, whose text shows untrusted
        page, text = bundle["text/html"], bundle["text/plain"]
        assert "needs internet access" in text and "Javascript object" not in text
        assert "cdnjs.cloudflare.com" in page and "needs internet access" in page and "could not load" in page
        assert page.count("<script") == 1 and "requirejs" in page and '"\\u2423"' in page
    import base64
    import io
    width, height = plt.imread(io.BytesIO(base64.b64decode(shown[0][0]["image/png"]))).shape[1::-1]
    figure = plots.plot_model_view(adapter.bertviz_attention(model, tok, "ROMEO: hi")[0], list("ROMEO:␣hi"))
    assert abs(width - figure.get_figwidth() * 96) <= 1 and abs(height - figure.get_figheight() * 96) <= 1
    assert len(figure.axes) == model.config.n_layer * model.config.n_head  # one per layer and head
    with pytest.raises(ValueError, match="html_action"):
        adapter.head_view(model, tok, "ROMEO:", html_action="show")


def test_bertviz_missing_says_how_to_install(model, tok, monkeypatch):
    from minigpt.viz import bertviz as adapter
    monkeypatch.setitem(sys.modules, "bertviz", None)  # as if it were not installed
    with pytest.raises(ImportError, match="pip install bertviz"):
        adapter.head_view(model, tok, "ROMEO:")


# --------------------------------------------------------------------------- videos

def test_videos_are_found_in_the_checkout_the_package_is_installed_from(monkeypatch):
    from pathlib import Path

    from minigpt.viz import video

    monkeypatch.delenv("MINIGPT_VIDEOS", raising=False)
    assert video.videos_folder() == Path(video.__file__).resolve().parents[2] / "animations" / "videos"
    assert video.video_path("SelfAttention").name == "SelfAttention.mp4"   # rendered and committed
    with pytest.raises(FileNotFoundError, match="render_all.py --scenes NoSuchScene"):
        video.video_path("NoSuchScene")


def test_show_animation_displays_the_video_once_or_says_how_to_render(tmp_path, monkeypatch, capsys):
    import IPython.display

    from minigpt.viz import video

    shown = []
    monkeypatch.setattr(IPython.display, "display", shown.append)
    monkeypatch.setenv("MINIGPT_VIDEOS", str(tmp_path / "videos"))
    assert video.show_animation("SelfAttention") is None      # not rendered: the command instead
    assert not shown and "render_all.py --scenes SelfAttention" in capsys.readouterr().out
    (tmp_path / "videos").mkdir()
    (tmp_path / "videos" / "SelfAttention.mp4").write_bytes(b"\x00")
    assert video.show_animation("SelfAttention") is None      # None: a cell ending in it shows one video
    assert len(shown) == 1 and "SelfAttention.mp4" in shown[0]._repr_html_()
