"""Every scene of the course renders: its last frame at low quality is a real picture.

Each scene runs in its own ``manim`` process, as a learner would run it
(``manim -ql -s animations/<file> <Scene>``); ``-s`` fast-forwards the animations and saves only
the last frame, so this checks the whole scene's code and layout without encoding a video.
"""

import ast
import importlib
import importlib.util
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch

import minigpt as mg

REPO = Path(__file__).resolve().parent.parent
ANIMATIONS = REPO / "animations"


def _load(name: str):
    """A module of animations/ by file, as manim loads a scene's file (without importing its siblings)."""
    spec = importlib.util.spec_from_file_location(f"animations_{name}", ANIMATIONS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


render_all = _load("render_all")
SCENES = render_all.SCENES

needs_manim = pytest.mark.skipif(importlib.util.find_spec("manim") is None,
                                 reason="manim is not installed (pip install manim) so no scene can render")


def test_every_scene_is_defined_in_its_file_and_has_a_command():
    for scene, filename in SCENES.items():
        tree = ast.parse((ANIMATIONS / filename).read_text(encoding="utf-8"))
        assert scene in {n.name for n in tree.body if isinstance(n, ast.ClassDef)}, f"{filename} lacks {scene}"
        assert render_all.render_command(scene, "l") == f"manim -ql animations/{filename} {scene}"
        assert (ANIMATIONS / "videos" / f"{scene}.mp4").is_file(), f"{scene} has no rendered video"
    with pytest.raises(ValueError, match="known scenes"):
        render_all.render_command("NoSuchScene")


def test_every_scene_class_in_animations_is_registered():
    """A scene left out of SCENES would never be rendered, embedded or tested."""
    for path in sorted(ANIMATIONS.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:
            if isinstance(node, ast.ClassDef) and any(isinstance(f, ast.FunctionDef) and f.name == "construct"
                                                      for f in node.body):
                assert SCENES.get(node.name) == path.name, f"{path.name}: {node.name} is not in render_all.SCENES"


@needs_manim
def test_token_boxes_set_their_text_on_one_line():
    """Centred by its outline, "." would float mid-box like "·" and "," hang like an apostrophe; every
    box's text stands on the same line instead, whatever its glyphs."""
    sys.path.insert(0, str(ANIMATIONS))  # what manim does for the scene it renders
    try:
        style = importlib.import_module("style")
    finally:
        sys.path.remove(str(ANIMATIONS))
    box = {t: style.token_box(t, font_size=20, height=0.45) for t in (".", ",", "a", "ot", " n", "Tg", "?")}
    for token in box.values():
        assert abs(token.box.get_center()[1]) < 1e-9                            # boxes alike
        assert token.box.get_bottom()[1] < token.label.get_bottom()[1] < token.label.get_top()[1] < token.box.get_top()[1]
    line = box["a"].label.get_bottom()[1]
    for sits_on_the_line in (box["."].label, box["ot"].label, box[" n"].label[-1], box["?"].label, box["Tg"].label[0]):
        assert abs(sits_on_the_line.get_bottom()[1] - line) < 0.01
    assert box[","].label.get_bottom()[1] < line - 0.01 < line + 0.01 < box[","].label.get_top()[1]  # through it
    assert box["Tg"].label[1].get_bottom()[1] < line - 0.03                    # a descender hangs below it
    assert box["."].label.get_center()[1] < box["a"].label.get_center()[1] - 0.03  # "." low, not mid-box


@needs_manim
def test_the_first_probability_on_screen_is_the_models_own(monkeypatch):
    """NextTokenLoop's first bar: the token the shipped model finds most likely after the prompt,
    with its percentage as drawn, against the model run directly."""
    monkeypatch.syspath_prepend(str(ANIMATIONS))  # what manim does for the scene it renders
    scene = importlib.import_module("next_token")
    step = scene.numbers_sampling.generation_steps(scene.PROMPT, steps=1, temperature=scene.SAMPLING_TEMPERATURE,
                                                   k=scene.TOP_K, seed=scene.SEED)["steps"][0]
    bars = scene.bars_for(step["tokens"], step["probs"])
    shown_token, shown_percent = bars.labels[0].text, bars.percents[0].text

    model, tok = mg.pretrained.load("shakespeare-char")
    with torch.no_grad():
        probs = torch.softmax(model(torch.tensor([tok.encode(scene.PROMPT)])).logits[0, -1], dim=-1)
    p, i = probs.max(dim=0)
    assert shown_token == scene.show_token(tok.token_str(int(i)))
    decimals = len(shown_percent.rstrip("%").partition(".")[2])
    assert shown_percent == f"{100 * float(p):.{decimals}f}%"


def _render_last_frame(scene: str, media: Path) -> Path:
    """Render the last frame of ``scene`` in its own manim process; returns the PNG.
    Raises AssertionError with manim's output when it fails."""
    source = ANIMATIONS / SCENES[scene]
    assert source.is_file(), f"{source.relative_to(REPO)} should define the scene {scene} but does not exist"
    media = media / scene  # a folder per scene, so parallel renders never share files
    cmd = [sys.executable, "-m", "manim", "render", "-ql", "-s", "--media_dir", str(media), "--progress_bar", "none",
           "--disable_caching", str(source.relative_to(REPO)), scene]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env=env, timeout=300)
    output = "\n".join((result.stdout + result.stderr).splitlines()[-30:])
    assert result.returncode == 0, f"manim failed to render {scene}:\n{output}"
    images = sorted((media / "images" / source.stem).glob(f"{scene}*.png"))
    assert images, f"manim rendered {scene} but wrote no PNG under {media / 'images'}:\n{output}"
    return images[-1]


@pytest.fixture(scope="module")
def renders(tmp_path_factory):
    """Start every scene's render at once, as many at a time as there are CPU cores (at most 4):
    scene -> future of its PNG path."""
    media = tmp_path_factory.mktemp("media")
    pool = ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1)))
    futures = {scene: pool.submit(_render_last_frame, scene, media) for scene in SCENES}
    yield futures
    pool.shutdown(wait=True, cancel_futures=True)


@needs_manim
@pytest.mark.parametrize("scene", list(SCENES))
def test_scene_renders_a_picture(scene, renders):
    import numpy as np
    from PIL import Image

    png = renders[scene].result()
    pixels = np.asarray(Image.open(png).convert("RGB"), dtype=np.float32)
    assert pixels.shape[0] >= 360 and pixels.shape[1] >= 640, f"{scene}: unexpected size {pixels.shape}"
    background = pixels[0, 0]
    differs = np.abs(pixels - background).sum(axis=-1) > 30
    colours = np.unique(pixels.reshape(-1, 3).astype(np.uint8), axis=0)
    assert pixels.std() > 5, f"{scene}: the last frame is (nearly) blank (pixel std {pixels.std():.1f})"
    assert len(colours) > 16, f"{scene}: the last frame has only {len(colours)} colours"
    assert differs.mean() > 0.01, f"{scene}: only {100 * differs.mean():.2f}% of the last frame is drawn"
