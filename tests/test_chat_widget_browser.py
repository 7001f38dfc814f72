"""The chat widget in a real browser (JupyterLab driven by Chromium through Playwright): clicking
a token shows its distribution, "regenerate from here" writes a branch, and a message typed key by
key is sent whole by Enter, with the core widgets alone (no custom JavaScript). Uses the
JupyterLab that tests/test_browser.py starts."""

import time

import pytest
from test_browser import CHROMIUM, REPO, lab, launch, open_notebook, run_cell, sync_api  # noqa: F401 (lab: a fixture)

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(CHROMIUM is None, reason="the browser test needs Chromium (apt-get install chromium)")]

CELL = """import torch
import minigpt as mg
from minigpt.viz.chat import ChatWidget
text = "Hello there! How are you today? I am fine, thank you. What is the capital of France? Paris.\\n" * 5
tok = mg.BPETokenizer.train(text, vocab_size=290, special_tokens=("<|endoftext|>", "<|im_start|>", "<|im_end|>"))
torch.manual_seed(0)
model = mg.GPT(mg.GPTConfig(vocab_size=tok.vocab_size, block_size=128, n_layer=1, n_head=2, n_embd=16,
                            positions="rope", norm="rmsnorm", mlp="swiglu", bias=False)).eval()
w = ChatWidget(model, tok, question="Hi", max_new_tokens=6)
w"""
TOKENS = ".minigpt-token"
DETAILS = ".minigpt-details"


def test_clicking_a_token_shows_its_distribution_and_branches(lab, tmp_path):
    import importlib.util

    import nbformat
    url, notebooks = lab
    spec = importlib.util.spec_from_file_location("execute_notebooks", REPO / "scripts" / "execute_notebooks.py")
    execute_notebooks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(execute_notebooks)
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(CELL)])
    execute_notebooks.execute(nb, notebooks)  # stored as the course's notebooks are
    nbformat.write(nb, notebooks / "chat.ipynb")
    with sync_api.sync_playwright() as p:
        browser = launch(p)
        page = open_notebook(browser, url, "chat.ipynb")
        try:
            # stored: the picture of the reply stands in for the widget
            page.wait_for_selector(".jp-OutputArea-output img")
            run_cell(page, 0, TOKENS)
            page.wait_for_function("(n) => document.querySelectorAll(n).length >= 6", arg=TOKENS)
            assert page.locator(TOKENS).count() == 6
            for i in (4, 2):  # two clicks, so one of them changes the selection whatever was selected first
                page.locator(TOKENS).nth(i).click()
                page.wait_for_function("([sel, i]) => document.querySelector(sel).innerText.includes(`token ${i},`)",
                                       arg=[DETAILS, i])
            assert page.locator(f"{DETAILS} tr").count() >= 2  # the table of the distribution
            page.get_by_role("button", name="regenerate from here").click()
            page.wait_for_function("() => document.body.innerText.includes('branched at token 2')")
            time.sleep(0.5)
            assert page.locator(TOKENS).count() >= 3
            # a message typed key by key and sent with Enter arrives whole (see on_enter)
            box = page.locator(".widget-text").filter(has=page.locator("label.widget-label:text-is('you')"))
            box.locator("input").click()
            page.keyboard.type("What is the capital of France?", delay=20)
            page.keyboard.press("Enter")
            page.wait_for_function("() => document.body.innerText.includes('What is the capital of France?')")
            page.wait_for_function("(el) => el.value === ''", arg=box.locator("input").element_handle())
            assert page.get_by_text("Javascript Error").count() == 0
        except Exception:
            page.screenshot(path=str(tmp_path / "failure.png"))
            raise
        browser.close()
