"""Greedy decode on CPU: TransformersBackend (GGUF dequantized to fp32) next to LlamaCppBackend.

Both load the same Q4_K_M GGUF. transformers unpacks it to float32 and runs torch kernels; llama.cpp
computes on the quantized blocks, so it is expected to be several times faster on a CPU: this file
measures by how much, and how far the two agree on greedy text for the same prompt. Runs are
interleaved and repeated so that load from other processes hits both alike; medians are reported.

    .venv/bin/python benchmarks/bench_transformers_cpu.py [--threads 2] [--tokens 64] [--repeats 3]
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from _common import DEFAULT_MODEL, filler_text, machine, median, write_result

from qwenkit.engine.llamacpp import LlamaCppBackend
from qwenkit.engine.transformers import TransformersBackend
from qwenkit.engine.types import BackendOptions, SamplingParams


def decode_rate(backend: Any, prompts: list[list[int]], n_tokens: int) -> tuple[float, list[list[int]]]:
    """Aggregate decode tokens/second over the streams (first tokens come from prefill: not timed)."""
    params = SamplingParams(temperature=0.0, max_tokens=n_tokens, ignore_eos=True)
    handles = [backend.submit(p, params) for p in prompts]
    outputs = [[e.token_id for e in h] for h in handles]
    start = max(h.timings.first_token for h in handles)
    end = max(h.timings.finished for h in handles)
    return len(prompts) * (n_tokens - 1) / (end - start), outputs


def raw_rate(model: Any, prompt: list[int], n_tokens: int) -> float:
    """The same greedy decode as a bare transformers loop (no engine thread, no sampler chain)."""
    import torch
    from transformers import DynamicCache

    cache = DynamicCache()
    ids = torch.tensor([prompt])
    with torch.inference_mode():
        logits = model(input_ids=ids, cache=cache, use_cache=True, logits_to_keep=1).logits
        start = time.perf_counter()
        for _ in range(n_tokens - 1):
            ids = logits[:, -1].argmax(-1, keepdim=True)
            logits = model(input_ids=ids, cache=cache, use_cache=True).logits
    return (n_tokens - 1) / (time.perf_counter() - start)


def agreement(a: list[int], b: list[int]) -> int:
    return next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(DEFAULT_MODEL))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--context", type=int, default=1024)
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--streams", type=int, nargs="+", default=[1, 4])
    args = ap.parse_args()

    info = machine()
    streams = max(args.streams)
    options = BackendOptions(context=args.context, parallel=streams, threads=args.threads, device="cpu")
    started = time.perf_counter()
    hf = TransformersBackend.load(args.model, options)
    hf_load_s = time.perf_counter() - started
    started = time.perf_counter()
    llama = LlamaCppBackend.load(args.model, options)
    llama_load_s = time.perf_counter() - started
    encode = hf.tokenizer.encode_text
    prompts = [encode(f"{i}. Continue this list: " + filler_text(30, seed=i))[:40] for i in range(streams)]
    decode_rate(hf, prompts[:1], 4)  # warm-up
    decode_rate(llama, prompts[:1], 4)
    per_n: dict[str, dict[str, Any]] = {}
    agree: list[int] = []
    for n in args.streams:
        hf_rates, llama_rates, raw_rates = [], [], []
        for _ in range(args.repeats):
            rate, hf_out = decode_rate(hf, prompts[:n], args.tokens)
            hf_rates.append(rate)
            rate, llama_out = decode_rate(llama, prompts[:n], args.tokens)
            llama_rates.append(rate)
            if n == 1:
                raw_rates.append(raw_rate(hf.model, prompts[0], args.tokens))
        agree += [agreement(a, b) for a, b in zip(hf_out, llama_out, strict=True)]
        per_n[str(n)] = {
            "transformers_tok_s": hf_rates,
            "llamacpp_tok_s": llama_rates,
            "transformers_median_tok_s": median(hf_rates),
            "llamacpp_median_tok_s": median(llama_rates),
            "llamacpp_over_transformers": median(llama_rates) / median(hf_rates),
        }
        if raw_rates:
            per_n[str(n)]["raw_transformers_loop_tok_s"] = raw_rates
            per_n[str(n)]["transformers_over_raw_loop"] = median(hf_rates) / median(raw_rates)
        hf_tok_s, llama_tok_s = median(hf_rates), median(llama_rates)
        print(f"{n} stream(s): transformers {hf_tok_s:.2f} tok/s, llama.cpp {llama_tok_s:.2f} tok/s")
    hf.close()
    llama.close()
    path = write_result(
        "transformers_cpu",
        {
            "machine": info,
            "config": {
                "threads": args.threads,
                "context": args.context,
                "tokens": args.tokens,
                "repeats": args.repeats,
                "prompt_tokens": len(prompts[0]),
                "model": args.model,
                "transformers_dtype": "float32 (GGUF dequantized at load)",
            },
            "load_seconds": {"transformers": hf_load_s, "llamacpp": llama_load_s},
            "streams": per_n,
            "greedy_agreement": {
                "leading_tokens_equal_per_stream": agree,
                "of_tokens": args.tokens,
            },
        },
    )
    print(f"greedy agreement (leading equal tokens of {args.tokens}): {agree}")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
