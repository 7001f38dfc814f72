"""minigpt: a small, real GPT, built piece by piece in the course notebooks.

    import minigpt as mg
    text = mg.data.load_text("tinyshakespeare")
    tok = mg.CharTokenizer.from_text(text)
    model = mg.GPT(mg.GPTConfig(vocab_size=tok.vocab_size))
    print(mg.generate(model, tok, "ROMEO:", max_new_tokens=50, seed=0))

Plain imports, so that "go to definition" leads to the code. They cost little more than torch
itself, which every use of the package imports anyway; ``minigpt.viz`` loads matplotlib and
ipywidgets only when a picture is asked for.
"""

__version__ = "0.1.0"

from . import (beam, chat, checkpoint, data, gguf, model, pretrained, runtime, sampling, sft, sft_measure,  # noqa: E402
               tokenizer, train, viz)
from .beam import Beam, BeamSearchResult, BeamStep, Candidate, beam_search  # noqa: E402
from .checkpoint import CheckpointError, export_weights, load_checkpoint, load_model, save_checkpoint  # noqa: E402
from .model import GPT, GPTConfig, GPTOutput, causal_mask  # noqa: E402
from .runtime import is_fast, pick_device, seed_everything  # noqa: E402
from .sampling import (GenerationStep, NextTokenDistribution, apply_repetition_penalty,  # noqa: E402
                       apply_temperature, generate, next_token_distribution, stream, top_k_filter, top_p_filter,
                       trace_generation)
from .tokenizer import BPETokenizer, CharTokenizer, TokenizerError  # noqa: E402
from .train import Trainer, TrainConfig, TrainingDiverged, lr_at  # noqa: E402
from . import align  # noqa: E402  (after the modules it builds on)

__all__ = [
    "GPT", "GPTConfig", "GPTOutput", "causal_mask",
    "CharTokenizer", "BPETokenizer", "TokenizerError",
    "generate", "stream", "next_token_distribution", "NextTokenDistribution", "trace_generation", "GenerationStep",
    "apply_temperature", "top_k_filter", "top_p_filter", "apply_repetition_penalty",
    "beam_search", "BeamSearchResult", "Beam", "BeamStep", "Candidate",
    "Trainer", "TrainConfig", "TrainingDiverged", "lr_at",
    "save_checkpoint", "load_checkpoint", "CheckpointError", "load_model", "export_weights",
    "pick_device", "is_fast", "seed_everything",
    "model", "tokenizer", "data", "sampling", "beam", "train", "checkpoint", "pretrained", "runtime", "viz",
    "gguf", "chat", "sft", "sft_measure",
]
