"""The real SmolLM2-135M-Instruct from its GGUF file, in minigpt's own GPT, against transformers
loading the same file: logits on several prompts, greedy generation, the KV cache."""

import pytest
import torch

import minigpt as mg

from smollm import ours, reference

PROMPTS = [
    "The capital of France is",
    "<|im_start|>user\nWrite a haiku about the sea.<|im_end|>\n<|im_start|>assistant\n",
    "def fibonacci(n):\n    if n < 2:\n        return n\n",
    "机器学习是人工智能的一个分支，",
]


@pytest.mark.parametrize("prompt", PROMPTS)
def test_logits_equal_transformers(prompt):
    model, tok = ours()
    hf, _ = reference()
    idx = torch.tensor([tok.encode(prompt, allowed_special="all")])
    with torch.inference_mode():
        expected = hf(idx).logits
        torch.testing.assert_close(model(idx).logits, expected, atol=1e-3, rtol=0)
        # the readable path (the maps) and the cache give the same numbers
        out = model(idx[:, :-3], use_cache=True, return_attention=True)
        assert out.attentions[0].shape == (1, 9, idx.size(1) - 3, idx.size(1) - 3)
        rest = model(idx[:, -3:], past_key_values=out.past_key_values).logits
        torch.testing.assert_close(rest, expected[:, -3:], atol=1e-3, rtol=0)


def test_greedy_30_tokens_equal_transformers():
    model, tok = ours()
    hf, _ = reference()
    prompt = "<|im_start|>user\nWhat is gravity?<|im_end|>\n<|im_start|>assistant\n"
    ids = tok.encode(prompt, allowed_special="all")
    steps = mg.trace_generation(model, tok, ids, max_new_tokens=30, temperature=0)
    with torch.inference_mode():
        theirs = hf.generate(torch.tensor([ids]), max_new_tokens=30, min_new_tokens=30, do_sample=False,
                             pad_token_id=2)[0, len(ids):].tolist()
    assert [s.token_id for s in steps] == theirs


def test_kv_cache_holds_only_the_key_value_heads():
    model, tok = ours()
    with torch.inference_mode():
        cache = model(torch.tensor([tok.encode("Hello there")]), use_cache=True).past_key_values
    k, v = cache[0]
    assert k.shape[1] == 3 and model.config.n_head == 9  # a third of the memory of full attention
