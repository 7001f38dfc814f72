"""Write every notebook's "Open in Colab" badge and its first code cell (the set-up) from the
one repository address in pyproject.toml (``[project.urls] Repository``).

    python scripts/notebook_setup.py           # rewrite the badges and set-up cells (and README's badge list)
    python scripts/notebook_setup.py --check   # exit 1, naming the files that are not up to date

Only the set-up cell and the badge line change; every other cell, output and metadata stays as
it is. Change the address in pyproject.toml, run this, and every notebook follows.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
README = ROOT / "README.md"
BRANCH = "main"                      # the branch the Colab badges open
# Where the set-up cell clones the course on Colab. Not /content/minigpt: Colab's kernels start in
# /content, where a folder named minigpt would be imported as an empty namespace package instead
# of the installed minigpt after a restart.
CLONE_DIR = "/content/minigpt-course"
BADGE_IMAGE = "https://colab.research.google.com/assets/colab-badge.svg"
SETUP_MARK = "# Set-up."             # the first line of every set-up cell
README_START, README_END = "<!-- colab-badges: start -->", "<!-- colab-badges: end -->"

SETUP_CELL = '''\
# Set-up. On Colab, the first time, this fetches the course and installs it; elsewhere it does nothing.
import sys
if "google.colab" in sys.modules:
    try:
        import minigpt
    except ImportError:
        import os, subprocess
        from importlib import invalidate_caches, metadata
        repo = os.environ.get("MINIGPT_REPO", "{repo}")
        clone = os.environ.get("MINIGPT_CLONE", "{clone}")
        if not os.path.isdir(os.path.join(clone, "minigpt")):
            git = subprocess.run(["git", "clone", "--depth", "1", repo, clone], capture_output=True, text=True)
            if git.returncode:
                raise RuntimeError(
                    f"Could not clone the course from {{repo}} into {{clone}}:\\n{{git.stderr}}\\n"
                    "Check that the runtime is connected and online, then run this cell again; or upload "
                    f"a copy of the repository to {{clone}} (a folder holding minigpt/) and run it again.") from None
        # pip adds what the notebooks need and Colab lacks (bertviz, gguf, ...); Colab's own torch,
        # matplotlib and ipywidgets are held at their versions, so that nothing replaces them
        installed = {{d.metadata["Name"].lower(): d.version for d in metadata.distributions()}}
        held = os.path.join(clone, ".colab-held-versions.txt")
        with open(held, "w") as f:
            for name in ("torch", "matplotlib", "ipywidgets"):
                if name in installed:
                    f.write(f"{{name}}=={{installed[name]}}\\n")
        pip = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-c", held, "-e", f"{{clone}}[notebooks]"],
                             capture_output=True, text=True)
        if pip.returncode:
            raise RuntimeError(f"Installing the course from {{clone}} failed:\\n{{pip.stdout}}{{pip.stderr}}\\n"
                               "Run this cell again; if the same message comes back, start afresh with "
                               "Runtime → Disconnect and delete runtime.") from None
        # Chinese text in the plots needs a font with CJK characters, which Colab lacks
        if not os.path.exists("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc"):
            subprocess.run("apt-get install -y -qq fonts-wqy-zenhei || (apt-get update -qq && "
                           "apt-get install -y -qq fonts-wqy-zenhei)", shell=True, capture_output=True)
        sys.path.insert(0, clone)          # importable in this kernel at once, no restart needed
        invalidate_caches()
        print(f"minigpt installed from {{repo}} (cloned into {{clone}})")
import torch
import minigpt as mg
device = mg.pick_device(verbose=True)   # CUDA if present, else CPU; MINIGPT_DEVICE=mps to opt in
FAST = mg.is_fast()                      # MINIGPT_FAST=1 shrinks everything for a quick run'''


def repository_url(pyproject: Path = ROOT / "pyproject.toml") -> str:
    """The repository address: ``[project.urls] Repository`` in pyproject.toml."""
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib
    urls = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"].get("urls", {})
    if "Repository" not in urls:
        raise SystemExit(f"{pyproject} has no Repository under [project.urls]; add the course's git address there")
    return urls["Repository"].rstrip("/").removesuffix(".git")


def colab_url(repo: str, notebook: str) -> str:
    """Colab's address that opens ``notebooks/<notebook>`` of ``repo`` (a GitHub repository)."""
    m = re.fullmatch(r"https://github\.com/([^/]+/[^/]+)", repo)
    if not m:
        raise SystemExit(f"Colab opens notebooks from GitHub only; the Repository address {repo!r} "
                         "in pyproject.toml is not https://github.com/<owner>/<name>")
    return f"https://colab.research.google.com/github/{m.group(1)}/blob/{BRANCH}/notebooks/{notebook}"


