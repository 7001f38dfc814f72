"""The GPT model: shapes, causality, readable == fast attention, KV cache, GPT-2 import."""

import math

import pytest
import torch

import minigpt as mg


def test_forward_shapes_and_loss(tiny_model, tiny_config):
    idx = torch.randint(0, tiny_config.vocab_size, (3, 10))
    out = tiny_model(idx, targets=idx, return_attention=True, return_hidden_states=True)
    assert out.logits.shape == (3, 10, tiny_config.vocab_size)
    assert out.loss.ndim == 0
    # An untrained model is close to uniform: loss near ln(V).
    assert abs(out.loss.item() - math.log(tiny_config.vocab_size)) < 0.5
    assert len(out.attentions) == tiny_config.n_layer
    assert all(a.shape == (3, tiny_config.n_head, 10, 10) for a in out.attentions)
    assert len(out.hidden_states) == tiny_config.n_layer + 1
    assert all(h.shape == (3, 10, tiny_config.n_embd) for h in out.hidden_states)
    assert out.past_key_values is None


def test_attention_rows_are_causal_distributions(tiny_model):
    idx = torch.randint(0, 50, (1, 12))
    att = tiny_model(idx, return_attention=True).attentions[0][0]  # [H, T, T]
    torch.testing.assert_close(att.sum(-1), torch.ones(att.shape[:-1]))
    assert torch.all(att.triu(diagonal=1) == 0), "a position attends to the future"


def test_future_tokens_do_not_change_past_logits(tiny_model):
    idx = torch.randint(0, 50, (1, 16))
    changed = idx.clone()
    changed[0, 10:] = (changed[0, 10:] + 1) % 50
    a, b = tiny_model(idx).logits, tiny_model(changed).logits
    torch.testing.assert_close(a[:, :10], b[:, :10])
    assert not torch.allclose(a[:, 10:], b[:, 10:])


def test_readable_attention_equals_fast_attention(tiny_model):
    idx = torch.randint(0, 50, (2, 32))
    readable = tiny_model(idx, return_attention=True).logits
    fast = tiny_model(idx).logits
    torch.testing.assert_close(readable, fast, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("how", ["mask", "causal", "none"])
def test_attention_readable_and_fused_paths_agree(how):
    """minigpt.model.attention: one function for every model; its two paths give the same numbers."""
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 5, 4, generator=g) for _ in range(3))
    mask = {"mask": torch.rand(2, 1, 5, 5, generator=g) > 0.3, "causal": None, "none": None}[how]
    if mask is not None:
        mask[..., 0] = True  # every query may see at least one key
    causal = how == "causal"
    y_read, att = mg.model.attention(q, k, v, mask=mask, is_causal=causal, return_attention=True)
    y_fast, none = mg.model.attention(q, k, v, mask=mask, is_causal=causal)
    torch.testing.assert_close(y_read, y_fast, rtol=1e-5, atol=1e-5)
    assert none is None and att.shape == (2, 3, 5, 5)
    torch.testing.assert_close(att.sum(-1), torch.ones(2, 3, 5))
    if causal:
        assert (att.triu(1) == 0).all()
    if mask is not None:
        assert (att[~mask.expand_as(att)] == 0).all()
    # bfloat16 inputs on a CPU are computed in float32 (faster there) and returned in bfloat16
    y_bf16, _ = mg.model.attention(q.bfloat16(), k.bfloat16(), v.bfloat16(), mask=mask, is_causal=causal)
    assert y_bf16.dtype == torch.bfloat16
    torch.testing.assert_close(y_bf16.float(), y_fast, rtol=0.05, atol=0.05)


@pytest.mark.parametrize("return_attention", [False, True])
def test_kv_cache_forward_equals_full_forward(tiny_model, return_attention):
    idx = torch.randint(0, 50, (2, 20))
    full = tiny_model(idx).logits
    out = tiny_model(idx[:, :7], use_cache=True)
    pieces = [out.logits]
    cache = out.past_key_values
    for t in range(7, 20, 3):  # feed the rest in chunks of 3, then 1 by 1 at the end
        out = tiny_model(idx[:, t:t + 3], past_key_values=cache, use_cache=True,
                         return_attention=return_attention)
        cache = out.past_key_values
        pieces.append(out.logits)
    torch.testing.assert_close(torch.cat(pieces, dim=1), full, atol=1e-5, rtol=1e-5)
    assert cache[0][0].shape == (2, 2, 20, 16)  # [B, H, P+T, D]


def test_weight_tying_and_parameter_count(tiny_model, tiny_config):
    assert tiny_model.lm_head.weight is tiny_model.transformer.wte.weight
    V, T, L, C = tiny_config.vocab_size, tiny_config.block_size, tiny_config.n_layer, tiny_config.n_embd
    per_block = (2 * 2 * C) + (C * 3 * C + 3 * C) + (C * C + C) + (C * 4 * C + 4 * C) + (4 * C * C + C)
    expected = V * C + T * C + L * per_block + 2 * C
    assert tiny_model.num_params() == expected
    assert tiny_model.num_params(non_embedding=True) == expected - T * C


