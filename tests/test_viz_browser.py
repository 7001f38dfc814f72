"""The encoder–decoder and alignment widgets in a real browser (JupyterLab driven by Chromium through
Playwright), used as a learner uses them: the cross-attention explorer (layer, head, a clicked
answer token and a typed answer each redraw the map), the chat box of the sequence-to-sequence
bots (a typed message gets a reply, from either bot), the fill-in-the-blanks explorer (the
package's candidates for a typed sentence, a clear error without a blank) and the comparison of
aligned models (tokens coloured by their KL to the reference, a new seed a new draw); and a chat
box with a slow kernel, where a message typed key by key must arrive whole, by Enter or the button,
and leaving the box must send nothing.

One JupyterLab (tests/test_browser.py's), one page and one kernel for the five tests: the
notebook's first cell builds tiny models (the shipped mlm-en for the fill-in), each test runs its
widget's cell. Skipped, with the reason, without Chromium or Playwright.
"""

import io
import re

import pytest
from test_browser import CHROMIUM, REPO, lab, launch, open_notebook, run_cell, sync_api  # noqa: F401 (lab: a fixture)

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(CHROMIUM is None, reason="the browser test needs Chromium (apt-get install chromium)")]

SETUP = f"""import copy, sys
sys.path.insert(0, {str(REPO / "tests")!r})
import torch
import minigpt as mg
from minigpt import align
from minigpt.rnn import GRUConfig, GRUSeq2Seq
from minigpt.seq2seq import Seq2Seq, Seq2SeqConfig
from minigpt.viz.seq2seq import CrossAttentionExplorer, FillInExplorer, Seq2SeqChat
from minigpt.viz.align import CompareAligned
from align_toys import tiny_policy

tok = mg.CharTokenizer.from_text("How are you today? I am fine, thanks. What is your name? Where do you live?",
                                 special_tokens=("<pad>", "<sos>", "<eos>", "<sep>"))
ids = dict(pad_id=tok.special_tokens["<pad>"], sos_id=tok.special_tokens["<sos>"], eos_id=tok.special_tokens["<eos>"])
torch.manual_seed(0)
transformer = Seq2Seq(Seq2SeqConfig(vocab_size=tok.vocab_size, block_size=12, src_block_size=40, n_layer=2, n_head=2,
                                    n_embd=16, **ids)).eval()
with torch.no_grad():  # sharp, varied maps: layers and heads look at different places
    for block in transformer.decoder:
        block.cross.q_proj.weight.mul_(40)
        block.cross.kv_proj.weight.mul_(40)
torch.manual_seed(1)
gru = GRUSeq2Seq(GRUConfig(vocab_size=tok.vocab_size, hidden_size=16, block_size=12, attention="general", **ids)).eval()

start, byte_tok = tiny_policy(0)
moved = copy.deepcopy(start)  # a stand-in for an aligned policy: far enough from the start to colour its tokens
with torch.no_grad():
    g = torch.Generator().manual_seed(0)
    for p in moved.parameters():
        p.add_(0.3 * torch.randn(p.shape, generator=g))
reward_model = align.RewardModel.from_policy(start, byte_tok)
print("models ready")"""

CELLS = [
    SETUP,
    """CrossAttentionExplorer((transformer, tok), (gru, tok), question="How are you today?")""",
    """Seq2SeqChat({("transformer", "en"): (transformer, tok), ("gru", "en"): (gru, tok)}, question=None,
            max_new_tokens=8)""",
    """FillInExplorer("mlm-en", text="I am f___, thanks.")""",
    """CompareAligned({"start": start, "moved": moved}, byte_tok, reward_model, reference=start, prompt="hi",
               max_new_tokens=12)""",
    """import time
slow_chat = Seq2SeqChat({("transformer", "en"): (transformer, tok)}, question=None, max_new_tokens=4)
# a kernel slow to take in each value (0.3 s) and to write each reply (1.5 s), as a busy or distant one is
slow_chat.message.observe(lambda _: time.sleep(0.3), names="value")
slow_chat.conversation.observe(lambda _: time.sleep(1.5), names="value")
slow_chat""",
    """for _ in range(100):  # what the kernel holds once the box's text has reached it (10 s at most)
    if slow_chat.message.value:
        break
    time.sleep(0.1)
print("kernel has", repr(slow_chat.message.value), len(slow_chat.turns))""",
]
PICTURE = "img.widget-image"
ERROR = "span[style*='#b00020']"  # minigpt.viz.widgets._error's red line


def cell(page, index):
    return page.locator(".jp-CodeCell").nth(index)


def control(where, kind, label):
    """The ipywidgets control of class ``widget-<kind>`` whose description is ``label``."""
    return where.locator(f".widget-{kind}").filter(has=where.page.locator(f"label.widget-label:text-is('{label}')"))


