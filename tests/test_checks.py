"""The shared argument checks (minigpt.checks) and the run-time helpers (device, eval mode)."""

import dataclasses

import numpy as np
import pytest
import torch

from minigpt.checks import as_ids, check_bool, check_ids_in_vocab, check_int, check_number, from_dict, is_int
from minigpt.runtime import eval_mode, resolve_device


def test_is_int_takes_whole_numbers_but_not_bools():
    assert is_int(3) and is_int(-1) and is_int(np.int64(7))
    assert not any(is_int(v) for v in (True, False, np.bool_(True), 3.0, "3", None))


@pytest.mark.parametrize("value, low, ok", [(1, 1, True), (0, 1, False), (True, 0, False), (2.0, 0, False),
                                            (None, 0, False)])
def test_check_int(value, low, ok):
    if ok:
        check_int(value, "x", low)
    else:
        with pytest.raises(ValueError, match=rf"x must be an integer >= {low}, got"):
            check_int(value, "x", low)
    check_int(None, "x", 1, allow_none=True)


def test_check_number_names_the_interval():
    check_number(0.5, "p", 0, 1, low_open=True, high_open=True)
    for bad in (0, 1, float("nan"), True, "0.5"):
        with pytest.raises(ValueError, match=r"p must be a number in \(0, 1\)"):
            check_number(bad, "p", 0, 1, low_open=True, high_open=True)
    with pytest.raises(ValueError, match=r"lr must be a number in \(0, inf\)"):
        check_number(-1.0, "lr", 0, low_open=True)
    with pytest.raises(ValueError, match="must be True or False"):
        check_bool(1, "flag")


def test_from_dict_names_unknown_fields():
    @dataclasses.dataclass
    class Point:
        x: int = 0
        y: int = 0

    assert from_dict(Point, {"x": 2}) == Point(2, 0)
    with pytest.raises(ValueError, match=r"unknown Point fields \['z'\]; known fields are \['x', 'y'\]"):
        from_dict(Point, {"z": 1})


def test_as_ids_and_the_vocabulary_check():
    t = torch.arange(5, dtype=torch.int32)
    assert as_ids(t) is t and as_ids([1, 2]).tolist() == [1, 2]
    for bad, words in (("abc", "encode it"), (torch.zeros(2, 2, dtype=torch.long), "1-D"),
                       (torch.rand(3), "integer token ids"), (torch.ones(3, dtype=torch.bool), "integer token ids")):
        with pytest.raises(ValueError, match=words):
            as_ids(bad, "ids")
    check_ids_in_vocab(t, 5)
    with pytest.raises(ValueError, match="token id 5, outside the model's vocabulary"):
        check_ids_in_vocab(torch.tensor([0, 5]), 5)
    with pytest.raises(ValueError, match="token id -1"):
        check_ids_in_vocab(torch.tensor([-1, 2]), 5)


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match="'gpu7' is not a device torch knows"):
        resolve_device("gpu7", "TrainConfig.device")
    assert resolve_device("cuda:3", must_exist=False) == torch.device("cuda:3")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda")


def test_eval_mode_puts_the_mode_back_even_after_an_error():
    net = torch.nn.Sequential(torch.nn.Dropout(0.5))
    with eval_mode(net) as m:
        assert m is net and not net.training
    assert net.training
    with pytest.raises(RuntimeError):
        with eval_mode(net):
            raise RuntimeError
    assert net.training
    net.eval()
    with eval_mode(net):
        pass
    assert not net.training
