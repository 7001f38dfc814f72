"""Chat: messages, the ChatML template against the GGUF's own (through transformers), labels per
token, the window, the session with its kept cache, streaming, branching, bad input."""

import pytest
import torch

import minigpt as mg
from minigpt.chat import Chat, ChatML, Message, check_messages, fit_to_window, render_tokens, template_for

from smollm import ours, reference

CONVERSATIONS = {
    "single": [{"role": "user", "content": "What is the capital of France?"}],
    "single+system": [{"role": "system", "content": "You are a pirate."},
                      {"role": "user", "content": "Where is the treasure?"}],
    "multi": [{"role": "user", "content": "Hi!"}, {"role": "assistant", "content": "Hello! How can I help?"},
              {"role": "user", "content": "Tell me a joke about cats."}],
    "multi+system": [{"role": "system", "content": "Answer briefly."},
                     {"role": "user", "content": "2 + 2?"}, {"role": "assistant", "content": "4"},
                     {"role": "user", "content": "And 3 * 3?"}],
    "odd text": [{"role": "user", "content": "  spaces, 中文, 🎉 and <|im_end|> typed\n\nnewlines "}],
}


@pytest.mark.parametrize("name", sorted(CONVERSATIONS))
@pytest.mark.parametrize("generation_prompt", [True, False])
def test_template_equals_the_gguf_template(name, generation_prompt):
    _, tok = ours()
    _, hf_tok = reference()
    messages = CONVERSATIONS[name]
    ours_text = template_for(tok).render(messages, add_generation_prompt=generation_prompt)
    theirs = hf_tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt)
    assert ours_text == theirs


def test_default_system_prompt_comes_from_the_file():
    _, tok = ours()
    template = template_for(tok)
    assert template.default_system == "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
    text = template.render(CONVERSATIONS["single"])
    assert text.startswith("<|im_start|>system\nYou are a helpful AI assistant named SmolLM")
    assert ChatML().render(CONVERSATIONS["single"]).startswith("<|im_start|>user\n")  # no default


@pytest.mark.parametrize("name", sorted(CONVERSATIONS))
def test_rendered_tokens_and_labels(name):
    _, tok = ours()
    messages = CONVERSATIONS[name]
    rendered = render_tokens(tok, messages)
    text = template_for(tok).render(messages)
    if name != "odd text":  # there the user typed "<|im_end|>": plain text, not the control token
        assert rendered.ids == tok.encode(text, allowed_special="all")
    assert len(rendered.labels) == len(rendered.ids) == len(rendered.message)
    assert tok.decode(rendered.ids) == text
    by_label = {label: tok.decode([i for i, l in zip(rendered.ids, rendered.labels) if l == label])
                for label in set(rendered.labels)}
    # (a token that spans the role's line break and the first spaces counts as template)
    assert by_label["question"].strip() == messages[-1]["content"].strip()
    assert "<|im_start|>" in by_label["template"] and "system" in by_label
    if name.startswith("multi"):
        assert "history" in by_label
    assert rendered.labels[-3:] == ["template"] * 3  # <|im_start|> assistant \n opens the reply
    assert rendered.ids.count(tok.special_tokens["<|im_end|>"]) == len(rendered.messages)


def test_window_drops_the_oldest_turns_and_says_so():
    _, tok = ours()
    long = [{"role": "user", "content": f"Question {i}: " + "tell me more " * 10} if i % 2 == 0 else
            {"role": "assistant", "content": f"Answer {i}: " + "here is more " * 10} for i in range(9)]
    full = render_tokens(tok, long)
    fitted = fit_to_window(tok, long, max_tokens=len(full) - 20)
    assert fitted.dropped == 2 and len(fitted) <= len(full) - 20
    assert fitted.messages[0].role == "system" and fitted.messages[1].content.startswith("Question 2")
    assert fit_to_window(tok, long, max_tokens=len(full)).dropped == 0
    with pytest.raises(ValueError, match="newest message take"):
        fit_to_window(tok, long, max_tokens=30)


@pytest.mark.parametrize("messages, message", [
    ([{"role": "bot", "content": "hi"}], "unknown role 'bot'"),
    ([{"role": "user", "content": "   "}], "empty"),
    ([{"role": "user", "content": "hi"}, {"role": "system", "content": "late"}], "must come first"),
    ([], "empty"),
    ("hello", "list of messages"),
    ([{"role": "user", "text": "hi"}], "'role' and 'content'"),
    ([{"role": "user", "content": 5}], "string"),
])
def test_bad_messages_get_clear_errors(messages, message):
    with pytest.raises(ValueError, match=message):
        check_messages(messages)


def test_a_tokenizer_without_chatml_is_refused():
    tok = mg.CharTokenizer.from_text("abc")
    with pytest.raises(ValueError, match="im_start"):
        template_for(tok)


# ------------------------------------------------------------------ the session