def picture_src(where) -> str:
    return where.locator(PICTURE).get_attribute("src")


def new_picture(where, before: str) -> bytes:
    """Wait until the widget's picture is no longer ``before`` and is drawn; its screenshot (PNG)."""
    where.page.wait_for_function("([img, src]) => img.src !== src && img.complete && img.naturalWidth > 0",
                                 arg=[where.locator(PICTURE).element_handle(), before])
    return where.locator(PICTURE).screenshot()


def redraws(where, action) -> bytes:
    """Do ``action`` (a learner's click or keystrokes); the widget's new picture, which must differ."""
    before_src = picture_src(where)
    before = where.locator(PICTURE).screenshot()
    action()
    after = new_picture(where, before_src)
    assert after != before, "the picture was replaced by the same picture"
    return after


def type_into(box, text: str) -> None:
    """Select what the text box holds, type ``text`` over it and press Enter (which also sends the
    value of a box that updates only on Enter)."""
    box.click()
    box.press("Control+a")
    box.press_sequentially(text)
    box.press("Enter")


def paste_and_enter(box, text: str) -> None:
    """Put ``text`` in a box as one paste and press Enter (typed key by key: the last test)."""
    box.fill(text)
    box.press("Enter")


def drag(handle, dx: float) -> None:
    """Drag a slider's handle ``dx`` pixels sideways, as a mouse does."""
    page = handle.page
    handle.scroll_into_view_if_needed()
    box = handle.bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + dx, y, steps=8)
    page.mouse.up()


CUT_OFF = """(root) => {
    // the controls' texts a learner cannot read whole: descriptions cut with an ellipsis, and
    // dropdown options wider than their box (measured in the box's own font)
    const cut = [...root.querySelectorAll("label.widget-label")]
        .filter((l) => l.offsetParent && l.scrollWidth > l.clientWidth + 1).map((l) => l.textContent);
    const probe = document.body.appendChild(document.createElement("span"));
    probe.style.cssText = "position:absolute;visibility:hidden;white-space:pre";
    for (const select of root.querySelectorAll(".widget-dropdown select")) {
        const style = getComputedStyle(select);
        probe.style.font = style.font;
        const room = select.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
        for (const option of select.options) {
            probe.textContent = option.textContent;
            if (probe.offsetWidth > room) cut.push(option.value);
        }
    }
    probe.remove();
    return cut;
}"""


def cut_off(where) -> list:
    """The descriptions and dropdown options of a widget that do not fit their boxes."""
    return where.evaluate(CUT_OFF)


def texts(locator) -> list:
    return [t.strip() for t in locator.all_inner_texts()]


@pytest.fixture(scope="module")
def page(lab, tmp_path_factory):
    """The notebook of the widgets, open in Chromium with its set-up cell run."""
    import nbformat
    url, notebooks = lab
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in CELLS])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, notebooks / "seq2seq_align_widgets.ipynb")
    with sync_api.sync_playwright() as p:
        browser = launch(p)
        page = open_notebook(browser, url, "seq2seq_align_widgets.ipynb")
        try:
            run_cell(page, 0, ".jp-CodeCell >> nth=0 >> .jp-OutputArea-output:has-text('models ready')")
        except Exception:
            page.screenshot(path=str(tmp_path_factory.mktemp("browser") / "setup-failure.png"))
            raise
        yield page
        browser.close()


@pytest.fixture
def last_screen(page, tmp_path):
    """After the test, what the page showed (last-state.png in the test's temporary folder), for
    whoever reads a failure: a fixture cannot tell a failure without a hook in conftest.py."""
    yield
    page.screenshot(path=str(tmp_path / "last-state.png"))


def run_widget(page, index: int):
    run_cell(page, index, f".jp-CodeCell >> nth={index} >> {PICTURE}")
    where = cell(page, index)
    where.locator(PICTURE).scroll_into_view_if_needed()
    return where


