"""Render every animation of the course with the Manim CLI, in one command.

    python animations/render_all.py                      # all scenes, medium quality (720p30)
    python animations/render_all.py --quality l          # quick low-quality pass (480p15)
    python animations/render_all.py --scenes SelfAttention Tokenization
    python animations/render_all.py --stills-only        # gallery pictures only, no videos (fast)

Each scene is rendered in its own ``manim`` process (as ``manim -q<q> animations/<file> <Scene>``);
its video is copied to ``animations/videos/<Scene>.mp4`` (where the notebooks'
``minigpt.viz.video.show_animation`` looks) and a still to ``animations/gallery/<Scene>.png``.
The still is taken from the video at ``gallery_at`` (a fraction of its length, a class
attribute of the scene; the last frame when unset). ``SCENES`` below lists every scene and its
file. Intermediate files go to ``media/`` (git-ignored).
"""

from __future__ import annotations

import argparse
import ast
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
VIDEOS = HERE / "videos"
GALLERY = HERE / "gallery"
QUALITIES = {"l": "480p15", "m": "720p30", "h": "1080p60", "p": "1440p60", "k": "2160p60"}

# Every scene of the course, in course order: scene class -> the file beside this one that defines it.
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
    "EncoderDecoder": "encoder_decoder.py",
    "TeacherForcing": "teacher_forcing.py",
    "RotaryPositions": "rope.py",
    "ChatTemplate": "chat_template.py",
    "LossMask": "loss_mask.py",
    "RLHFLoop": "rlhf.py",
}


def render_command(scene: str, quality: str = "m") -> str:
    """The Manim CLI command, run from the repository root, that renders ``scene`` (quality l, m, h, p or k)."""
    if scene not in SCENES:
        raise ValueError(f"no scene named {scene!r}; known scenes: {', '.join(SCENES)}")
    return f"manim -q{quality} animations/{SCENES[scene]} {scene}"


def gallery_at(scene: str) -> float:
    """The scene's ``gallery_at`` class attribute (read from its source, without importing it), or 1.0."""
    tree = ast.parse((HERE / SCENES[scene]).read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name == scene:
            for stmt in node.body:
                if (isinstance(stmt, ast.Assign) and any(getattr(t, "id", None) == "gallery_at" for t in stmt.targets)
                        and isinstance(stmt.value, ast.Constant)):
                    return min(max(float(stmt.value.value), 0.0), 1.0)
    return 1.0


def _manim(args: list[str], media: Path) -> None:
    cmd = [sys.executable, "-m", "manim", "render", "--media_dir", str(media), "--progress_bar", "none",
           "--verbosity", "WARNING", *args]
    result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).splitlines()[-40:])
        raise RuntimeError(f"manim failed ({' '.join(cmd)}):\n{tail}")


def frame_at(video: Path, fraction: float, out: Path, search_seconds: float = 3.0) -> Path:
    """Save a frame near ``fraction`` (0..1) of ``video``'s length as a PNG (decoded with PyAV).

    A frame caught mid-animation shows half-faded captions, so the nearest frame at rest (equal to
    the frame before it: the scene is waiting) within ``search_seconds`` is taken instead, when
    there is one.
    """
    import av
    import numpy as np

    with av.open(str(video)) as container:
        n = sum(1 for _ in container.decode(video=0))
    if n == 0:
        raise RuntimeError(f"{video} holds no frames")
    target = min(n - 1, int(round(fraction * (n - 1))))
    with av.open(str(video)) as container:
        fps = float(container.streams.video[0].average_rate or 30)
        reach = int(search_seconds * fps)
        window = {}
        for i, frame in enumerate(container.decode(video=0)):
            if i > target + reach:
                break
            if i >= target - reach - 1:
                window[i] = frame.to_ndarray(format="rgb24")
    still = [i for i in window if i - 1 in window and np.abs(window[i].astype(np.int16) - window[i - 1]).max() <= 2]
    best = min(still, key=lambda i: abs(i - target)) if still else target
    from PIL import Image

    _atomic_image(Image.fromarray(window[best]), out)
    return out


def _atomic_image(image, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp.png")
    image.save(tmp)
    os.replace(tmp, out)


def _atomic_copy(src: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.copyfile(src, tmp)
    os.replace(tmp, dest)


def render_scene(scene: str, quality: str = "m", media: Path = REPO / "media", video: bool = True,
                 still: bool = True) -> dict:
    """Render one scene; returns {"scene", "seconds", "video" (path or None), "still" (path or None)}."""
    if scene not in SCENES:
        raise ValueError(f"no scene named {scene!r}; known scenes: {', '.join(SCENES)}")
    source = HERE / SCENES[scene]
    if not source.is_file():
        raise FileNotFoundError(f"{source} (which should define {scene}) does not exist")
    t0 = time.perf_counter()
    rel = str(source.relative_to(REPO))
    result = {"scene": scene, "video": None, "still": None}
    if video:
        _manim([f"-q{quality}", rel, scene], media)
        rendered = media / "videos" / source.stem / QUALITIES[quality] / f"{scene}.mp4"
        if not rendered.is_file():
            raise RuntimeError(f"manim reported success but {rendered} is missing")
        result["video"] = VIDEOS / f"{scene}.mp4"
        _atomic_copy(rendered, result["video"])
        if still:
            result["still"] = frame_at(rendered, gallery_at(scene), GALLERY / f"{scene}.png")
    elif still:
        _manim([f"-q{quality}", "-s", rel, scene], media)
        images = sorted((media / "images" / source.stem).glob(f"{scene}*.png"), key=lambda p: p.stat().st_mtime)
        if not images:
            raise RuntimeError(f"manim reported success but wrote no image for {scene} under {media / 'images'}")
        result["still"] = GALLERY / f"{scene}.png"
        _atomic_copy(images[-1], result["still"])
    result["seconds"] = time.perf_counter() - t0
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quality", "-q", choices=sorted(QUALITIES), default="m",
                        help="l 480p15, m 720p30 (default), h 1080p60, p 1440p60, k 2160p60")
    parser.add_argument("--scenes", nargs="+", metavar="SCENE", choices=list(SCENES),
                        help=f"render only these (default: all of {', '.join(SCENES)})")
    parser.add_argument("--stills", action="store_true",
                        help="save gallery stills (the default; kept so scripts may say so)")
    parser.add_argument("--stills-only", action="store_true", help="only the gallery stills, no videos (fast)")
    parser.add_argument("--no-stills", action="store_true", help="only the videos")
    parser.add_argument("--media-dir", type=Path, default=REPO / "media", help="where manim writes (default: media/)")
    args = parser.parse_args(argv)
    if args.stills_only and args.no_stills:
        parser.error("--stills-only and --no-stills leave nothing to render")

    failed = []
    for scene in args.scenes or list(SCENES):
        try:
            r = render_scene(scene, args.quality, args.media_dir, video=not args.stills_only,
                             still=not args.no_stills)
        except (RuntimeError, FileNotFoundError) as e:
            print(f"{scene:<24} FAILED: {e}", file=sys.stderr)
            failed.append(scene)
            continue
        parts = [f"{r['seconds']:6.1f} s"]
        if r["video"]:
            parts.append(f"{r['video'].relative_to(REPO)} ({r['video'].stat().st_size / 1e6:.1f} MB)")
        if r["still"]:
            parts.append(str(r["still"].relative_to(REPO)))
        print(f"{scene:<24} " + "  ".join(parts), flush=True)
    if failed:
        print(f"{len(failed)} scene(s) failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
