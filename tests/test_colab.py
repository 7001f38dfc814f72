"""Colab's first cell, emulated: a stand-in ``google.colab`` module, a ``file://`` clone of this
checkout, and a fresh virtual environment that has what Colab preinstalls (torch, matplotlib,
ipywidgets, ipykernel, ...) but not minigpt. The set-up cell must clone, install and import the
course without a restart, then notebook 00 runs in FAST mode; where minigpt already imports
it does nothing; a failed clone says what to do. Nothing here uses the network."""

import json
import os
import shutil
import site
import subprocess
import sys
import venv
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))
import notebook_setup  # noqa: E402

NOTEBOOK_00 = REPO / "notebooks" / "00_welcome.ipynb"


def stand_in_colab(where: Path) -> Path:
    """A folder holding a stand-in ``google.colab`` package (Colab's kernel has it imported)."""
    package = where / "google" / "colab"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text('"""Stand-in for Colab\'s google.colab in tests."""\n')
    return where


def setup_cell() -> str:
    return notebook_setup.setup_source(notebook_setup.repository_url())


def run_setup_cell(tmp_path, python_args, env):
    cell = tmp_path / "setup_cell.py"
    # Colab's kernel has google.colab imported before the first cell runs
    cell.write_text("import google.colab\n" + setup_cell(), encoding="utf-8")
    return subprocess.run([sys.executable, *python_args, str(cell)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)


def test_notebooks_carry_the_generated_badge_and_set_up_cell():
    """Every notebook's badge and set-up cell come from pyproject's one address."""
    assert notebook_setup.main(["--check"]) == 0, "run: python scripts/notebook_setup.py"
    repo = notebook_setup.repository_url()
    nb = nbformat.read(NOTEBOOK_00, as_version=4)
    assert notebook_setup.colab_url(repo, NOTEBOOK_00.name) in nb.cells[0].source
    first_code = next(c for c in nb.cells if c.cell_type == "code")
    assert f'"MINIGPT_REPO", "{repo}"' in first_code.source


def test_setup_script_adds_the_cell_and_badge_to_a_new_notebook_and_touches_nothing_else():
    repo = "https://github.com/someone/minigpt"
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3"}})
    body = nbformat.v4.new_code_cell("x = 1", outputs=[nbformat.v4.new_output("stream", text="1\n")])
    nb.cells = [nbformat.v4.new_markdown_cell("# 9 · A new step\n\nIntro."), body]
    assert notebook_setup.update_notebook(nb, repo, "09_new.ipynb") == ["badge", "set-up cell (added)"]
    assert nb.cells[0].source.splitlines()[:3] == [
        "# 9 · A new step", "",
        "[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
        "(https://colab.research.google.com/github/someone/minigpt/blob/main/notebooks/09_new.ipynb)"]
    assert nb.cells[1].source == notebook_setup.setup_source(repo) and nb.cells[2] is body
    assert body.outputs[0].text == "1\n" and nb.metadata.kernelspec.display_name == "Python 3"
    assert notebook_setup.update_notebook(nb, repo, "09_new.ipynb") == []   # a second run changes nothing
    assert len(nb.cells) == 3
    with pytest.raises(SystemExit, match="GitHub"):
        notebook_setup.colab_url("https://gitlab.com/someone/minigpt", "00_welcome.ipynb")


def test_set_up_cell_does_nothing_when_minigpt_imports(tmp_path):
    """minigpt already importable (a local install): no clone, no pip, just the imports."""
    clone = tmp_path / "clone"
    env = dict(os.environ, PYTHONPATH=str(stand_in_colab(tmp_path / "colab")),
               MINIGPT_REPO="file:///nonexistent/minigpt", MINIGPT_CLONE=str(clone))
    done = run_setup_cell(tmp_path, [], env)
    assert done.returncode == 0, done.stderr
    assert not clone.exists()
    assert "installed" not in done.stdout
    assert "minigpt uses device" in done.stdout


def test_set_up_cell_says_what_to_do_when_the_clone_fails(tmp_path):
    """On Colab, minigpt missing and the repository unreachable: a message, not a bare trace."""
    clone = tmp_path / "content" / "minigpt"
    env = dict(os.environ, PYTHONPATH=str(stand_in_colab(tmp_path / "colab")),
               MINIGPT_REPO="file:///nonexistent/minigpt", MINIGPT_CLONE=str(clone))
    failed = run_setup_cell(tmp_path, ["-S", "-s"], env)  # -S: no site-packages, so no minigpt
    assert failed.returncode != 0
    message = failed.stderr
    assert "Could not clone" in message and "file:///nonexistent/minigpt" in message
    assert "online" in message and "run this cell again" in message and str(clone) in message
    assert not (clone / "minigpt").exists()


def colab_like_venv(where: Path) -> Path:
    """A fresh virtual environment that sees this environment's packages (what Colab preinstalls:
    torch, matplotlib, ipywidgets, ipykernel, ...) but not minigpt: the site-packages folders are
    listed in a .pth file, so their own .pth files (minigpt's editable install) are not run."""
    venv.EnvBuilder(with_pip=False).create(where)
    python = where / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                             capture_output=True, text=True, check=True).stdout.strip()
    ours = [p for p in site.getsitepackages() + [site.getusersitepackages()] if os.path.isdir(p)]
    (Path(purelib) / "colab_preinstalled.pth").write_text("\n".join(ours) + "\n")
    return python


