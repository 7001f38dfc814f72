"""The masked language model (minigpt.mlm): BERT's masking, the encoder-decoder's own encoder
blocks, a loss that falls, fill-in-the-blank with probabilities, its widget, and clear errors."""

import math

import pytest
import torch

import minigpt as mg
from minigpt import mlm, seq2seq
from minigpt.checkpoint import CheckpointError, export_weights
from minigpt.mlm import MaskedLM, MLMConfig, MLMData, fill_in, mask_tokens
from minigpt.train import Trainer, TrainConfig
from minigpt.viz.seq2seq import FillInExplorer, plot_fill_in

PNG = b"\x89PNG"
TEXT = "the cat sat on the mat. the dog sat on the log. 你好。\n" * 40


@pytest.fixture(scope="module")
def tok():
    return mg.CharTokenizer.from_text(TEXT, special_tokens=mlm.SPECIALS)


def config(tok, **kw):
    s = tok.special_tokens
    return MLMConfig(**{**dict(vocab_size=tok.vocab_size, block_size=32, n_layer=2, n_head=2, n_embd=32,
                               pad_id=s["<pad>"], mask_id=s["<mask>"]), **kw})


def tiny(tok, **kw):
    torch.manual_seed(0)
    return MaskedLM(config(tok, **kw)).eval()


@pytest.fixture(scope="module")
def trained(tok):
    """A tiny model trained briefly on TEXT through the Trainer, and its loss history."""
    cfg = config(tok)
    torch.manual_seed(0)
    model = MaskedLM(cfg)
    data = MLMData(tok.encode(TEXT), cfg.mask_id, cfg.vocab_size, protected=tok.special_tokens.values())
    tcfg = TrainConfig(max_iters=100, batch_size=16, block_size=32, learning_rate=1e-2, min_lr=1e-3, warmup_iters=10,
                       eval_interval=50, eval_iters=4, device="cpu", progress=False)
    history = Trainer(model, data, data, tcfg, get_batch=MLMData.get_batch).fit()
    return model.eval(), history


# ------------------------------------------------------------------ masking


def test_masking_chooses_15_percent_and_replaces_them_80_10_10():
    V, MASK, PAD = 50, 48, 49
    ids = torch.randint(0, 48, (64, 512), generator=torch.Generator().manual_seed(0))
    ids[:, -10:] = PAD
    inputs, labels = mask_tokens(ids, MASK, V, 0.15, protected=[PAD], generator=torch.Generator().manual_seed(1))
    chosen = labels != -100
    assert abs(chosen.float().sum() / (ids != PAD).sum() - 0.15) < 0.01
    assert torch.equal(labels[chosen], ids[chosen])         # the original token at chosen positions
    assert (labels[~chosen] == -100).all()                  # -100 everywhere else
    assert torch.equal(inputs[~chosen], ids[~chosen])       # only chosen tokens change
    assert not chosen[:, -10:].any() and (inputs[:, -10:] == PAD).all()  # padding is never chosen
    n = chosen.sum()
    masked = (inputs == MASK) & chosen
    swapped = (inputs != MASK) & (inputs != ids) & chosen
    kept = (inputs == ids) & chosen
    assert abs(masked.sum() / n - 0.8) < 0.02
    # a random token is sometimes the original one: 10% swapped, a little less seen as changed
    assert 0.08 < swapped.sum() / n < 0.11 and 0.09 < kept.sum() / n < 0.12
    assert not torch.isin(inputs[swapped], torch.tensor([MASK, PAD])).any()  # random tokens are ordinary


def test_masking_repeats_with_a_seed_and_chooses_at_least_one_per_row():
    ids = torch.randint(0, 10, (200, 4), generator=torch.Generator().manual_seed(0))
    a = mask_tokens(ids, 10, 11, generator=torch.Generator().manual_seed(5))
    b = mask_tokens(ids, 10, 11, generator=torch.Generator().manual_seed(5))
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert ((a[1] != -100).sum(1) >= 1).all()  # at 15% of 4 tokens many rows would have none


def test_masking_bad_input():
    with pytest.raises(ValueError, match="torch.long"):
        mask_tokens(torch.zeros(2, 3), 1, 5)
    with pytest.raises(ValueError, match="rate"):
        mask_tokens(torch.zeros(2, 3, dtype=torch.long), 1, 5, rate=0)
    with pytest.raises(ValueError, match="protected"):
        mask_tokens(torch.zeros(2, 3, dtype=torch.long), 1, 2, protected=[0])


