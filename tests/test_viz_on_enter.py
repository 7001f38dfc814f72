"""on_enter: a press (Enter, or the button beside the box) is answered with the box's whole text,
whatever order the kernel handles the browser's messages in.

The browser's messages are played to the widgets as ipykernel hands them over: a value through
``set_state`` (as the browser's "change" sends it), Enter as the "submit" custom message, a click
through the button's handler. The event loop is real, so the waiting paths run as in a kernel.
"""
import asyncio

import ipywidgets as widgets

from minigpt.viz.widgets import on_enter

GRACE_S, FRESH_S = 0.3, 0.2


def make_box():
    """A text box with a button, wired with on_enter; ``calls`` holds the text each callback read."""
    box, button, calls = widgets.Text(), widgets.Button(description="send"), []

    def callback():
        calls.append(box.value)
        box.value = ""  # as a chat box empties itself once it has the message

    press = on_enter(box, callback, grace_s=GRACE_S, fresh_s=FRESH_S)
    button.on_click(lambda _: press())
    return box, button, calls


def browser_sends(box, text):
    box.set_state({"value": text})


def enter(box):
    box._handle_custom_msg({"event": "submit"}, [])


def run(scenario):
    asyncio.run(scenario())


def test_enter_waits_for_the_text_that_the_browser_sends_after_it():
    async def scenario():
        box, _, calls = make_box()
        enter(box)  # "submit" comes first, from the keypress
        await asyncio.sleep(0.05)
        assert calls == [], "Enter must not read the box before its text has come"
        browser_sends(box, "How are you?")
        assert calls == ["How are you?"]
        await asyncio.sleep(GRACE_S + 0.1)
        assert calls == ["How are you?"], "one press, one callback"
    run(scenario)


def test_a_click_after_its_text_calls_at_once():
    async def scenario():
        box, button, calls = make_box()
        browser_sends(box, "Where do you live?")  # the blur that the click causes
        button.click()
        assert calls == ["Where do you live?"]
        await asyncio.sleep(GRACE_S + 0.1)
        assert calls == ["Where do you live?"]
    run(scenario)


def test_a_click_handled_before_its_text_waits_for_it():
    async def scenario():
        box, button, calls = make_box()
        button.click()  # the click overtook the value its blur sent (another thread, say)
        await asyncio.sleep(0.05)
        assert calls == [], "a click must not send the old (empty) text"
        browser_sends(box, "Where do you live?")
        assert calls == ["Where do you live?"]
        await asyncio.sleep(GRACE_S + 0.1)
        assert calls == ["Where do you live?"]
    run(scenario)


def test_a_text_sent_long_before_the_click_is_not_trusted():
    async def scenario():
        box, button, calls = make_box()
        browser_sends(box, "How are")  # the learner left the box half-typed, then came back
        await asyncio.sleep(FRESH_S + 0.1)
        button.click()  # handled before the rest of the message
        await asyncio.sleep(0.05)
        assert calls == []
        browser_sends(box, "How are you?")
        assert calls == ["How are you?"]
    run(scenario)


def test_a_press_with_nothing_new_typed_is_answered_after_the_grace():
    async def scenario():
        box, button, calls = make_box()
        box.value = "Hello"  # set by the kernel (a preset question): no text will come from the browser
        button.click()
        await asyncio.sleep(0.05)
        assert calls == []
        await asyncio.sleep(GRACE_S)
        assert calls == ["Hello"]
        box.value = "Hi"
        enter(box)
        await asyncio.sleep(GRACE_S + 0.1)
        assert calls == ["Hello", "Hi"]
    run(scenario)


def test_without_an_event_loop_a_press_calls_at_once():
    box, button, calls = make_box()
    box.value = "Hello"
    button.click()
    enter(box)
    assert calls == ["Hello", ""]