def test_cross_attention_explorer_redraws_for_layer_head_token_and_a_typed_answer(page, last_screen):
    where = run_widget(page, 1)
    buttons = where.locator(".minigpt-token")
    assert buttons.count() >= 2, "the bot's answer should be shown as clickable tokens"
    assert "18 question tokens" in where.locator(".widget-html").last.inner_text()
    assert cut_off(where) == [], "every control's description and option should be readable whole"

    layer = control(where, "dropdown", "Transformer layer").locator("select")
    head = control(where, "dropdown", "head").locator("select")
    # a Dropdown's <option> values are its labels
    assert (layer.input_value(), head.input_value()) == ("layer 1", "mean of all heads") and head.is_enabled()
    redraws(where, lambda: layer.select_option(value="layer 0"))
    redraws(where, lambda: head.select_option(value="head 1"))
    # a click on an answer token: its row outlined, its weights drawn as bars, the button marked
    redraws(where, lambda: buttons.nth(1).click())
    assert "solid" in (buttons.nth(1).get_attribute("style") or "")

    # the learner types an answer: it becomes "typed", its tokens are the buttons, the map is redrawn
    answer_box = control(where, "text", "answer").locator("input")
    redraws(where, lambda: type_into(answer_box, "I am fine"))
    page.wait_for_function("(el) => el.value === 'typed answer'",
                           arg=control(where, "dropdown", "answer").locator("select").element_handle())
    assert texts(buttons) == ["I", "␣", "a", "m", "␣", "f", "i", "n", "e", "<eos>"]
    assert "10 answer tokens" in where.locator(".widget-html").last.inner_text()

    # a new question: the same typed answer, read against the new question
    redraws(where, lambda: type_into(control(where, "text", "question").locator("input"), "Where?"))
    page.wait_for_function("(el) => el.innerText.includes('6 question tokens × 10 answer tokens')",
                           arg=where.locator(".widget-html").last.element_handle())
    # a character the tokenizer has never seen: a clear message instead of the picture, no stale tokens
    redraws(where, lambda: type_into(control(where, "text", "question").locator("input"), "Qué?"))
    where.locator(ERROR).wait_for()
    assert buttons.count() == 0
    assert page.get_by_text("Javascript Error").count() == 0


def test_seq2seq_chat_answers_a_typed_message_with_either_bot(page, last_screen):
    where = run_widget(page, 2)
    message = control(where, "text", "you").locator("input")
    conversation = where.locator(".widget-html").first

    # Enter sends: the message and a reply from the Transformer, and the picture of that reply
    redraws(where, lambda: paste_and_enter(message, "How are you?"))
    page.wait_for_function("(el) => el.innerText.includes('Transformer, English, greedy')",
                           arg=conversation.element_handle())
    said = conversation.inner_text()
    assert "you: How are you?" in said and said.count("bot:") == 1
    assert message.input_value() == "", "the message box should be emptied after sending"
    layer = control(where, "dropdown", "picture: layer").locator("select")
    assert layer.is_enabled() and layer.locator("option").evaluate_all("(os) => os.map((o) => o.value)") == \
        ["layer 0", "layer 1 (last)"]
    assert cut_off(where) == [], "every control's description and option should be readable whole"
    redraws(where, lambda: control(where, "dropdown", "head").locator("select").select_option(value="head 0"))

    # the other bot: chosen, named in the status line, its reply (the send button) added below the first
    control(where, "dropdown", "bot").locator("select").select_option(value="GRU")
    page.wait_for_function("(el) => el.disabled", arg=layer.element_handle())  # the GRU has one grid
    assert "GRU bot, English" in where.locator(".widget-html").nth(1).inner_text()
    message.fill("Where do you live?")
    redraws(where, lambda: where.get_by_role("button", name="send").click())
    page.wait_for_function("(el) => el.innerText.includes('GRU, English, greedy')", arg=conversation.element_handle())
    said = conversation.inner_text()
    assert said.count("bot:") == 2 and said.index("How are you?") < said.index("Where do you live?")

    # clear: the conversation goes, the picture asks for a message again
    redraws(where, lambda: where.get_by_role("button", name="clear").click())
    assert "bot:" not in conversation.inner_text()
    assert page.get_by_text("Javascript Error").count() == 0


def test_fill_in_explorer_shows_the_models_candidates_for_a_typed_sentence(page, last_screen):
    import minigpt as mg
    from minigpt.mlm import fill_in
    model, tok = mg.pretrained.load("mlm-en")
    where = run_widget(page, 3)
    status = where.locator(".widget-html").last
    assert status.inner_text().startswith("3 blanks")
    assert cut_off(where) == []

    sentence = control(where, "text", "sentence").locator("input")
    redraws(where, lambda: type_into(sentence, "How are y__ today?"))
    want = fill_in(model, tok, "How are y__ today?", 5)
    page.wait_for_function("(el) => el.innerText.startsWith('2 blanks')", arg=status.element_handle())
    assert status.inner_text().strip() == f"2 blanks · filled: {want.filled_in_order}"
    assert re.fullmatch(r"How are y.. today\?", want.filled_in_order)

    # no blank: says so where the picture was, and never shows the old candidates
    redraws(where, lambda: type_into(sentence, "How are you today?"))
    where.locator(ERROR).wait_for()
    assert "no blank" in status.inner_text()
    # fewer candidates per blank (the slider dragged to its left end): a shorter picture
    redraws(where, lambda: type_into(sentence, "I am f___, thanks."))
    assert status.inner_text().startswith("3 blanks")
    five = where.locator(PICTURE).evaluate("(img) => img.naturalHeight")
    redraws(where, lambda: drag(control(where, "slider", "candidates").locator(".noUi-handle"), -400))
    assert where.locator(".widget-readout").first.inner_text().strip() == "1"
    assert where.locator(PICTURE).evaluate("(img) => img.naturalHeight") < five  # one bar per blank, not five
    assert page.get_by_text("Javascript Error").count() == 0