def test_batches_for_the_trainer_are_masked_windows(tok):
    cfg = config(tok)
    data = MLMData(tok.encode(TEXT), cfg.mask_id, cfg.vocab_size, protected=tok.special_tokens.values())
    x, y = MLMData.get_batch(data, 8, 32, generator=torch.Generator().manual_seed(0))
    assert x.shape == y.shape == (8, 32) and (y != -100).any(1).all()
    assert (x == cfg.mask_id).any()


# ------------------------------------------------------------------ the model


def test_the_encoder_is_the_encoder_decoders_own_blocks(tok):
    model = tiny(tok)
    assert all(type(b) is seq2seq.EncoderBlock for b in model.encoder)
    assert all(type(b.attn) is seq2seq.EncoderSelfAttention for b in model.encoder)
    assert not any(isinstance(m, torch.nn.MultiheadAttention) for m in model.modules())
    # its weights, under Seq2Seq's names, make a Seq2Seq's encoder compute exactly the same
    c = model.config
    s2s = seq2seq.Seq2Seq(seq2seq.Seq2SeqConfig(vocab_size=c.vocab_size, src_block_size=c.block_size, n_layer=2,
                                                n_head=c.n_head, n_embd=c.n_embd, pad_id=c.pad_id, sos_id=0,
                                                eos_id=1)).eval()
    missing, unexpected = s2s.load_state_dict(model.encoder_weights(), strict=False)
    assert not unexpected and not any(k.startswith(("encoder.", "ln_enc.", "wpe_src.")) for k in missing)
    src = torch.tensor([tok.encode("the cat sat on the mat.")])
    with torch.no_grad():
        torch.testing.assert_close(model.encode(src)[0], s2s.encode(src)[0])


def test_shapes_attention_and_the_padding_mask(tok):
    model = tiny(tok)
    ids = torch.tensor([tok.encode("the dog sat")])
    out = model(ids, return_attention=True)
    assert out.logits.shape == (1, 11, tok.vocab_size) and out.loss is None
    assert [a.shape for a in out.attentions] == [(1, 2, 11, 11)] * 2
    torch.testing.assert_close(out.attentions[0].sum(-1), torch.ones(1, 2, 11))
    # padding after a sentence changes none of its logits: nothing attends to it
    pad = torch.cat([ids, torch.full((1, 5), model.config.pad_id)], dim=1)
    torch.testing.assert_close(model(pad).logits[:, :11], out.logits)
    assert (model(pad, return_attention=True).attentions[1][..., 11:] == 0).all()


def test_bad_config_and_input_get_clear_errors(tok):
    with pytest.raises(ValueError, match="must differ"):
        config(tok, mask_id=tok.special_tokens["<pad>"])
    with pytest.raises(ValueError, match="mask_rate"):
        config(tok, mask_rate=1.0)
    model = tiny(tok)
    with pytest.raises(ValueError, match="at most src_block_size|at most"):
        model(torch.zeros(1, 33, dtype=torch.long))
    with pytest.raises(ValueError, match="outside the vocabulary"):
        model(torch.tensor([[999]]))
    with pytest.raises(ValueError, match="targets must be shaped"):
        model(torch.zeros(1, 4, dtype=torch.long), targets=torch.zeros(1, 3, dtype=torch.long))


def test_the_loss_falls_through_the_trainer(trained, tok):
    model, history = trained
    first, last = history["val_loss"][0], history["val_loss"][-1]
    assert abs(first - math.log(tok.vocab_size)) < 0.3  # a fresh model: about uniform over the tokens
    assert last < first - 0.3


# ------------------------------------------------------------------ filling in the blanks


