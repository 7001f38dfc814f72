"""The shipped question-answer chatbots (qa-en, qa-zh: Transformer encoder–decoder; gru-en, gru-zh:
GRU + Luong attention): they load by name without network and answer held-out questions."""

import pytest
import torch

import minigpt as mg
from minigpt.rnn import GRUSeq2Seq
from minigpt.seq2seq import Seq2Seq, answer, beam_reply, encode_question, greedy_reply

# name: (class, a held-out dialogue split: never trained on)
SHIPPED = {"qa-en": (Seq2Seq, "dailydialog", "test"), "gru-en": (GRUSeq2Seq, "dailydialog", "test"),
           "qa-zh": (Seq2Seq, "kdconv", "test"), "gru-zh": (GRUSeq2Seq, "kdconv", "test")}


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("MINIGPT_OFFLINE", "1")
    monkeypatch.setattr(mg.data.urllib.request, "urlopen", lambda *a, **k: pytest.fail("tried the network"))


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_a_shipped_chatbot_loads_offline_and_answers_held_out_questions(name):
    kind, corpus, split = SHIPPED[name]
    model, tok = mg.pretrained.load(name)
    assert type(model) is kind and not model.training
    assert mg.pretrained.path(name).stat().st_size < 16_000_000  # small: 3.5M parameters at most
    assert mg.pretrained.training_history(name)["val_loss"]  # the real curve travels with it
    questions = [d[0] for d in mg.data.load_dialogues(corpus, split)[:10]]
    ended = 0
    for question in questions:
        ids = greedy_reply(model, encode_question(model, tok, question), max_new_tokens=model.config.block_size)
        text = answer(model, tok, question)
        assert text.strip() and text == tok.decode([i for i in ids if i != model.config.eos_id])
        beam = beam_reply(model, tok, encode_question(model, tok, question), beam_width=4,
                          max_new_tokens=model.config.block_size)
        assert beam.text.strip()
        ended += beam.best.finished and beam.best.ids[-1] == model.config.eos_id
    # small and briefly trained, they often talk until the length limit; but they have learned to stop
    assert ended >= 1


def test_the_chat_command_answers_with_a_shipped_chatbot(monkeypatch, capsys):
    from minigpt.__main__ import main
    lines = iter(["How are you?", "¿ünknown ☃", ""])
    monkeypatch.setattr("builtins.input", lambda prompt="": next(lines))
    assert main(["chat", "--model", "qa-en", "--temperature", "0", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    model, tok = mg.pretrained.load("qa-en")
    for question in ("How are you?", "¿ünknown ☃"):  # byte-level BPE spells any text
        assert f"qa-en: {answer(model, tok, question)}" in out
    lines = iter(["¿ünknown ☃", "你好", ""])
    assert main(["chat", "--model", "qa-zh", "--temperature", "0", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    model, tok = mg.pretrained.load("qa-zh")
    assert "Try again" in out  # a character the model never saw: said, and the chat goes on
    assert f"qa-zh: {answer(model, tok, '你好')}" in out


def test_unknown_names_and_gpt_names_keep_their_own_paths():
    with pytest.raises(ValueError, match="available"):
        mg.pretrained.load("qa-fr")
    model, _ = mg.pretrained.load("shakespeare-char")
    assert isinstance(model, mg.GPT)