def test_gpt2_initialisation_scales_residual_projections():
    torch.manual_seed(0)
    model = mg.GPT(mg.GPTConfig(vocab_size=100, n_layer=8, n_embd=256, n_head=4))
    std = model.transformer.h[0].mlp.c_proj.weight.std().item()
    assert abs(std - 0.02 / math.sqrt(2 * 8)) < 0.001
    assert abs(model.transformer.h[0].mlp.c_fc.weight.std().item() - 0.02) < 0.001


def test_dropout_only_in_training():
    torch.manual_seed(0)
    model = mg.GPT(mg.GPTConfig(vocab_size=20, block_size=8, n_layer=1, n_head=2, n_embd=16, dropout=0.5))
    idx = torch.randint(0, 20, (1, 8))
    model.train()
    assert not torch.equal(model(idx).logits, model(idx).logits)
    model.eval()
    assert torch.equal(model(idx).logits, model(idx).logits)


def test_gradients_reach_every_parameter(tiny_model):
    tiny_model.train()
    idx = torch.randint(0, 50, (2, 16))
    tiny_model(idx, targets=idx).loss.backward()
    for name, p in tiny_model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_ignore_index_in_targets(tiny_model):
    idx = torch.randint(0, 50, (1, 8))
    targets = idx.clone()
    targets[0, :4] = -100
    loss = tiny_model(idx, targets=targets).loss
    logits = tiny_model(idx).logits
    expected = torch.nn.functional.cross_entropy(logits[0, 4:], idx[0, 4:])
    torch.testing.assert_close(loss, expected)


@pytest.mark.parametrize("kwargs, message", [
    (dict(n_embd=130, n_head=4), "divisible"),
    (dict(n_layer=0), "positive integer"),
    (dict(vocab_size=2.5), "positive integer"),
    (dict(dropout=1.0), "dropout"),
])
def test_config_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        mg.GPTConfig(**kwargs)


def test_config_round_trip_and_unknown_fields(tiny_config):
    assert mg.GPTConfig.from_dict(tiny_config.to_dict()) == tiny_config
    with pytest.raises(ValueError, match="unknown GPTConfig fields"):
        mg.GPTConfig.from_dict({**tiny_config.to_dict(), "n_layers": 3})


@pytest.mark.parametrize("idx, message", [
    (torch.tensor([[1, 2, 50]]), "out of range"),
    (torch.tensor([[-1, 2]]), "out of range"),
    (torch.zeros(1, 33, dtype=torch.long), "longer than the model's block_size"),
    (torch.zeros(5, dtype=torch.long), r"\[batch, seq\]"),
    (torch.zeros(1, 4), "torch.long"),
    (torch.zeros(1, 0, dtype=torch.long), "empty"),
])
def test_bad_input_gets_a_clear_error(tiny_model, idx, message):
    with pytest.raises(ValueError, match=message):
        tiny_model(idx)


def test_cache_overflow_is_a_clear_error(tiny_model):
    out = tiny_model(torch.zeros(1, 32, dtype=torch.long), use_cache=True)
    with pytest.raises(ValueError, match="block_size"):
        tiny_model(torch.zeros(1, 1, dtype=torch.long), past_key_values=out.past_key_values)


def test_targets_shape_mismatch(tiny_model):
    with pytest.raises(ValueError, match="targets"):
        tiny_model(torch.zeros(1, 4, dtype=torch.long), targets=torch.zeros(1, 3, dtype=torch.long))


def test_gpt2_import_matches_transformers_logits():
    transformers = pytest.importorskip("transformers")
    hf_config = transformers.GPT2Config(vocab_size=97, n_positions=24, n_embd=48, n_layer=3, n_head=4,
                                        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    torch.manual_seed(0)
    hf = transformers.GPT2LMHeadModel(hf_config).eval()
    ours = mg.GPT.from_gpt2_state_dict(hf.state_dict(), mg.GPT.config_from_gpt2(hf_config)).eval()
    idx = torch.randint(0, 97, (2, 24))
    with torch.no_grad():
        expected = hf(idx).logits
        torch.testing.assert_close(ours(idx).logits, expected, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(ours(idx, return_attention=True).logits, expected, atol=1e-4, rtol=1e-4)


def test_gpt2_import_rejects_a_mismatched_config():
    transformers = pytest.importorskip("transformers")
    hf_config = transformers.GPT2Config(vocab_size=97, n_positions=24, n_embd=48, n_layer=2, n_head=4)
    hf = transformers.GPT2LMHeadModel(hf_config)
    wrong = mg.GPTConfig(vocab_size=97, block_size=24, n_layer=2, n_head=4, n_embd=64)
    with pytest.raises(ValueError, match="does the config match"):
        mg.GPT.from_gpt2_state_dict(hf.state_dict(), wrong)
    with pytest.raises(ValueError, match="GPT2LMHeadModel"):
        mg.GPT.from_gpt2_state_dict({"foo": torch.zeros(1)}, mg.GPT.config_from_gpt2(hf_config))
