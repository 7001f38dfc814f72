"""Our model's attention in bertviz's interactive views (https://github.com/jessevig/bertviz).

    from minigpt.viz.bertviz import head_view, model_view
    head_view(model, tok, "ROMEO:\\nBut soft, what light")

bertviz draws with JavaScript that it loads from a CDN (require.js, d3, jQuery) when the cell
runs, so its views need a browser with internet access, and a trusted notebook. The kernel
cannot know what the browser can reach, so each view comes in two parts: first a still picture
of the same weights drawn by ``plots.py`` (``plot_head_view`` / ``plot_model_view``), which
shows everywhere (offline, on GitHub, in an untrusted notebook); then bertviz's view, with a
line that says what it needs and, where it cannot load, a message in its place instead of a
JavaScript error.
"""

from __future__ import annotations

import base64
import html
import io
import json
import re

import torch

from .plots import attention_maps, plot_head_view, plot_model_view, visible

REQUIRE_JS = "https://cdnjs.cloudflare.com/ajax/libs/require.js/2.3.6/require.min.js"
NOTE = ("bertviz's interactive view loads require.js, d3 and jQuery from cdnjs.cloudflare.com: it needs "
        "internet access, and a trusted notebook (run the cell). The picture above shows the same weights "
        "without them.")


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


def _page(bertviz_html: str, what: str) -> str:
    """bertviz's returned page, made to fail politely: its script runs only once require.js has
    loaded (and loads it if the page has none), and after a while without a drawing the view
    says why instead of staying blank."""
    match = re.search(r'<div id="(bertviz-[0-9a-f]+)"', bertviz_html)
    start = bertviz_html.find('<script type="text/javascript">')
    if match is None or start < 0:  # a bertviz that builds its page differently: use it as it is
        return f'<div style="color:#555;font-size:90%">{html.escape(NOTE)}</div>' + bertviz_html
    root = match.group(1)
    body = bertviz_html[bertviz_html.find("<div", 0, match.end()):start]
    script = bertviz_html[start + len('<script type="text/javascript">'):bertviz_html.rindex("</script>")]
    failure = (f"bertviz's {what} could not load its JavaScript from cdnjs.cloudflare.com (offline?): "
               "the picture above shows the same weights.")
    return f"""<div style="color:#555;font-size:90%;margin-bottom:4px">{html.escape(NOTE)}</div>
<div id="{root}-box" style="display:none">{body}</div>
<script type="text/javascript">
(function () {{
  function reveal() {{  // hidden until a script runs: where none can (untrusted), only the note shows
    var box = document.getElementById({json.dumps(root + "-box")});
    if (box) {{ box.style.display = "block"; }}
  }}
  function fail() {{
    reveal();
    var root = document.getElementById({json.dumps(root)});
    if (root && !root.querySelector("svg")) {{
      root.innerHTML = '<span style="color:#b00020">' + {json.dumps(html.escape(failure))} + '</span>';
    }}
  }}
  function draw() {{
    reveal();
    try {{
{script}
    }} catch (e) {{ fail(); }}
    setTimeout(fail, 30000);  // d3 never came: say so rather than stay blank
  }}
  if (typeof window.requirejs === "function") {{ draw(); return; }}
  var s = document.createElement("script");
  s.src = {json.dumps(REQUIRE_JS)};
  s.onload = draw;
  s.onerror = fail;
  document.head.appendChild(s);
}})();
</script>
"""


def _show(figure, page: str, what: str) -> None:
    """Display the still picture, then bertviz's page as one HTML output (no JavaScript output:
    an untrusted notebook would print ``<IPython.core.display.Javascript object>`` for it)."""
    from IPython.display import display
    png = io.BytesIO()
    figure.savefig(png, format="png", dpi=96)  # as a PNG whatever matplotlib's backend (Agg draws no inline figures)
    display({"image/png": base64.b64encode(png.getvalue()).decode("ascii"),
             "text/plain": f"[still {what} of the attention weights]"}, raw=True)
    display({"text/html": page,
             "text/plain": f"[bertviz {what}: interactive, needs internet access; the picture above shows "
                           f"the same weights]"}, raw=True)


def _check_action(html_action):
    if html_action not in ("view", "return"):
        raise ValueError(f"html_action must be 'view' or 'return', got {html_action!r}")


def head_view(model, tokenizer, text: str, layer=None, heads=None, html_action: str = "view"):
    """bertviz's head view: lines from each token to those it attends to, one colour per head.

    layer: layer shown first; heads: heads shown first (default all). html_action: "view"
    displays our still head view of that layer (``plots.plot_head_view``), then bertviz's
    interactive one below it (returns None); "return" returns bertviz's page as an IPython HTML
    object (``.data`` is the page) to save or embed.
    """
    _check_action(html_action)
    attention, tokens = bertviz_attention(model, tokenizer, text)
    page = _bertviz().head_view(attention, tokens, layer=layer, heads=heads, prettify_tokens=False,
                                html_action="return")
    if html_action == "return":
        return page
    _show(plot_head_view(attention, tokens, layer or 0, heads), _page(page.data, "head view"), "head view")


def model_view(model, tokenizer, text: str, include_layers=None, include_heads=None,
               display_mode: str = "light", html_action: str = "view"):
    """bertviz's model view: a thumbnail of every head of every layer; click one to enlarge it.

    include_layers / include_heads: lists of indices to keep (default all; fewer is faster for
    long texts). display_mode: "light" or "dark". html_action: as in ``head_view`` (the still
    picture is ``plots.plot_model_view``).
    """
    _check_action(html_action)
    attention, tokens = bertviz_attention(model, tokenizer, text)
    page = _bertviz().model_view(attention, tokens, include_layers=include_layers, include_heads=include_heads,
                                 display_mode=display_mode, prettify_tokens=False, html_action="return")
    if html_action == "return":
        return page
    _show(plot_model_view(attention, tokens, include_layers, include_heads), _page(page.data, "model view"),
          "model view")