def _coloured_pixels(png: bytes) -> int:
    """How many pixels of the answers (the picture less its bottom half inch, where the colour scale
    is) carry a strong KL colour: red (the model likes the token more than the reference) or blue."""
    import numpy as np
    from PIL import Image
    img = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    per_inch = img.shape[1] / 11.0  # plot_aligned_answers draws 11 inches wide
    r, g, b = np.moveaxis(img[:int(img.shape[0] - 0.5 * per_inch)], -1, 0)
    return int((((r > 190) & (g < 150) & (b < 150)) | ((b > 190) & (r < 150) & (g < 190))).sum())


def test_compare_aligned_colours_tokens_by_kl_and_redraws_for_a_new_seed_and_prompt(page, last_screen):
    where = run_widget(page, 4)
    status = where.locator(".widget-html").last
    assert "seed 0" in status.inner_text() and "highest score" in status.inner_text()
    first = where.locator(PICTURE).screenshot()
    answers_width = where.locator(PICTURE).evaluate("(img) => img.naturalWidth")
    assert _coloured_pixels(first) > 50, "the moved model's tokens should be coloured by their KL to the reference"
    assert cut_off(where) == [], "every control's description should be readable whole"

    # another seed, then "ask all": another draw for every model
    seed = control(where, "text", "seed").locator("input")
    seed.fill("1")
    seed.press("Enter")
    redrawn = redraws(where, lambda: where.get_by_role("button", name="ask all").click())
    page.wait_for_function("(el) => el.innerText.includes('seed 1')", arg=status.element_handle())
    assert _coloured_pixels(redrawn) > 50

    # an empty prompt: a clear message, the old answers gone from the picture
    redraws(where, lambda: paste_and_enter(control(where, "text", "you").locator("input"), " "))
    where.locator(ERROR).wait_for()
    assert "empty" in status.inner_text()
    assert where.locator(PICTURE).evaluate("(img) => img.naturalWidth") < answers_width  # the message alone
    # a new prompt by Enter: answers again
    redraws(where, lambda: paste_and_enter(control(where, "text", "you").locator("input"), "why"))
    page.wait_for_function("(el) => el.innerText.includes('highest score')", arg=status.element_handle())
    assert page.get_by_text("Javascript Error").count() == 0


def test_chat_box_sends_the_whole_message_typed_key_by_key_while_the_kernel_is_busy(page, last_screen):
    where = run_widget(page, 5)
    message = control(where, "text", "you").locator("input")
    conversation = where.locator(".widget-html").first

    def replies(n: int) -> str:
        page.wait_for_function("([el, n]) => el.innerText.split('bot:').length > n",
                               arg=[conversation.element_handle(), n])
        return conversation.inner_text()

    # typed key by key, Enter: the kernel, slow to take each value, must still read the whole message
    message.click()
    page.keyboard.type("How are you?", delay=30)
    page.keyboard.press("Enter")
    page.wait_for_function("(el) => el.value === ''", arg=message.element_handle())  # taken: the box empties
    # the next one typed while the kernel still writes the first reply
    page.keyboard.type("Where do you live?", delay=30)
    page.keyboard.press("Enter")
    said = replies(2)
    assert "you: How are you?" in said and "you: Where do you live?" in said, said

    # leaving the box sends its text, but nothing to the bot (a cell run after it sees that text, no new turn)
    message.click()
    page.keyboard.type("I am fine", delay=30)
    where.locator(".widget-html").nth(1).click()  # the status line: the box loses focus
    run_cell(page, 6, ".jp-CodeCell >> nth=6 >> .jp-OutputArea-output:has-text('kernel has')")
    assert "kernel has 'I am fine' 2" in cell(page, 6).locator(".jp-OutputArea-output").inner_text()
    assert conversation.inner_text().count("bot:") == 2
    # Enter with nothing typed since: that text is sent
    message.click()
    page.keyboard.press("Enter")
    assert "you: I am fine" in replies(3)
    # the send button: the whole text typed key by key
    page.wait_for_function("(el) => el.value === ''", arg=message.element_handle())
    message.click()
    page.keyboard.type("What is your name?", delay=30)
    where.get_by_role("button", name="send").click()
    assert "you: What is your name?" in replies(4)
    assert page.get_by_text("Javascript Error").count() == 0
