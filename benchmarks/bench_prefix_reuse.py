"""Prefix reuse: time to first token of a request whose ~1,500-token system prompt is already cached.

Four cases per repeat, each with a fresh system prompt so nothing is cached across repeats:
cold (nothing cached), the same prompt again (cached whole, its first token from the logits the slot
kept: no decode), warm (same system prompt, new question, the slot that cached it is free), and
copied (the slot holding the prefix is busy with another stream, so the prefix is copied).
Target: cold TTFT / warm TTFT >= 5.

Then conversations: the first turns of three conversations (each about its own document, all under
the chat template's default system prompt), then the second turn of each. While slots are free, each
conversation keeps its own slot, so every second turn finds its first one cached (before the placement
of ``engine/prefix.py`` evicted as little as it could, each new conversation overwrote the previous
one's slot because they share the system prompt). Target: every second turn reuses at least the whole
prompt of its first.

    .venv/bin/python benchmarks/bench_prefix_reuse.py [--threads 2] [--repeats 3]
"""

from __future__ import annotations

import argparse

from _common import DEFAULT_MODEL, filler_text, machine, median, write_result

from qwenkit.chat import encode_chat
from qwenkit.engine.llamacpp import LlamaCppBackend
from qwenkit.engine.types import BackendOptions, SamplingParams

FIRST = SamplingParams(temperature=0.0, max_tokens=1)
CONVERSATIONS = 3


def ttft(backend: LlamaCppBackend, prompt: list[int]) -> tuple[float, int]:
    handle = backend.submit(prompt, FIRST)
    for _ in handle:
        pass
    return handle.timings.time_to_first_token, handle.timings.cached_prompt_tokens


def conversations(model: str, threads: int, doc_words: int) -> dict[str, object]:
    """Second turns of interleaved conversations (see the module docstring)."""
    backend = LlamaCppBackend.load(model, BackendOptions(context=2048, parallel=4, threads=threads))
    ttft(backend, backend.tokenizer.encode_text("warm up"))
    first_turns = []
    for i in range(CONVERSATIONS):
        document = filler_text(doc_words, seed=200 + i)
        messages = [{"role": "user", "content": f"Document {i}: {document}\nSummarise it in one line."}]
        prompt = list(encode_chat(messages, backend.tokenizer).ids)
        handle = backend.submit(prompt, SamplingParams(temperature=0.0, max_tokens=24))
        answer = backend.tokenizer.decode([event.token_id for event in handle])
        first_turns.append((messages, answer, handle.timings.time_to_first_token, len(prompt)))
    rows = []
    for messages, answer, first_s, first_prompt in first_turns:
        follow_up = [*messages, {"role": "assistant", "content": answer},
                     {"role": "user", "content": "Which word comes first in it?"}]  # fmt: skip
        prompt = list(encode_chat(follow_up, backend.tokenizer).ids)
        second_s, cached = ttft(backend, prompt)
        rows.append({"first_turn_prompt_tokens": first_prompt, "first_turn_ttft_s": first_s,
                     "second_turn_prompt_tokens": len(prompt), "second_turn_ttft_s": second_s,
                     "second_turn_cached_tokens": cached})  # fmt: skip
        print(rows[-1])
    backend.close()
    return {
        "conversations": rows,
        "first_turn_ttft_median_s": median([r["first_turn_ttft_s"] for r in rows]),
        "second_turn_ttft_median_s": median([r["second_turn_ttft_s"] for r in rows]),
        "every_second_turn_reuses_its_first": all(
            r["second_turn_cached_tokens"] >= r["first_turn_prompt_tokens"] - 1 for r in rows
        ),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(DEFAULT_MODEL))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--system-words", type=int, default=1500)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--document-words", type=int, default=400, help="per conversation")
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
        repeat, repeat_cached = ttft(backend, chat(system, "Summarise the notes."))  # cached whole
        warm, warm_cached = ttft(backend, chat(system, "Which word appears most often?"))
        long_run = SamplingParams(max_tokens=400, ignore_eos=True)
        busy = backend.submit(chat(system, "Repeat the notes."), long_run)
        for _ in busy:  # wait until it runs in the slot that holds the prefix
            break
        copied, copied_cached = ttft(backend, chat(system, "Which word appears least often?"))
        busy.cancel()
        rows.append({"prompt_tokens": len(chat(system, "Summarise the notes.")), "cold_s": cold,
                     "repeat_s": repeat, "repeat_cached_tokens": repeat_cached,
                     "warm_s": warm, "warm_cached_tokens": warm_cached,
                     "copied_s": copied, "copied_cached_tokens": copied_cached})
        print(rows[-1])
    backend.close()
    interleaved = conversations(args.model, args.threads, args.document_words)
    cold_m = median([r["cold_s"] for r in rows])
    warm_m = median([r["warm_s"] for r in rows])
    copied_m = median([r["copied_s"] for r in rows])
    repeat_m = median([r["repeat_s"] for r in rows])
    result = {
        "machine": info,
        "config": {"threads": args.threads, "system_words": args.system_words, "repeats": args.repeats,
                   "model": args.model},
        "runs": rows,
        "cold_median_s": cold_m,
        "warm_median_s": warm_m,
        "copied_median_s": copied_m,
        "repeat_median_s": repeat_m,
        "speedup_warm": cold_m / warm_m,
        "speedup_copied": cold_m / copied_m,
        "target_speedup": 5.0,
        "meets_target": cold_m / warm_m >= 5.0 and bool(interleaved["every_second_turn_reuses_its_first"]),
        "interleaved_conversations": interleaved,
    }
    path = write_result("prefix_reuse", result)
    print(f"TTFT cold {cold_m:.3f}s, the same prompt again {1e3 * repeat_m:.2f} ms, "
          f"warm {warm_m:.3f}s ({cold_m / warm_m:.1f}x), "
          f"copied from a busy slot {copied_m:.3f}s ({cold_m / copied_m:.1f}x); second turns of "
          f"{CONVERSATIONS} interleaved conversations {interleaved['second_turn_ttft_median_s']:.3f}s "
          f"against {interleaved['first_turn_ttft_median_s']:.3f}s for their first -> {path}")


if __name__ == "__main__":
    main()
