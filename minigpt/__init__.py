"""minigpt: a small, real GPT, built piece by piece in the course notebooks.

    import minigpt as mg
    text = mg.data.load_text("tinyshakespeare")
    tok = mg.CharTokenizer.from_text(text)
    model = mg.GPT(mg.GPTConfig(vocab_size=tok.vocab_size))
    print(mg.generate(model, tok, "ROMEO:", max_new_tokens=50, seed=0))

Names are imported on first use, so ``import minigpt`` is quick and a notebook that only
needs the tokenizer does not pay for matplotlib or ipywidgets.
"""

from importlib import import_module

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS = {
    "GPT": "model", "GPTConfig": "model", "GPTOutput": "model", "causal_mask": "model",
    "CharTokenizer": "tokenizer", "BPETokenizer": "tokenizer", "TokenizerError": "tokenizer",
    "generate": "sampling", "stream": "sampling", "beam_search": "beam", "BeamSearchResult": "beam",
    "next_token_distribution": "sampling", "NextTokenDistribution": "sampling",
    "trace_generation": "sampling", "GenerationStep": "sampling",
    "Beam": "beam", "BeamStep": "beam", "Candidate": "beam",
    "apply_temperature": "sampling", "top_k_filter": "sampling", "top_p_filter": "sampling",
    "apply_repetition_penalty": "sampling",
    "Trainer": "train", "TrainConfig": "train", "TrainingDiverged": "train", "lr_at": "train",
    "save_checkpoint": "checkpoint", "load_checkpoint": "checkpoint", "CheckpointError": "checkpoint",
    "load_model": "checkpoint", "export_weights": "checkpoint",
    "pick_device": "runtime", "is_fast": "runtime", "seed_everything": "runtime",
}
_SUBMODULES = {"model", "tokenizer", "data", "sampling", "beam", "train", "checkpoint", "pretrained", "runtime", "viz",
               "gguf", "chat", "sft", "sft_measure"}

__all__ = sorted(_EXPORTS) + sorted(_SUBMODULES)


def __getattr__(name):
    if name in _SUBMODULES:
        return import_module(f".{name}", __name__)
    if name in _EXPORTS:
        value = getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value  # later look-ups skip this function
        return value
    raise AttributeError(f"module 'minigpt' has no attribute {name!r}")


def __dir__():
    return __all__
