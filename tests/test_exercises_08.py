"""Notebook 08's checks accept the reference solutions, name the usual mistakes in one printed
line, and say 'not attempted' for an exercise left as given."""

import torch

from minigpt import sft
from minigpt.exercises import chat_finetuning as check
from minigpt.exercises.solutions import chat_finetuning as S

from verdicts import right, skipped, wrong


def test_reference_mask_is_the_package_rule():
    kinds = ["template" if i in check.SPECIAL.values() and not (i == 4 and r == "assistant") else r
             for i, r in zip(check.IDS, check.ROLES)]
    mask = sft.label_mask(kinds)
    assert [lab != sft.IGNORE for lab in check.reference_labels(check.IDS, check.ROLES)] == mask


def test_label_mask(capsys):
    right(capsys, check.label_mask, S.my_labels)
    skipped(capsys, check.label_mask, lambda i, r, s: None)
    wrong(capsys, check.label_mask, check.buggy_labels, words=("user",))
    wrong(capsys, check.label_mask, lambda ids, roles, s: [i if r == "assistant" and i not in s.values() else -100
                                                           for i, r in zip(ids, roles)], words=("stop",))
    wrong(capsys, check.label_mask, lambda ids, roles, s: [i if r == "assistant" else -100
                                                           for i, r in zip(ids, roles)], words=("<|assistant|>",))
    wrong(capsys, check.label_mask, lambda ids, roles, s: [i if r != "user" else -100
                                                           for i, r in zip(ids, roles)], words=("system",))
    wrong(capsys, check.label_mask, lambda ids, roles, s: [1 / 0], words=("ZeroDivisionError",))


def test_find_the_bug(capsys):
    right(capsys, check.find_the_bug, S.answer)
    skipped(capsys, check.find_the_bug, None)
    wrong(capsys, check.find_the_bug, "end")


def test_pad_batch(capsys):
    right(capsys, check.pad_batch, S.my_pad_batch)
    skipped(capsys, check.pad_batch, lambda e, p: None)

    def masked_by_id(examples, pad_id):
        x, y = S.my_pad_batch(examples, pad_id)
        y[y == pad_id] = -100
        return x, y
    wrong(capsys, check.pad_batch, masked_by_id, words=("stop",))

    def pad_targets(examples, pad_id):
        x, y = S.my_pad_batch(examples, pad_id)
        return x, torch.where(y == -100, pad_id, y)
    wrong(capsys, check.pad_batch, pad_targets, words=("padding",))

    def unshifted(examples, pad_id):
        T = max(len(i) for i, _ in examples) - 1
        x, _ = S.my_pad_batch(examples, pad_id)
        y = torch.full_like(x, -100)
        for b, (_, labels) in enumerate(examples):
            y[b, :len(labels) - 1] = torch.tensor(labels[:-1])
        return x, y
    wrong(capsys, check.pad_batch, unshifted, words=("shifted",))
