"""Show a rendered Manim animation of the course inside a notebook.

The videos live in the repository, in ``animations/videos/<Scene>.mp4`` (rendered there by
``python animations/render_all.py``), not in the package: they are found in the checkout that
``minigpt`` is installed from (``pip install -e .``, as the notebooks' set-up cell does on Colab
after cloning). ``MINIGPT_VIDEOS`` names another folder.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Optional

_RENDER_HINT = "python animations/render_all.py --scenes {scene}   (from the repository root)"


def videos_folder() -> Optional[Path]:
    """$MINIGPT_VIDEOS, else ``animations/videos`` of the checkout this package is installed from
    (the folder holding ``minigpt/`` and ``pyproject.toml``); None when minigpt was installed
    without its repository (a plain ``pip install``)."""
    if os.environ.get("MINIGPT_VIDEOS"):
        return Path(os.environ["MINIGPT_VIDEOS"]).expanduser()
    checkout = Path(__file__).resolve().parents[2]
    if not (checkout / "pyproject.toml").is_file():
        return None
    return checkout / "animations" / "videos"


def video_path(scene: str) -> Path:
    """The rendered video of ``scene`` (e.g. "SelfAttention"). Raises FileNotFoundError saying how
    to get it when it is not there."""
    if not isinstance(scene, str) or not scene.isidentifier():
        raise ValueError(f"scene must be the name of a scene class, e.g. 'SelfAttention', got {scene!r}")
    folder = videos_folder()
    if folder is None:
        raise FileNotFoundError(
            "minigpt is installed without its repository, which holds the videos: clone the "
            "repository and install it from there (pip install -e .), or set MINIGPT_VIDEOS to a "
            "folder of rendered videos")
    path = folder / f"{scene}.mp4"
    if not path.is_file():
        known = sorted(p.stem for p in folder.glob("*.mp4")) if folder.is_dir() else []
        there = f"; rendered videos there: {', '.join(known)}" if known else ""
        raise FileNotFoundError(f"no video of the scene {scene!r} in {folder}{there}. Render it with:\n  "
                                + _RENDER_HINT.format(scene=scene))
    return path


def show_animation(scene: str, width: int = 720):
    """Display the rendered video of ``scene`` (an IPython Video), or, if it has not been
    rendered here, say how to render it. Returns None, so that a notebook cell ending in this
    call shows the video once."""
    from IPython.display import Video, display

    try:
        path = video_path(scene)
    except FileNotFoundError as e:
        print(e)
        return None
    on_colab = "google.colab" in sys.modules
    # JupyterLab serves files relative to the notebook; Colab cannot, so there we embed.
    src = str(path) if on_colab else os.path.relpath(path, os.getcwd())
    display(Video(src, embed=on_colab, width=width, html_attributes="controls loop"))
    return None