def test_fill_in_lists_candidates_with_probabilities(trained, tok):
    model, _ = trained
    f = fill_in(model, tok, "the c_t sat on the [MASK]at.", k=4)
    assert f.positions == [5, 19] and f.tokens[5] == "<mask>" and f.tokens[19] == "<mask>"
    assert f.tokens[:5] == list("the c") and len(f.tokens) == 23
    assert [len(c) for c in f.candidates] == [4, 4]
    # the model's own distribution at the blanks, with the special tokens ruled out
    ids = [tok.encode(t)[0] if t != "<mask>" else model.config.mask_id for t in f.tokens]
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0, [5, 19]]
    logits[:, list(tok.special_tokens.values())] = float("-inf")
    torch.testing.assert_close(f.probs, torch.softmax(logits, -1))
    for cands, probs in zip(f.candidates, f.probs):
        ps = [p for _, _, p in cands]
        assert ps == sorted(ps, reverse=True) and sum(ps) <= 1 + 1e-6 and all(0 <= p <= 1 for p in ps)
        top = probs.topk(4)
        assert [i for _, i, _ in cands] == top.indices.tolist()
        assert [t for t, _, _ in cands] == [tok.token_str(i) for i in top.indices.tolist()]
    assert all(f.probs[:, i].max() == 0 for i in tok.special_tokens.values())  # never offered
    best = [c[0][0] for c in f.candidates]
    assert f.filled == f"the c{best[0]}t sat on the {best[1]}at."
    assert f.filled_in_order.startswith("the c") and len(f.filled_in_order) == len(f.filled)


def test_fill_in_bad_input(trained, tok):
    model, _ = trained
    for text, words in (("the cat sat", "no blank"), ("", "empty"), ("  ", "empty"),
                        ("the c_t ☃", "does not know"), ("the c_t " * 5, "at most 32")):
        with pytest.raises(ValueError, match=words):
            fill_in(model, tok, text)
    with pytest.raises(ValueError, match="k must"):
        fill_in(model, tok, "the c_t", k=0)
    with pytest.raises(ValueError, match="MaskedLM"):
        fill_in(mg.GPT(mg.GPTConfig(vocab_size=tok.vocab_size, block_size=8, n_layer=1, n_head=1, n_embd=8)), tok,
                "the c_t")


def test_fill_in_widget_changes_with_the_sentence_and_k(trained, tok):
    model, _ = trained
    w = FillInExplorer(model, tok, "the d_g sat", k=3)
    assert w.error is None and [len(c) for c in w.candidates()] == [3]
    assert w.static_png().startswith(PNG) and "1 blank" in w.status.value
    before = w.static_png()
    w.k.value = 5
    assert [len(c) for c in w.candidates()] == [5] and w.static_png() != before
    w.text.value = "no blank here"
    assert w.result is None and "no blank" in w.error and "no blank" in w.status.value
    assert w.static_png().startswith(PNG)
    with pytest.raises(ValueError, match="nothing filled in"):
        w.candidates()
    w.text.value = "the __t sat"
    assert w.error is None and len(w.candidates()) == 2
    fig = plot_fill_in(w.result)
    assert sum(1 for ax in fig.axes if ax.patches) == 2
    with pytest.raises(ValueError, match="MaskedLM"):
        FillInExplorer(mg.GPT(mg.GPTConfig(vocab_size=10, block_size=8, n_layer=1, n_head=1, n_embd=8)), tok)


# ------------------------------------------------------------------ saving and loading


def test_save_and_load_round_trip(tmp_path, tok, tiny_model):
    model = tiny(tok)
    path = mlm.save(tmp_path / "m.pt", model, tok, extra={"history": {"val_loss": [1.0]}})
    loaded, tok2 = mlm.load(path)
    assert tok2.to_dict() == tok.to_dict() and loaded.config == model.config
    ids = torch.tensor([tok.encode("the cat")])
    torch.testing.assert_close(loaded(ids).logits, model(ids).logits)
    gpt = export_weights(tmp_path / "gpt.pt", tiny_model)
    with pytest.raises(CheckpointError, match="masked language model"):
        mlm.load(gpt)


def test_the_shipped_model_fills_in_a_blank_offline():
    model, tok = mg.pretrained.load("mlm-en")
    assert "mlm-en" in mg.pretrained.available() and "CC BY-NC-SA 4.0" in mg.pretrained.PRETRAINED["mlm-en"].description
    assert isinstance(model, MaskedLM) and all(type(b) is seq2seq.EncoderBlock for b in model.encoder)
    f = fill_in(model, tok, "How are y__ today?", k=3)
    assert f.filled_in_order == "How are you today?" and f.candidates[0][0][0] == "o"
