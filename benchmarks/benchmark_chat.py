"""Speed and memory of the real chat model (SmolLM2-135M-Instruct, GGUF) in minigpt's own code,
against ``transformers`` loading the same file, printed as figures and ratios.

    python benchmarks/benchmark_chat.py               # about 5 minutes on 2 CPU cores
    python benchmarks/benchmark_chat.py --threads 2 --new-tokens 64 --rounds 3

Same weights (the GGUF dequantised to float32 by each), same threads, greedy, best of --rounds:

- generate:  tokens/s for --new-tokens new tokens after a short chat prompt, with the KV cache:
             ``mg.generate`` / ``transformers``' ``generate`` (and the tokens must be identical)
- first token: seconds from a 200-token prompt to the first new token (the prefill): ours through
             the model call the chat makes (logits for the last position only) and through
             ``mg.generate``; transformers' ``generate``
- turn 3:    a three-turn ``mg.chat.Chat``: the third turn's time with the KV cache kept across
             turns / recomputing the whole conversation
- memory:    peak resident memory (max RSS) of the process after loading and running our model,
             measured before transformers' copy is loaded
Rounds interleave ours and transformers, so both see the same load on a shared machine.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time

import torch

_SHARED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data")
if "MINIGPT_DATA_DIR" not in os.environ and os.path.isdir(_SHARED):
    os.environ["MINIGPT_DATA_DIR"] = os.path.abspath(_SHARED)

import minigpt as mg  # noqa: E402
from minigpt.chat import Chat  # noqa: E402

NAME = "smollm2-135m-instruct"
QUESTION = "<|im_start|>user\nExplain in a few sentences why the sky is blue.<|im_end|>\n<|im_start|>assistant\n"
TURNS = ["What is the tallest mountain in the world?", "How high is it?", "Who climbed it first?"]


def best_time(fn, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=2, help="torch threads for both (default: %(default)s)")
    p.add_argument("--new-tokens", type=int, default=64, help="tokens to generate (default: %(default)s)")
    p.add_argument("--rounds", type=int, default=3, help="best of this many runs (default: %(default)s)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    N = args.new_tokens
    print(f"torch {torch.__version__}, {args.threads} threads, {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.1f}, greedy, best of {args.rounds}")

    t = time.perf_counter()
    model, tok = mg.pretrained.load(NAME, download=False)
    print(f"ours: loaded in {time.perf_counter() - t:.1f} s")
    chat = Chat(model, tok, temperature=0, max_new_tokens=24)
    for question in TURNS:
        reply = chat.ask(question)
    rss = peak_rss_mb()  # before transformers' copy exists

    from transformers import AutoModelForCausalLM
    path = mg.pretrained.gguf_path(NAME, download=False)
    t = time.perf_counter()
    hf = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32).eval()
    print(f"transformers: loaded in {time.perf_counter() - t:.1f} s")

    prompt = tok.encode(QUESTION, allowed_special="all")
    long_prompt = tok.encode("The history of science. " * 50)[:200]

    def hf_generate(ids, n):
        with torch.inference_mode():
            return hf.generate(torch.tensor([ids]), max_new_tokens=n, min_new_tokens=n, do_sample=False,
                               pad_token_id=2)[0, len(ids):].tolist()

    def first_token():  # the call the chat makes: logits for the last position only
        with torch.inference_mode():
            return int(model(torch.tensor([long_prompt]), use_cache=True, last_only=True).logits[0, -1].argmax())

    def turn_3(keep_cache: bool) -> float:
        chat = Chat(model, tok, temperature=0, max_new_tokens=24, keep_cache=keep_cache)
        for question in TURNS[:2]:
            chat.ask(question)
        t = time.perf_counter()
        chat.ask(TURNS[2])
        return time.perf_counter() - t

    ours_ids = [s.token_id for s in mg.trace_generation(model, tok, prompt, max_new_tokens=N, temperature=0)]
    hf_ids = hf_generate(prompt, N)
    # Interleaved rounds, so that both sides see the same load on a shared machine; best of each.
    times = {k: [] for k in ("ours_gen", "hf_gen", "ours_ttft", "ours_ttft_generate", "hf_ttft", "kept", "recomputed")}
    for _ in range(args.rounds):
        times["ours_gen"].append(best_time(lambda: mg.generate(model, tok, prompt, max_new_tokens=N, temperature=0), 1))
        times["hf_gen"].append(best_time(lambda: hf_generate(prompt, N), 1))
        times["ours_ttft"].append(best_time(first_token, 1))
        times["ours_ttft_generate"].append(
            best_time(lambda: mg.generate(model, tok, long_prompt, max_new_tokens=1, temperature=0), 1))
        times["hf_ttft"].append(best_time(lambda: hf_generate(long_prompt, 1), 1))
        times["kept"].append(turn_3(True))
        times["recomputed"].append(turn_3(False))
    best = {k: min(v) for k, v in times.items()}
    ours_gen, hf_gen, ours_ttft, hf_ttft = best["ours_gen"], best["hf_gen"], best["ours_ttft"], best["hf_ttft"]
    ours_ttft_generate, kept, recomputed = best["ours_ttft_generate"], best["kept"], best["recomputed"]

    print()
    print(f"generate {N} tokens:   ours {N / ours_gen:6.1f} tok/s   transformers {N / hf_gen:6.1f} tok/s   "
          f"ratio {hf_gen / ours_gen:.2f}x   same tokens: {ours_ids == hf_ids}")
    print(f"first token, 200-token prompt:   ours {ours_ttft * 1e3:6.0f} ms (mg.generate {ours_ttft_generate * 1e3:.0f} ms)"
          f"   transformers {hf_ttft * 1e3:6.0f} ms   ratio {hf_ttft / ours_ttft:.2f}x")
    print(f"turn 3 of a chat ({len(reply.prompt)} prompt tokens, {reply.reused_tokens} from the kept cache):   "
          f"kept cache {kept:.2f} s   recomputed {recomputed:.2f} s   ratio {recomputed / kept:.2f}x")
    print(f"peak memory (max RSS) with our model loaded and chatting: {rss:.0f} MB")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
