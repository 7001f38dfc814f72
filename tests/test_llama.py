"""The Llama family as configuration: RMSNorm, RoPE, SwiGLU, grouped-query attention, the KV
cache with rotary positions; equal to transformers' LlamaForCausalLM with the same weights."""

import pytest
import torch

import minigpt as mg
from minigpt.model import KVCache, apply_rope, rope_cos_sin

transformers = pytest.importorskip("transformers")


def llama_pair(n_head=4, n_kv_head=2, tie=False, seed=0):
    """A small random LlamaForCausalLM and our GPT with the same weights."""
    torch.manual_seed(seed)
    hf_config = transformers.LlamaConfig(
        vocab_size=101, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
        num_attention_heads=n_head, num_key_value_heads=n_kv_head, max_position_embeddings=64,
        rms_norm_eps=1e-5, rope_parameters={"rope_type": "default", "rope_theta": 500.0}, tie_word_embeddings=tie, attention_bias=False,
        mlp_bias=False, attn_implementation="eager")
    hf = transformers.LlamaForCausalLM(hf_config).eval()
    with torch.no_grad():  # RMSNorm gains start at 1: make them matter
        for name, p in hf.named_parameters():
            if "norm" in name:
                p.uniform_(0.5, 1.5)
    config = mg.GPT.config_from_llama(hf.config)
    ours = mg.GPT.from_llama_state_dict(hf.state_dict(), config).eval()
    return hf, ours


