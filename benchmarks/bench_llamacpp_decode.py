"""Single-stream greedy decode: LlamaCppBackend against a raw llama_decode loop on the same GGUF.

Target: ours >= 0.95x the reference (same threads, same context). Runs interleave ours and the
reference and repeat, so that load from other processes hits both alike; medians are reported.

    .venv/bin/python benchmarks/bench_llamacpp_decode.py [--threads 2] [--tokens 128] [--repeats 3]
"""

from __future__ import annotations

import argparse

from _common import DEFAULT_MODEL, RawLlama, filler_text, machine, median, write_result

from qwenkit.engine.llamacpp import LlamaCppBackend
from qwenkit.engine.types import BackendOptions, SamplingParams


def ours_rate(backend: LlamaCppBackend, prompt: list[int], n_tokens: int) -> float:
    params = SamplingParams(temperature=0.0, max_tokens=n_tokens, ignore_eos=True)
    handle = backend.submit(prompt, params)
    for _ in handle:
        pass
    return handle.timings.decode_tokens_per_second


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(DEFAULT_MODEL))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--context", type=int, default=2048)
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    info = machine()
    options = BackendOptions(context=args.context, parallel=1, threads=args.threads)
    backend = LlamaCppBackend.load(args.model, options)
    raw = RawLlama.load(args.model, n_ctx=args.context, n_seq=1, threads=args.threads)
    prompt = backend.tokenizer.encode_text("Continue this list: " + filler_text(40))
    ours_rate(backend, prompt, 8)  # warm both up: page in the weights, build the graphs
    raw.decode_rate([prompt], 8)
    ours, ref = [], []
    for _ in range(args.repeats):
        ref.append(raw.decode_rate([prompt], args.tokens))
        ours.append(ours_rate(backend, prompt, args.tokens))
    backend.close()
    raw.close()
    ratio = median(ours) / median(ref)
    result = {
        "machine": info,
        "config": {"threads": args.threads, "context": args.context, "tokens": args.tokens,
                   "repeats": args.repeats, "prompt_tokens": len(prompt), "model": args.model},
        "ours_tok_s": ours,
        "reference_tok_s": ref,
        "ours_median_tok_s": median(ours),
        "reference_median_tok_s": median(ref),
        "ratio": ratio,
        "target_ratio": 0.95,
        "meets_target": ratio >= 0.95,
    }
    path = write_result("llamacpp_decode", result)
    print(f"single stream: ours {median(ours):.1f} tok/s, reference {median(ref):.1f} tok/s, "
          f"ratio {ratio:.3f} -> {path}")


if __name__ == "__main__":
    main()
