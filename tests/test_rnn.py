"""The GRU encoder–decoder with Luong attention (minigpt.rnn), the recurrent baseline."""

import pytest
import torch
from torch.nn import functional as F

import minigpt as mg
from minigpt.dialogue_pairs import PairData
from minigpt.rnn import SCORES, GRUConfig, GRUSeq2Seq
from minigpt.seq2seq import beam_reply, greedy_reply

from seq2seq_toys import EOS, PAD, SOS, V, IdTokenizer


def tiny(**kw) -> GRUSeq2Seq:
    torch.manual_seed(0)
    return GRUSeq2Seq(GRUConfig(**{**dict(vocab_size=V, hidden_size=16, n_layer=2, block_size=10), **kw})).eval()


def question(n, seed=1):
    return torch.randint(3, V, (n,), generator=torch.Generator().manual_seed(seed))


def reply_input(n, seed=2):
    t = torch.randint(3, V, (1, n), generator=torch.Generator().manual_seed(seed))
    t[0, 0] = SOS
    return t


@pytest.mark.parametrize("score", SCORES)
def test_padding_in_the_question_never_changes_the_answers_logits(score):
    model = tiny(attention=score)
    q, tgt = question(4), reply_input(6)
    alone = model(q[None], tgt).logits
    src = torch.stack((torch.cat((q, torch.full((5,), PAD))), question(9, seed=5)))
    torch.testing.assert_close(model(src, tgt.expand(2, 6)).logits[:1], alone, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("score", SCORES)
def test_luong_weights_sum_to_one_per_step_and_skip_padding(score):
    model = tiny(attention=score)
    src = torch.stack((torch.cat((question(3), torch.full((4,), PAD))), question(7)))
    (att,) = model(src, reply_input(5).expand(2, 5), return_attention=True).cross_attentions
    assert att.shape == (2, 1, 5, 7)
    torch.testing.assert_close(att.sum(-1), torch.ones(2, 1, 5))
    assert att[0, ..., 3:].abs().max() == 0


def test_luong_scores_are_the_textbook_formulas():
    torch.manual_seed(0)
    h, enc, mask = torch.randn(2, 16), torch.randn(2, 5, 16), torch.ones(2, 5, dtype=torch.bool)
    for score in SCORES:
        attn = tiny(attention=score).decoder.attn
        if score == "dot":
            scores = torch.einsum("bd,bsd->bs", h, enc)
        elif score == "general":
            scores = torch.einsum("bd,bsd->bs", h, enc @ attn.W.weight.T)
        else:
            both = torch.cat((h[:, None].expand(2, 5, 16), enc), -1)
            scores = torch.tanh(both @ attn.W.weight.T + attn.W.bias) @ attn.v
        torch.testing.assert_close(attn(h, enc, mask), F.softmax(scores, -1))


def test_stepping_the_decoder_equals_the_teacher_forced_forward():
    model = tiny()
    q, tgt = question(6)[None], reply_input(8)
    full = model(q, tgt).logits
    state = model.start(q)
    with torch.no_grad():
        first, state = model.step(tgt[:, :3], state)
        steps = [first] + [model.step(tgt[:, t:t + 1], state)[0] for t in range(3, 8)]
    torch.testing.assert_close(torch.stack(steps, 1), full[:, 2:], atol=1e-5, rtol=1e-5)


def test_the_decoder_never_sees_the_future():
    model = tiny()
    q, tgt = question(5)[None], reply_input(8)
    base = model(q, tgt).logits
    changed = tgt.clone()
    changed[0, 4:] = 3
    torch.testing.assert_close(model(q, changed).logits[:, :4], base[:, :4])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_beam_width_one_is_greedy(seed):
    model = tiny(eos_id=5 + seed)
    q = question(6, seed=seed)
    beam = beam_reply(model, IdTokenizer(), q, beam_width=1, max_new_tokens=12, length_penalty=0)
    assert beam.best.ids == greedy_reply(model, q, max_new_tokens=12)
    assert len(beam_reply(model, IdTokenizer(), q, beam_width=3, max_new_tokens=6).beams) >= 1


def copy_task(n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    examples = []
    for _ in range(n):
        q = torch.randint(3, V, (int(torch.randint(2, 6, (1,), generator=g)),), generator=g).tolist()
        examples.append((q, [SOS] + q + [EOS]))
    return PairData(examples, pad_id=PAD)


@pytest.mark.parametrize("ratio,per", [(1.0, "step"), (0.0, "step"), (0.5, "batch")])
def test_teacher_forcing_ratio_zero_and_one_both_train_through_the_trainer(ratio, per):
    model = tiny(teacher_forcing_ratio=ratio, teacher_forcing=per, hidden_size=32, n_layer=1)
    before = [p.detach().clone() for p in model.parameters()]
    cfg = mg.TrainConfig(max_iters=40, batch_size=16, learning_rate=1e-2, min_lr=1e-3, warmup_iters=0,
                         eval_interval=40, eval_iters=4, device="cpu", progress=False)
    history = mg.Trainer(model, copy_task(), copy_task(seed=1), cfg, get_batch=PairData.get_batch).fit()
    assert history["val_loss"][-1] < history["val_loss"][0] - 0.2
    assert all(not torch.equal(b, p) for b, p in zip(before, model.parameters()))


def test_ratio_zero_feeds_the_models_own_predictions_while_training():
    model = tiny(teacher_forcing_ratio=0.0)
    q, tgt = question(5)[None], reply_input(6)
    forced = model(q, tgt, targets=tgt).logits  # eval mode: always teacher forcing
    model.train()
    free = model(q, tgt, targets=tgt).logits
    own = torch.cat((tgt[:, :1], free.argmax(-1)[:, :-1]), 1)  # what it read: its own predictions
    model.eval()
    torch.testing.assert_close(free, model(q, own).logits)
    assert not torch.allclose(free, forced)


def test_bad_input_gets_a_clear_error():
    model = tiny()
    with pytest.raises(ValueError, match="padding at the right"):
        model(torch.tensor([[3, 4, 5]]), reply_input(3), src_mask=torch.tensor([[False, True, True]]))
    with pytest.raises(ValueError, match="all padding"):
        model(torch.tensor([[PAD, PAD]]), reply_input(3))
    with pytest.raises(ValueError, match="outside the vocabulary"):
        model(torch.tensor([[3, V]]), reply_input(3))
    with pytest.raises(ValueError, match="decoder input tgt"):
        model(question(3)[None])
    with pytest.raises(ValueError, match="rows"):
        model(question(3)[None], reply_input(3).expand(2, 3))
    with pytest.raises(ValueError, match="attention"):
        GRUConfig(attention="additive")
    with pytest.raises(ValueError, match="teacher_forcing"):
        GRUConfig(teacher_forcing="epoch")
    with pytest.raises(ValueError, match="sos_id"):
        GRUConfig(vocab_size=4, sos_id=7)
    with pytest.raises(TypeError, match="GRUConfig"):
        GRUSeq2Seq(mg.GPTConfig())