@pytest.mark.parametrize("n_head, n_kv_head, tie", [(4, 2, False), (4, 1, True), (4, 4, False)])
def test_logits_equal_transformers_llama(n_head, n_kv_head, tie):
    hf, ours = llama_pair(n_head, n_kv_head, tie)
    assert ours.config.rope_base == 500.0 and ours.config.kv_heads == n_kv_head
    assert ours.config.norm == "rmsnorm" and ours.config.positions == "rope" and ours.config.mlp == "swiglu"
    idx = torch.randint(0, 101, (2, 23), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = hf(idx).logits
        torch.testing.assert_close(ours(idx).logits, expected, atol=1e-4, rtol=0)
        out = ours(idx, return_attention=True)  # the readable path
        torch.testing.assert_close(out.logits, expected, atol=1e-4, rtol=0)
        assert out.attentions[0].shape == (2, n_head, 23, 23)


def test_kv_cache_with_gqa_and_rope_equals_transformers():
    hf, ours = llama_pair(4, 2)
    idx = torch.randint(0, 101, (1, 20), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = hf(idx).logits
        out = ours(idx[:, :8], use_cache=True)
        pieces, cache = [out.logits], out.past_key_values
        for t in range(8, 20, 4):  # chunks of 4 (readable path), then the fast path
            out = ours(idx[:, t:t + 4], past_key_values=cache, use_cache=True, return_attention=t == 8)
            pieces.append(out.logits)
        torch.testing.assert_close(torch.cat(pieces, dim=1), expected, atol=1e-4, rtol=0)
        # HF with its own cache, one token at a time, agrees too
        hf_out = hf(idx[:, :19], use_cache=True)
        step = hf(idx[:, 19:], cache=hf_out.past_key_values).logits
        torch.testing.assert_close(pieces[-1][:, -1:], step, atol=1e-4, rtol=0)
    k, v = cache[0]
    assert k.shape == (1, 2, 20, 16)  # only the 2 key-value heads are stored, not 4


def test_last_only_gives_the_last_logits():
    _, ours = llama_pair(4, 2)
    idx = torch.randint(0, 101, (2, 9), generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        last = ours(idx, last_only=True).logits
        assert last.shape == (2, 1, 101)
        torch.testing.assert_close(last, ours(idx).logits[:, -1:])


def test_cache_is_preallocated_and_written_in_place():
    _, ours = llama_pair(4, 2)
    with torch.no_grad():
        out = ours(torch.tensor([[1, 2, 3, 4]]), use_cache=True)
        cache = out.past_key_values
        for t in range(3):  # steps write into the same storage until it must grow
            before = cache.keys[0].data_ptr()
            ours(torch.tensor([[5 + t]]), past_key_values=cache, use_cache=True)
            assert cache.length == 5 + t
        assert cache.keys[0].size(2) == 8 and cache.keys[0].data_ptr() == before


def test_greedy_generation_with_cache_equals_recompute_within_the_window():
    _, ours = llama_pair(4, 2, seed=3)
    tok = mg.CharTokenizer.from_text("".join(chr(0x20 + i) for i in range(101)))  # 101 ids
    prompt = tok.encode("hello world")
    cached = mg.trace_generation(ours, tok, prompt, max_new_tokens=20, temperature=0, use_cache=True)
    fresh = mg.trace_generation(ours, tok, prompt, max_new_tokens=20, temperature=0, use_cache=False)
    assert [s.token_id for s in cached] == [s.token_id for s in fresh]


def test_rope_cache_slides_past_the_window_without_recompute():
    _, ours = llama_pair(4, 2, seed=4)
    ours.config.block_size = 16
    idx = torch.randint(0, 101, (1, 20), generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        cache = ours(idx[:, :16], use_cache=True).past_key_values
        full = [(k.clone(), v.clone()) for k, v in cache]  # tokens 0..15
        storage = cache.keys[0].data_ptr()
        slid = ours(idx[:, 16:17], past_key_values=cache, use_cache=True).logits
        assert (cache.length, cache.position, cache.keys[0].data_ptr()) == (16, 17, storage)
        # the same as dropping token 0 from the cache by hand and feeding token 16 at position 16
        by_hand = KVCache.from_pairs([(k[:, :, 1:], v[:, :, 1:]) for k, v in full], 16, can_slide=True)
        by_hand.position = 16
        torch.testing.assert_close(slid, ours(idx[:, 16:17], past_key_values=by_hand).logits)
        for t in range(17, 20):  # and it keeps sliding, one token at a time
            ours(idx[:, t:t + 1], past_key_values=cache, use_cache=True)
        assert (cache.length, cache.position) == (16, 20)
    # the sampler uses the sliding cache instead of recomputing the window
    tok = mg.CharTokenizer.from_text("".join(chr(0x20 + i) for i in range(101)))
    widths = []
    hook = ours.register_forward_pre_hook(lambda module, args, kwargs: widths.append(args[0].size(1)), with_kwargs=True)
    steps = mg.trace_generation(ours, tok, "hello", max_new_tokens=20, temperature=0)
    hook.remove()
    assert len(steps) == 20 and widths == [5] + [1] * 19  # one prefill, then one token a step, past 16 too


def test_rope_scores_depend_only_on_the_offset():
    D = 8
    q, k = torch.randn(1, 1, 1, D), torch.randn(1, 1, 1, D)

    def score(m, n):
        cq, sq = rope_cos_sin(torch.tensor([m]), D, 10000.0)
        ck, sk = rope_cos_sin(torch.tensor([n]), D, 10000.0)
        return float((apply_rope(q, cq, sq) * apply_rope(k, ck, sk)).sum())

    assert score(5, 2) == pytest.approx(score(105, 102), abs=1e-4)
    assert score(5, 2) != pytest.approx(score(5, 4), abs=1e-4)


def test_learned_positions_cannot_slide():
    model = mg.GPT(mg.GPTConfig(vocab_size=10, block_size=4, n_layer=1, n_head=1, n_embd=8)).eval()
    cache = model(torch.zeros(1, 4, dtype=torch.long), use_cache=True).past_key_values
    with pytest.raises(ValueError, match="block_size"):
        model(torch.zeros(1, 1, dtype=torch.long), past_key_values=cache)


def test_cache_crop_branches_off_earlier():
    _, ours = llama_pair(4, 2)
    idx = torch.randint(0, 101, (1, 12), generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        cache = ours(idx[:, :10], use_cache=True).past_key_values
        cache.crop(6)
        branched = ours(idx[:, 6:12], past_key_values=cache, use_cache=True).logits
        torch.testing.assert_close(branched, ours(idx).logits[:, 6:], atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="crop"):
        cache.crop(50)


@pytest.mark.parametrize("kwargs, message", [
    (dict(n_kv_head=3), "n_kv_head"),
    (dict(norm="batchnorm"), "norm"),
    (dict(positions="sinusoid"), "positions"),
    (dict(mlp="relu"), "mlp"),
    (dict(n_embd=12, n_head=4, positions="rope"), "even"),
])
def test_llama_config_validation(kwargs, message):
    base = dict(vocab_size=10, n_head=4, n_embd=32)
    with pytest.raises(ValueError, match=message):
        mg.GPTConfig(**{**base, **kwargs})


def test_gpt2_defaults_unchanged():
    config = mg.GPTConfig()
    assert (config.norm, config.positions, config.mlp, config.kv_heads, config.hidden, config.tie_weights) == \
        ("layernorm", "learned", "gelu", 4, 512, True)
    assert isinstance(mg.GPT(config)(torch.zeros(1, 3, dtype=torch.long), use_cache=True).past_key_values, KVCache)
