"""Execute the course notebooks in place, storing their outputs (widgets as their pictures).

    python scripts/execute_notebooks.py                 # every notebook, full mode
    python scripts/execute_notebooks.py --fast 03 05    # FAST mode, notebooks 03 and 05

Prints how long each notebook took, for the table in README.
"""

import argparse
import os
import time
from pathlib import Path

import nbclient
import nbformat

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
KERNEL = "python3"


def kernelspec(name: str = KERNEL) -> dict:
    """The notebook's kernelspec metadata exactly as JupyterLab writes it when it opens the
    notebook (display_name "Python 3 (ipykernel)", from the installed kernel): with any other
    value, JupyterLab rewrites it and marks a notebook changed as soon as it is opened."""
    from jupyter_client.kernelspec import KernelSpecManager
    spec = KernelSpecManager().get_kernel_spec(name)
    return {"display_name": spec.display_name, "language": spec.language, "name": name}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("only", nargs="*", help="number prefixes of the notebooks to run (default: all)")
    p.add_argument("--fast", action="store_true", help="run in FAST mode (MINIGPT_FAST=1)")
    args = p.parse_args()
    os.environ["MINIGPT_FAST"] = "1" if args.fast else "0"
    # one thread per kernel, as in the tests: on a busy 2-core machine torch's thread pool fights
    # the other jobs and the timings stored in the notebooks come out many times too slow
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    # the corpora copies beside the checkout, as the tests use them
    shared = NOTEBOOKS.parent.parent / "shared" / "data"
    if shared.is_dir():
        os.environ.setdefault("MINIGPT_DATA_DIR", str(shared))
    for path in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")):
        if args.only and not any(path.name.startswith(o) for o in args.only):
            continue
        nb = nbformat.read(path, as_version=4)
        start = time.perf_counter()
        execute(nb, path.parent)
        nbformat.write(nb, path)
        print(f"{path.name}: {time.perf_counter() - start:.0f} s", flush=True)


def execute(nb, cwd) -> None:
    """Run every cell of the notebook ``nb`` (in place) in a fresh kernel started in ``cwd``."""
    # No widget state in the stored notebook: each widget's output carries its picture as a plain
    # image/png, which is what JupyterLab (for a notebook not yet run, untrusted), nbviewer and
    # GitHub show in its place. Stored state would not be used by them, and JupyterLab, which
    # saves widget state with this course (jupyter-config/), would load it and mark every
    # notebook changed as soon as it is opened.
    nbclient.NotebookClient(nb, timeout=3600, kernel_name=KERNEL, store_widget_state=False,
                            resources={"metadata": {"path": str(cwd)}}).execute()
    nb.metadata.pop("widgets", None)
    nb.metadata["kernelspec"] = kernelspec()


if __name__ == "__main__":
    main()
