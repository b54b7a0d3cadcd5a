"""Aggregate greedy decode throughput with N concurrent streams: ours against raw batched decode.

The reference runs one ``llama_decode`` per step over N sequences in a bare context configured like
ours (unified KV, ``context * 8`` cells, 8 sequences). Targets: ours >= 0.9x the reference at 4 and
8 streams, and 8 streams clearly faster in aggregate than 1.

    .venv/bin/python benchmarks/bench_llamacpp_batch.py [--threads 2] [--tokens 64] [--repeats 3]
"""

from __future__ import annotations

import argparse

from _common import DEFAULT_MODEL, RawLlama, filler_text, machine, median, write_result

from qwenkit.engine.llamacpp import LlamaCppBackend
from qwenkit.engine.types import BackendOptions, SamplingParams

PARALLEL = 8


def ours_rate(backend: LlamaCppBackend, prompts: list[list[int]], n_tokens: int) -> float:
    """Aggregate decode tokens/second while all N streams run (after the last first token)."""
    params = SamplingParams(temperature=0.0, max_tokens=n_tokens, ignore_eos=True)
    handles = [backend.submit(p, params) for p in prompts]
    for h in handles:
        for _ in h:
            pass
    start = max(h.timings.first_token for h in handles)
    end = max(h.timings.finished for h in handles)
    return len(prompts) * (n_tokens - 1) / (end - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(DEFAULT_MODEL))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--context", type=int, default=1024)
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--streams", type=int, nargs="+", default=[1, 4, 8])
    args = ap.parse_args()

    info = machine()
    options = BackendOptions(context=args.context, parallel=PARALLEL, threads=args.threads)
    backend = LlamaCppBackend.load(args.model, options)
    raw = RawLlama.load(args.model, n_ctx=args.context * PARALLEL, n_seq=PARALLEL, threads=args.threads)
    encode = backend.tokenizer.encode_text
    # Equal-length prompts that share no prefix, so prefix reuse plays no part here.
    prompts = [encode(f"{i}: " + filler_text(30, seed=i))[:32] for i in range(PARALLEL)]
    ours_rate(backend, prompts[:2], 4)
    raw.decode_rate(prompts[:2], 4)
    per_n: dict[str, dict[str, object]] = {}
    for n in args.streams:
        ours, ref = [], []
        for rep in range(args.repeats):
            # fresh prompts per repeat (a different first token), so no run reuses another's KV
            batch = [[1000 + rep * PARALLEL + i, *p[1:]] for i, p in enumerate(prompts[:n])]
            ref.append(raw.decode_rate(batch, args.tokens))
            ours.append(ours_rate(backend, batch, args.tokens))
        ratio = median(ours) / median(ref)
        per_n[str(n)] = {"ours_tok_s": ours, "reference_tok_s": ref, "ours_median_tok_s": median(ours),
                         "reference_median_tok_s": median(ref), "ratio": ratio}
        print(f"{n} streams: ours {median(ours):.1f} tok/s, reference {median(ref):.1f} tok/s, "
              f"ratio {ratio:.3f}")
    backend.close()
    raw.close()
    single = per_n.get("1", {}).get("ours_median_tok_s")
    eight = per_n.get("8", {}).get("ours_median_tok_s")
    result = {
        "machine": info,
        "config": {"threads": args.threads, "context_per_sequence": args.context, "parallel": PARALLEL,
                   "tokens": args.tokens, "repeats": args.repeats, "prompt_tokens": 32, "model": args.model},
        "streams": per_n,
        "target_ratio": 0.9,
        "meets_ratio_target": all(per_n[k]["ratio"] >= 0.9 for k in ("4", "8") if k in per_n),  # type: ignore[operator]
        "speedup_8_over_1": (eight / single) if single and eight else None,  # type: ignore[operator]
    }
    path = write_result("llamacpp_batch", result)
    print(f"-> {path}")


if __name__ == "__main__":
    main()
