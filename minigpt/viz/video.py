"""Show a rendered Manim animation of the course inside a notebook."""

from __future__ import annotations

from pathlib import Path

ANIMATIONS = Path(__file__).resolve().parents[2] / "animations"
# where a pip-installed package (Colab) finds the rendered videos, which live in the repository
REPOSITORY_VIDEOS = "https://raw.githubusercontent.com/minigpt-course/minigpt/main/animations/videos"

# scene -> file under animations/ that defines it
SCENES = {
    "NextTokenLoop": "next_token.py",
    "Tokenization": "tokenization.py",
    "EmbeddingsAndPositions": "embeddings.py",
    "SelfAttention": "attention.py",
    "CausalMask": "multihead.py",
    "MultiHeadAttention": "multihead.py",
    "DecoderBlock": "decoder_block.py",
    "Training": "training.py",
    "DecodingStrategies": "decoding.py",
}


def video_path(scene: str) -> Path:
    """Where ``animations/render_all.py`` puts the video of ``scene``."""
    if scene not in SCENES:
        raise ValueError(f"no animation named {scene!r}; known scenes: {', '.join(SCENES)}")
    return ANIMATIONS / "videos" / f"{scene}.mp4"


def render_command(scene: str, quality: str = "m") -> str:
    """The Manim CLI command that renders ``scene`` (quality l, m, h or k)."""
    video_path(scene)  # validates the name
    return f"manim -q{quality} animations/{SCENES[scene]} {scene}"


def show_animation(scene: str, width: int = 720):
    """Display the rendered video of ``scene`` (an IPython Video), or, if it has not been
    rendered here, say which command renders it. Returns None, so that a notebook cell ending
    in this call shows the video once."""
    import os
    import sys

    from IPython.display import Video, display

    path = video_path(scene)
    on_colab = "google.colab" in sys.modules
    if path.exists():
        # JupyterLab serves files relative to the notebook; Colab cannot, so there we embed.
        src = str(path) if on_colab else os.path.relpath(path, os.getcwd())
        display(Video(src, embed=on_colab, width=width, html_attributes="controls loop"))
    elif on_colab:  # installed from git, without the animations folder: stream it from the repository
        display(Video(f"{REPOSITORY_VIDEOS}/{scene}.mp4", width=width, html_attributes="controls loop"))
    else:
        print(f"The animation {scene} has not been rendered here yet. From the repository root run:\n"
              f"  {render_command(scene)}\nor render them all with: python animations/render_all.py")
    return None