@pytest.mark.slow
def test_colab_first_cell_clones_installs_and_notebook_00_runs(tmp_path, monkeypatch):
    if not (REPO / ".git").exists() or shutil.which("git") is None:
        pytest.skip("needs a git checkout and git, to clone it as Colab clones the repository")
    python = colab_like_venv(tmp_path / "venv")
    hidden = subprocess.run([str(python), "-c", "import minigpt"], cwd=tmp_path, capture_output=True)
    assert hidden.returncode != 0, "minigpt must not be importable before the set-up cell runs"

    content = tmp_path / "content"          # Colab's working folder
    content.mkdir()
    clone = content / Path(notebook_setup.CLONE_DIR).name   # as on Colab: /content/<folder>
    kernels = tmp_path / "jupyter" / "kernels" / "colab"
    kernels.mkdir(parents=True)
    (kernels / "kernel.json").write_text(json.dumps({
        "display_name": "Colab stand-in", "language": "python",
        # Colab's kernel has google.colab imported before the first cell runs
        "argv": [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}",
                 "--IPKernelApp.exec_lines=import google.colab"],
        "env": {
            "PYTHONPATH": str(stand_in_colab(tmp_path / "colab")),
            "MINIGPT_REPO": REPO.as_uri(),  # a file:// clone of this checkout's HEAD
            "MINIGPT_CLONE": str(clone),
            # no network in tests: the build backend (setuptools) and every dependency are
            # already there, as on Colab; PIP_NO_BUILD_ISOLATION=0 turns build isolation off
            "PIP_NO_INDEX": "1", "PIP_NO_BUILD_ISOLATION": "0",
        },
    }))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("MINIGPT_FAST", "1")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")

    nb = nbformat.read(NOTEBOOK_00, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(
        "import json, minigpt, torch, matplotlib, ipywidgets\n"
        "print(json.dumps({m.__name__: m.__file__ for m in (minigpt, torch, matplotlib, ipywidgets)}))"))
    nbclient.NotebookClient(nb, timeout=600, kernel_name="colab",
                            resources={"metadata": {"path": str(content)}}).execute()

    def text(cell):
        return "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")

    setup = next(c for c in nb.cells if c.cell_type == "code")
    assert f"minigpt installed from {REPO.as_uri()}" in text(setup)
    assert "minigpt uses device" in text(setup)
    assert (clone / "minigpt" / "__init__.py").exists()
    assert (clone / "animations" / "videos" / "NextTokenLoop.mp4").exists(), "videos come from the clone"
    held = (clone / ".colab-held-versions.txt").read_text().split()
    assert {line.split("==")[0] for line in held} == {"torch", "matplotlib", "ipywidgets"}
    assert not [o for c in nb.cells for o in c.get("outputs", []) if o.output_type == "error"]

    where = json.loads(text(nb.cells[-1]).strip().splitlines()[-1])
    assert Path(where["minigpt"]).is_relative_to(clone)          # imported in this kernel, no restart
    for name in ("torch", "matplotlib", "ipywidgets"):          # Colab's own copies, not replaced
        assert not Path(where[name]).is_relative_to(tmp_path / "venv"), f"{name} was reinstalled"
    # a restarted runtime: a new kernel in the same folder finds minigpt through the editable
    # install, so the set-up cell does nothing (an unreachable address proves it clones nothing)
    restarted = subprocess.run(
        [str(python), "-c", "import google.colab\n" + setup_cell() + "\nprint('minigpt at', mg.__file__)"],
        cwd=content, capture_output=True, text=True, timeout=300,
        env=dict(os.environ, PYTHONPATH=str(tmp_path / "colab"), MINIGPT_REPO="file:///nonexistent/minigpt",
                 MINIGPT_CLONE=str(clone)))
    assert restarted.returncode == 0, restarted.stderr
    assert "installed" not in restarted.stdout
    assert f"minigpt at {clone / 'minigpt' / '__init__.py'}" in restarted.stdout
