"""Pictures of the model at work.

- ``plots``: static matplotlib figures (for exports and handouts), e.g. ``plot_attention``.
- ``widgets``: interactive ipywidgets explorers that draw with those same plots, e.g.
  ``NextTokenExplorer(model, tok)``.
- ``bertviz``: our attention in bertviz's head and model views.
- ``video``: rendered Manim animations shown in a notebook.

    import minigpt as mg
    tokens, attentions = mg.viz.attention_maps(model, tok, "ROMEO:")
    mg.viz.plot_attention_layer(attentions, tokens, layer=0)
    mg.viz.AttentionExplorer(model, tok, "ROMEO:")

Names are imported on first use, so plotting does not need ipywidgets, nor bertviz.
"""

from importlib import import_module

_EXPORTS = {
    **{name: "plots" for name in (
        "plot_next_token_distribution", "plot_attention", "plot_attention_heads", "plot_attention_layer",
        "plot_query_attention", "attention_maps", "plot_tokens", "tokens_html", "plot_embeddings_2d",
        "nearest_neighbours", "project_2d", "token_id", "plot_positional_encodings", "sinusoidal_positions",
        "plot_loss_curves", "plot_grad_norms", "plot_head_view", "plot_model_view", "plot_message", "cjk_font")},
    **{name: "widgets" for name in (
        "NextTokenExplorer", "AttentionExplorer", "TokenizerExplorer", "EmbeddingExplorer", "TrainingMonitor",
        "FigureBox")},
    "head_view": "bertviz", "model_view": "bertviz", "bertviz_attention": "bertviz",
    **{name: "seq2seq" for name in ("cross_attention_maps", "plot_cross_attention", "CrossAttentionExplorer",
                                    "Seq2SeqChat", "plot_fill_in", "FillInExplorer")},
    **{name: "align" for name in ("plot_reward_scores", "plot_ppo_history", "plot_dpo_history", "CompareAligned")},
}
_SUBMODULES = {"plots", "widgets", "bertviz", "video"}

__all__ = sorted(_EXPORTS) + sorted(_SUBMODULES)


def __getattr__(name):
    if name in _SUBMODULES:
        return import_module(f".{name}", __name__)
    if name in _EXPORTS:
        value = getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'minigpt.viz' has no attribute {name!r}")


def __dir__():
    return __all__
