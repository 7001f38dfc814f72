"""Every notebook executes top to bottom in a fresh kernel, in FAST mode, without error."""

import os
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 7, f"expected the seven course notebooks, found {[p.name for p in NOTEBOOKS]}"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_in_a_fresh_kernel(path, monkeypatch):
    monkeypatch.setenv("MINIGPT_FAST", "1")
    # one thread per kernel: on a 2-core machine torch's default thread pool fights itself
    # over tiny FAST-mode tensors and runs several times slower
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(path.parent)}})
    client.execute()  # the check: raises CellExecutionError, naming the cell and the error, on any error