def test_chat_answers_and_stops_at_end_of_turn():
    model, tok = ours()
    chat = Chat(model, tok, temperature=0, max_new_tokens=40)
    reply = chat.ask("What is the capital of France?")
    assert "Paris" in reply.text and reply.stopped == "end_of_turn"
    assert reply.steps[-1].token_id == tok.special_tokens["<|im_end|>"]
    assert [m.role for m in chat.messages] == ["user", "assistant"]
    step = reply.steps[0]
    assert step.top[0][1] == step.token_id and step.prob == 1.0  # greedy: drawn from a one-hot
    assert len(step.raw_top) == 10 and abs(sum(p for *_, p in step.raw_top) - 1) < 1  # the model's own view


def test_kept_cache_gives_the_tokens_of_recomputing_and_reuses_the_history():
    model, tok = ours()
    kept = Chat(model, tok, temperature=0, max_new_tokens=12)
    fresh = Chat(model, tok, temperature=0, max_new_tokens=12, keep_cache=False)
    for question in ["Name a fruit.", "Name another one.", "Which is sweeter?"]:
        a, b = kept.ask(question), fresh.ask(question)
        assert a.token_ids == b.token_ids
    assert a.reused_tokens > 0.8 * len(a.prompt) and b.reused_tokens == 0


def test_streaming_gives_the_reply_piece_by_piece():
    model, tok = ours()
    chat = Chat(model, tok, temperature=0.8, top_p=0.9, seed=3, max_new_tokens=15)
    pieces = list(chat.stream("Say something about the moon."))
    assert len(pieces) > 1 and "".join(pieces) == chat.last_reply.text
    again = Chat(model, tok, temperature=0.8, top_p=0.9, seed=3, max_new_tokens=15).ask("Say something about the moon.")
    assert again.text == chat.last_reply.text  # the seed repeats the draw
    for step in chat.last_reply.steps:  # each token came from its recorded distribution
        assert step.prob > 0 and step.token_id in [i for _, i, _ in step.top] + [None] or step.prob < step.top[-1][2]
        assert abs(sum(p for *_, p in step.top) - 1) < 1e-4 or len(step.top) == 10


def test_branch_regenerates_from_a_chosen_token():
    model, tok = ours()
    chat = Chat(model, tok, temperature=0, max_new_tokens=12)
    first = chat.ask("What is the capital of France?")
    other = first.steps[0].raw_top[1][1]  # the model's second choice for the first word
    branched = chat.branch(0, other)
    assert branched.token_ids[0] == other and branched.token_ids != first.token_ids
    assert [m.role for m in chat.messages] == ["user", "assistant"] and chat.messages[-1].content == branched.text
    same = chat.branch(2, branched.steps[2].token_id)  # the same token again: the same greedy reply
    assert same.token_ids == branched.token_ids and same.reused_tokens >= len(same.prompt)
    with pytest.raises(ValueError, match="position"):
        chat.branch(99, other)


def test_system_prompt_reset_and_window_errors():
    model, tok = ours()
    assert Chat(model, tok).render().labels[:3] == ["template", "template", "template"]  # before any turn
    chat = Chat(model, tok, system="Answer in one word.", temperature=0, max_new_tokens=5)
    assert chat.render(add_generation_prompt=True).messages[0].content == "Answer in one word."
    chat.ask("Capital of Italy?")
    chat.reset()
    assert chat.messages == [] and chat.system == "Answer in one word."
    with pytest.raises(ValueError, match="empty"):
        chat.ask("  ")
    with pytest.raises(ValueError, match="empty"):
        chat.set_system("")
    small = Chat(model, tok, max_new_tokens=8, context_window=40)
    with pytest.raises(ValueError, match="newest message take"):
        small.ask("word " * 60)
    assert small.messages == []  # nothing half-added
    with pytest.raises(ValueError, match="temperature"):
        Chat(model, tok, temperature=-1)


# ------------------------------------------------------------------ the command line

def test_command_line_chat_with_the_model(monkeypatch, capsys):
    import io

    from minigpt.__main__ import main
    model, tok = ours()  # loaded once for the session, before load is replaced
    monkeypatch.setattr(mg.pretrained, "load", lambda name, device=None: (model, tok))
    lines = ["What is the capital of France?", "/top", "/system Answer in French.", "/reset", "Hello", ""]
    monkeypatch.setattr("sys.stdin", io.StringIO("\n".join(lines) + "\n"))
    assert main(["chat", "--model", "smollm2-135m-instruct", "--temperature", "0", "--max-new-tokens", "12"]) == 0
    out = capsys.readouterr().out
    assert "assistant: The capital of France is Paris." in out
    assert "top alternatives on" in out and "p=1.00 |" in out  # the words of the last reply, with their odds
    assert "system prompt: 'Answer in French.'" in out and "conversation forgotten" in out
    assert out.count("assistant: ") == 2
