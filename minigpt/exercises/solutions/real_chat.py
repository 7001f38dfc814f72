"""Solutions for notebook 09 (a real chat model): RMSNorm, rotary position embeddings, the
ChatML template and the size of a KV cache, each written from scratch."""

import torch


def my_rms_norm(x, weight, eps=1e-5):
    """x: [..., C]; weight: [C] -> [..., C]: each vector divided by its root mean square, then scaled."""
    rms = torch.sqrt(x.pow(2).mean(dim=-1, keepdim=True) + eps)
    return x / rms * weight


def my_rope(x, positions, base=10000.0):
    """x: [..., T, D] (D even); positions: [T] -> [..., T, D]: pair (i, i + D/2) of the vector at
    position m turned by the angle m * base^(-2i/D)."""
    D = x.size(-1)
    inv_freq = base ** (-torch.arange(0, D, 2, dtype=torch.float32, device=x.device) / D)   # [D/2]
    angles = positions.float()[:, None] * inv_freq[None, :]                          # [T, D/2]
    cos, sin = angles.cos(), angles.sin()
    x1, x2 = x[..., : D // 2], x[..., D // 2:]
    return torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)


def my_chatml(messages, add_generation_prompt=True):
    """[{"role": ..., "content": ...}, ...] -> the ChatML text the model reads."""
    text = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)
    if add_generation_prompt:
        text += "<|im_start|>assistant\n"
    return text


def kv_cache_bytes(config, T, bytes_per_number=4):
    """Bytes a KV cache of T tokens takes for a GPTConfig: keys and values, every layer, the
    key-value heads only."""
    head_size = config.n_embd // config.n_head
    return 2 * config.n_layer * config.kv_heads * head_size * T * bytes_per_number
