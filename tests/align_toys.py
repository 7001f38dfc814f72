"""Tiny models and data shared by the alignment tests: a byte tokenizer with the chat tokens and a
1-layer GPT, so every run takes seconds and repeats exactly."""

import copy

import torch

import minigpt as mg
from minigpt.sft import SPECIAL_TOKENS


def byte_chat_tokenizer():
    """Bytes (ids 0..255) plus <|endoftext|> and the chat template's tokens (256..260)."""
    return mg.BPETokenizer((), ["<|endoftext|>", *SPECIAL_TOKENS], allowed_special="none")


def tiny_policy(seed: int = 0, block_size: int = 48):
    torch.manual_seed(seed)
    tok = byte_chat_tokenizer()
    model = mg.GPT(mg.GPTConfig(vocab_size=tok.vocab_size, block_size=block_size, n_layer=1, n_head=2, n_embd=32))
    return model.eval(), tok


def tiny_llama_policy(seed: int = 0, block_size: int = 48):
    """The same, as a Llama-family GPT (RMSNorm, RoPE, SwiGLU, grouped-query attention)."""
    torch.manual_seed(seed)
    tok = byte_chat_tokenizer()
    config = mg.GPTConfig(vocab_size=tok.vocab_size, block_size=block_size, n_layer=1, n_head=4, n_kv_head=2,
                          n_embd=32, bias=False, norm="rmsnorm", positions="rope", mlp="swiglu")
    return mg.GPT(config).eval(), tok


def with_reference(model):
    return model, copy.deepcopy(model)


PROMPTS = ["hi", "ok", "yo", "so", "no", "go", "hey", "why", "who", "how", "and", "but"]
EVAL_PROMPTS = ["me", "we", "it", "up", "sun", "cat"]


def share_of_a(rollout) -> torch.Tensor:
    """A synthetic reward: the share of an answer's characters that are 'a' (for quick, exact runs)."""
    return torch.tensor([a.count("a") / max(1, len(a)) for a in rollout.answers])


def tiny_chatml_llama_policy(seed: int = 0, block_size: int = 64):
    """A Llama-family GPT with a ChatML tokenizer (<|im_start|>, <|im_end|>), as SmolLM2 has, in miniature."""
    torch.manual_seed(seed)
    tok = mg.BPETokenizer((), ["<|endoftext|>", "<|im_start|>", "<|im_end|>"], allowed_special="none")
    config = mg.GPTConfig(vocab_size=tok.vocab_size, block_size=block_size, n_layer=1, n_head=4, n_kv_head=2,
                          n_embd=32, bias=False, norm="rmsnorm", positions="rope", mlp="swiglu")
    return mg.GPT(config).eval(), tok
