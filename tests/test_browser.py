"""The widgets in a real browser: JupyterLab started here, driven by Chromium through Playwright.

One notebook, stored the way scripts/execute_notebooks.py stores the course's, is opened (it
must not be marked changed, and shows its widget's picture), run (the live widget appears),
its temperature slider dragged (the picture must change), saved, and reopened after its kernel
is gone (the picture must come back from the saved widget state: no "model not found"). A
bertviz cell must draw or say why it cannot, never show a JavaScript error.

Needs Debian's ``chromium`` and the ``playwright`` Python package (no browser download); skipped
with the reason otherwise. JupyterLab listens on 127.0.0.1 with a token; nothing leaves the machine.
"""

import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
sync_api = pytest.importorskip("playwright.sync_api", reason="the browser test needs playwright (pip install playwright)")
pytest.importorskip("jupyterlab", reason="the browser test needs JupyterLab (pip install jupyterlab)")
pytest.importorskip("ipywidgets", reason="the browser test needs ipywidgets")
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(CHROMIUM is None, reason="the browser test needs Chromium (apt-get install chromium)")]

TOKEN = "minigpt-browser-test"
CELLS = [
    """import torch
import minigpt as mg
from minigpt.viz import widgets
text = "ROMEO:\\nBut soft, what light through yonder window breaks?"
tok = mg.CharTokenizer.from_text(text)
torch.manual_seed(0)
model = mg.GPT(mg.GPTConfig(vocab_size=tok.vocab_size, block_size=32, n_layer=1, n_head=2, n_embd=16)).eval()
with torch.no_grad():
    model.lm_head.weight.mul_(20)  # a peaked distribution, so that temperature visibly flattens it
explorer = widgets.NextTokenExplorer(model, tok, prompt="ROMEO:", stages=("raw", "temperature"))
explorer""",
    """from minigpt.viz.bertviz import head_view
head_view(model, tok, "ROMEO: hi")""",
]
WIDGET_IMAGE = ".jp-OutputArea-output img.widget-image"
SLIDER_HANDLE = ".widget-slider .noUi-handle, .widget-slider .ui-slider-handle"  # ipywidgets 8, 7


def launch(playwright):
    """Debian's Chromium, headless, as the tests run it (no sandbox and no GPU inside containers)."""
    return playwright.chromium.launch(executable_path=CHROMIUM,
                                      args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stored_notebook(path: Path) -> None:
    """The test notebook, executed and stored as scripts/execute_notebooks.py stores the course's."""
    import nbformat
    spec = importlib.util.spec_from_file_location("execute_notebooks", REPO / "scripts" / "execute_notebooks.py")
    execute_notebooks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(execute_notebooks)
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in CELLS])
    execute_notebooks.execute(nb, path.parent)
    nbformat.write(nb, path)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """(base URL, notebook folder) of a JupyterLab with the course's settings (jupyter-config/)
    and an empty user configuration, stopped after the tests."""
    root = tmp_path_factory.mktemp("lab")
    settings = root / "settings" / "overrides.d"
    settings.mkdir(parents=True)
    shutil.copy(REPO / "jupyter-config" / "overrides.d" / "minigpt.json", settings)
    # every cell drawn, not only those in view (JupyterLab 4 draws lazily); the notebook's kernel
    # started without asking (a fresh profile sometimes asks); no news pop-up
    (settings / "browser-test.json").write_text(json.dumps({
        "@jupyterlab/notebook-extension:tracker": {"windowingMode": "none", "autoStartDefaultKernel": True},
        "@jupyterlab/apputils-extension:notification": {"fetchNews": "false"}}))
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(root / "config"), JUPYTER_DATA_DIR=str(root / "data"),
               JUPYTER_RUNTIME_DIR=str(root / "runtime"), MINIGPT_FAST="1", OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    notebooks = root / "notebooks"
    notebooks.mkdir()
    stored_notebook(notebooks / "widget.ipynb")
    port = free_port()
    log = open(root / "lab.log", "w")
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--allow-root", "--ServerApp.ip=127.0.0.1",
         f"--ServerApp.port={port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={TOKEN}",
         f"--ServerApp.root_dir={notebooks}", f"--LabApp.app_settings_dir={root / 'settings'}"],
        env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                urllib.request.urlopen(f"{url}/api/status?token={TOKEN}", timeout=5)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"JupyterLab did not start: {(root / 'lab.log').read_text()[-2000:]}")
                time.sleep(0.5)
        yield url, notebooks
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


def api(url, path, method="GET"):
    request = urllib.request.Request(f"{url}{path}?token={TOKEN}", method=method)
    with urllib.request.urlopen(request, timeout=30) as response:
        body = response.read()
    return json.loads(body) if body else None