def badge(repo: str, notebook: str) -> str:
    return f"[![Open In Colab]({BADGE_IMAGE})]({colab_url(repo, notebook)})"


def setup_source(repo: str) -> str:
    """The first code cell of every notebook."""
    return SETUP_CELL.format(repo=repo, clone=CLONE_DIR)


def _with_badge(markdown: str, line: str) -> str:
    """``markdown`` with the badge ``line`` under its title (or on top), replacing an older badge."""
    lines = markdown.split("\n")
    for i, old in enumerate(lines):
        if BADGE_IMAGE in old:  # an older badge, and the blank line that separated it
            if lines[i + 1:i + 2] == [""]:
                del lines[i + 1]
            elif i and lines[i - 1] == "":
                del lines[i - 1]
                i -= 1
            del lines[i]
            break
    if lines and lines[0].startswith("# "):
        return "\n".join(lines[:1] + ["", line] + lines[1:])
    return "\n".join([line, ""] + lines)


def update_notebook(nb, repo: str, name: str) -> list[str]:
    """Put the badge and the set-up cell into ``nb`` (in place); return what changed."""
    changed = []
    first_md = next((c for c in nb.cells if c.cell_type == "markdown"), None)
    if first_md is None:
        first_md = nbformat.v4.new_markdown_cell("")
        nb.cells.insert(0, first_md)
    new_md = _with_badge(first_md.source, badge(repo, name))
    if new_md != first_md.source:
        first_md.source = new_md
        changed.append("badge")
    source = setup_source(repo)
    first_code = next((i for i, c in enumerate(nb.cells) if c.cell_type == "code"), None)
    if first_code is not None and nb.cells[first_code].source.startswith(SETUP_MARK):
        if nb.cells[first_code].source != source:
            nb.cells[first_code].source = source
            changed.append("set-up cell")
    else:  # no set-up cell yet: add one before the first code cell
        at = first_code if first_code is not None else len(nb.cells)
        nb.cells.insert(at, nbformat.v4.new_code_cell(source))
        changed.append("set-up cell (added)")
    return changed


def readme_badges(repo: str, notebooks: list[Path]) -> str:
    rows = [f"| [{p.stem}](notebooks/{p.name}) | {badge(repo, p.name)} |" for p in notebooks]
    return "\n".join([README_START, "| Notebook | Colab |", "|---|---|", *rows, README_END])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--check", action="store_true", help="change nothing; exit 1 if a file is not up to date")
    args = p.parse_args(argv)
    repo = repository_url()
    notebooks = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    stale = []
    for path in notebooks:
        nb = nbformat.read(path, as_version=4)
        changed = update_notebook(nb, repo, path.name)
        if changed:
            stale.append(f"{path.relative_to(ROOT)}: {', '.join(changed)}")
            if not args.check:
                nbformat.write(nb, path)
    text = README.read_text(encoding="utf-8")
    if README_START in text and README_END in text:
        head, rest = text.split(README_START, 1)
        new = head + readme_badges(repo, notebooks) + rest.split(README_END, 1)[1]
        if new != text:
            stale.append("README.md: Colab badges")
            if not args.check:
                README.write_text(new, encoding="utf-8")
    for line in stale:
        print(("out of date: " if args.check else "updated: ") + line)
    if args.check and stale:
        print("run: python scripts/notebook_setup.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
