"""Our model's attention in bertviz's interactive views (https://github.com/jessevig/bertviz).

    from minigpt.viz.bertviz import head_view, model_view
    head_view(model, tok, "ROMEO:\\nBut soft, what light")

bertviz draws with JavaScript that it loads from a CDN (require.js, d3, jQuery) when the cell
runs: offline, and in static viewers of a saved notebook (GitHub, nbviewer), the view stays
blank. ``AttentionExplorer`` and ``plot_attention_layer`` show the same weights with nothing to
download, so the course never depends on these views.
"""

from __future__ import annotations

import torch

from .plots import attention_maps, visible


def _bertviz():
    try:
        import bertviz
    except ImportError as e:
        raise ImportError("the bertviz views need the bertviz package: pip install bertviz "
                          "(or use minigpt.viz.AttentionExplorer, which needs nothing more)") from e
    return bertviz


def bertviz_attention(model, tokenizer, text: str):
    """The attention of ``model`` on ``text`` in the format bertviz takes.

    Returns (attention: tuple with one [1, H, T, T] float64 tensor per layer, rounded to three
    decimals, tokens: T token strings, spaces shown as ␣).
    """
    tokens, attentions = attention_maps(model, tokenizer, text)
    # bertviz writes every weight into the page as JSON text; float32 weights print 17 digits each
    # (0.123 -> 0.12300000339746475). Three decimals draw the same picture in a page many times smaller.
    attention = tuple(torch.round(a.double(), decimals=3).unsqueeze(0) for a in attentions)
    return attention, [visible(t) for t in tokens]


def head_view(model, tokenizer, text: str, layer=None, heads=None, html_action: str = "view"):
    """bertviz's head view: lines from each token to those it attends to, one colour per head.

    layer: layer shown first; heads: heads shown first (default all). html_action: "view"
    displays it in the notebook (returns None); "return" returns an IPython HTML object
    (``.data`` is the page) to save or embed.
    """
    attention, tokens = bertviz_attention(model, tokenizer, text)
    return _bertviz().head_view(attention, tokens, layer=layer, heads=heads, prettify_tokens=False,
                                html_action=html_action)


def model_view(model, tokenizer, text: str, include_layers=None, include_heads=None,
               display_mode: str = "light", html_action: str = "view"):
    """bertviz's model view: a thumbnail of every head of every layer; click one to enlarge it.

    include_layers / include_heads: lists of indices to keep (default all; fewer is faster for
    long texts). display_mode: "light" or "dark". html_action: as in ``head_view``.
    """
    attention, tokens = bertviz_attention(model, tokenizer, text)
    return _bertviz().model_view(attention, tokens, include_layers=include_layers, include_heads=include_heads,
                                 display_mode=display_mode, prettify_tokens=False, html_action=html_action)
