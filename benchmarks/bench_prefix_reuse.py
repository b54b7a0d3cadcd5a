"""Prefix reuse: time to first token of a request whose ~1,500-token system prompt is already cached.

Three cases per repeat, each with a fresh system prompt so nothing is cached across repeats:
cold (nothing cached), warm (same system prompt, new question, the slot that cached it is free),
and copied (the slot holding the prefix is busy with another stream, so the prefix is copied).
Target: cold TTFT / warm TTFT >= 5.

    .venv/bin/python benchmarks/bench_prefix_reuse.py [--threads 2] [--repeats 3]
"""

from __future__ import annotations

import argparse

from _common import DEFAULT_MODEL, filler_text, machine, median, write_result

from qwenkit.chat import encode_chat
from qwenkit.engine.llamacpp import LlamaCppBackend
from qwenkit.engine.types import BackendOptions, SamplingParams

FIRST = SamplingParams(temperature=0.0, max_tokens=1)


def ttft(backend: LlamaCppBackend, prompt: list[int]) -> tuple[float, int]:
    handle = backend.submit(prompt, FIRST)
    for _ in handle:
        pass
    return handle.timings.time_to_first_token, handle.timings.cached_prompt_tokens


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(DEFAULT_MODEL))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--system-words", type=int, default=1500)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    info = machine()
    backend = LlamaCppBackend.load(args.model, BackendOptions(context=4096, parallel=2, threads=args.threads))

    def chat(system: str, question: str) -> list[int]:
        messages = [{"role": "system", "content": system}, {"role": "user", "content": question}]
        return list(encode_chat(messages, backend.tokenizer).ids)

    ttft(backend, backend.tokenizer.encode_text("warm up"))
    rows = []
    for rep in range(args.repeats):
        system = f"Session {rep}. Reference notes: " + filler_text(args.system_words, seed=100 + rep)
        cold, _ = ttft(backend, chat(system, "Summarise the notes."))
        warm, warm_cached = ttft(backend, chat(system, "Which word appears most often?"))
        long_run = SamplingParams(max_tokens=400, ignore_eos=True)
        busy = backend.submit(chat(system, "Repeat the notes."), long_run)
        for _ in busy:  # wait until it runs in the slot that holds the prefix
            break
        copied, copied_cached = ttft(backend, chat(system, "Which word appears least often?"))
        busy.cancel()
        rows.append({"prompt_tokens": len(chat(system, "Summarise the notes.")), "cold_s": cold,
                     "warm_s": warm, "warm_cached_tokens": warm_cached,
                     "copied_s": copied, "copied_cached_tokens": copied_cached})
        print(rows[-1])
    backend.close()
    cold_m = median([r["cold_s"] for r in rows])
    warm_m = median([r["warm_s"] for r in rows])
    copied_m = median([r["copied_s"] for r in rows])
    result = {
        "machine": info,
        "config": {"threads": args.threads, "system_words": args.system_words, "repeats": args.repeats,
                   "model": args.model},
        "runs": rows,
        "cold_median_s": cold_m,
        "warm_median_s": warm_m,
        "copied_median_s": copied_m,
        "speedup_warm": cold_m / warm_m,
        "speedup_copied": cold_m / copied_m,
        "target_speedup": 5.0,
        "meets_target": cold_m / warm_m >= 5.0,
    }
    path = write_result("prefix_reuse", result)
    print(f"TTFT cold {cold_m:.3f}s, warm {warm_m:.3f}s ({cold_m / warm_m:.1f}x), "
          f"copied from a busy slot {copied_m:.3f}s ({cold_m / copied_m:.1f}x) -> {path}")


if __name__ == "__main__":
    main()