def open_notebook(browser, url, name):
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    page.set_default_timeout(90_000)
    page.goto(f"{url}/lab/tree/{name}?token={TOKEN}")
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']")  # kernel started, idle
    return page


def accept_kernel_dialog(page) -> None:
    """JupyterLab sometimes asks which kernel to start although the notebook names one: take its
    proposal (the notebook's own kernel)."""
    dialog = page.locator(".jp-Dialog")
    if dialog.count() and "Select Kernel" in dialog.first.inner_text():
        page.get_by_role("button", name="Select", exact=True).click()


def run_cell(page, index: int, done_selector: str) -> None:
    """Run the index-th cell (Ctrl+Enter) and wait until ``done_selector`` shows."""
    prompt = page.locator(".jp-InputPrompt").nth(index)
    for _ in range(10):  # a key pressed while the page still settles can be lost: press until queued
        accept_kernel_dialog(page)
        page.locator(".jp-Cell .cm-content").nth(index).click()
        page.keyboard.press("Control+Enter")
        try:
            page.wait_for_function("(el) => el.innerText.includes('*')", arg=prompt.element_handle(), timeout=3000)
            break
        except sync_api.TimeoutError:
            continue
    deadline = time.monotonic() + 90
    while not page.locator(done_selector).count():
        accept_kernel_dialog(page)
        if time.monotonic() > deadline:
            raise TimeoutError(f"cell {index} did not show {done_selector!r} within 90 s")
        time.sleep(0.25)


def is_dirty(page) -> bool:
    return page.locator(".jp-mod-dirty").count() > 0


def test_widget_reacts_in_the_browser_and_its_picture_survives_save_and_reopen(lab, tmp_path):
    url, notebooks = lab
    with sync_api.sync_playwright() as p:
        browser = launch(p)
        page = open_notebook(browser, url, "widget.ipynb")
        try:
            # stored as the course's notebooks are: opening it changes nothing, and shows the picture
            time.sleep(1)
            assert not is_dirty(page), "opening the stored notebook marked it changed"
            assert page.locator(".jp-OutputArea-output img").count() >= 1
            assert page.get_by_text("model not found").count() == 0
            # bertviz's stored view, untrusted: our note, no JavaScript's text
            assert page.get_by_text("needs internet access").count() >= 1
            assert page.get_by_text("Javascript object").count() == 0

            # run it: the live widget, with its picture
            run_cell(page, 0, WIDGET_IMAGE)
            image = page.wait_for_selector(WIDGET_IMAGE)
            before_src, before = image.get_attribute("src"), image.screenshot()
            assert int(image.get_attribute("width")) == image.bounding_box()["width"]  # its own size

            # drag the temperature slider: the picture changes
            handle = page.locator(SLIDER_HANDLE).first
            box = handle.bounding_box()
            page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
            page.mouse.down()
            page.mouse.move(box["x"] + 90, box["y"] + box["height"] / 2, steps=8)
            page.mouse.up()
            page.wait_for_function("([sel, src]) => document.querySelector(sel).src !== src",
                                   arg=[WIDGET_IMAGE, before_src])
            time.sleep(0.5)  # the new picture decoded
            assert page.locator(WIDGET_IMAGE).first.screenshot() != before
            assert page.locator(".widget-readout").first.inner_text() != "1.00"

            # bertviz: offline it says why it cannot draw (online it draws); never a JavaScript error
            run_cell(page, 1, ":text('could not load its JavaScript'), [id^='bertviz-'] svg")
            assert page.get_by_text("require is not defined").count() == 0
            assert page.get_by_text("Javascript Error").count() == 0

            # save, shut the kernel down, reopen: the picture comes back from the saved widget state
            page.keyboard.press("Control+s")
            page.wait_for_function("() => !document.querySelector('.jp-mod-dirty')")
            saved = json.loads((notebooks / "widget.ipynb").read_text())
            state = saved["metadata"]["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
            shown = [o["data"]["application/vnd.jupyter.widget-view+json"]["model_id"]
                     for o in saved["cells"][0]["outputs"] if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
            assert shown and all(model_id in state for model_id in shown)
        except Exception:
            page.screenshot(path=str(tmp_path / "failure.png"))
            raise
        page.close()
        for session in api(url, "/api/sessions"):
            api(url, f"/api/sessions/{session['id']}", "DELETE")
        page = open_notebook(browser, url, "widget.ipynb")
        try:
            accept_kernel_dialog(page)
            page.wait_for_selector(WIDGET_IMAGE)
            assert page.get_by_text("model not found").count() == 0
        except Exception:
            page.screenshot(path=str(tmp_path / "failure-reopened.png"))
            raise
        browser.close()
