"""The llama.cpp engine in-process against llama.cpp itself, and the choice of KV layout.

For 1, 4, 8 and 16 concurrent greedy streams (short prompts), and for 8 streams over 2,000-token
prompts, ours (``LlamaCppBackend`` loaded as ``qwenkit serve`` would: ``--context`` per sequence,
``--parallel`` slots) against a raw ``llama_decode`` loop with the same build, threads and prompts in a
context sized for exactly that work. Both KV layouts are measured for ours and for the reference (one
unified cell pool, or a stream per sequence); the default is chosen from these numbers. Also: time to
first token of the first request after load against later ones (the load warms the kernels up).

Ours and the reference alternate within each repeat, so background load hits both alike, each in a
fresh process (llama.cpp's OpenMP workers belong to the decoding thread; two pools slow each other).

    .venv/bin/python benchmarks/bench_engine_speed.py [--threads 2] [--repeats 2]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as _dt
import json
import subprocess
import sys
import time
from typing import Any

from _common import DEFAULT_MODEL, RESULTS, RawLlama, filler_text, machine, median, write_result

from qwenkit.engine.llamacpp import LlamaCppBackend
from qwenkit.engine.types import BackendOptions, SamplingParams

SHORT = {"streams": (1, 4, 8, 16), "prompt": 32, "tokens": 64}
LONG = {"streams": 8, "prompt": 2000, "tokens": 32, "extra": 64}
LAYOUTS = {"unified": True, "per-sequence": False}


def ours_rate(backend: LlamaCppBackend, prompts: list[list[int]], n_tokens: int, extra: int = 0) -> float:
    """Aggregate decode tokens/second while every stream decodes, as the reference counts: only tokens
    that arrive after the last first token and no later than the first stream's last one. Long prompts
    are prefilled a batch at a time, so early streams start decoding while later ones still prefill;
    ``extra`` more tokens per stream keep all of them decoding together long enough to measure. One
    asyncio loop reads every stream, as ``qwenkit serve`` does: a thread per stream would take the
    cores from llama.cpp's workers at each token."""
    params = SamplingParams(temperature=0.0, max_tokens=n_tokens + extra, ignore_eos=True)
    handles = [backend.submit(p, params) for p in prompts]

    async def arrivals(handle: Any) -> list[float]:
        return [time.perf_counter() async for _ in handle]

    async def read_all() -> list[list[float]]:
        return list(await asyncio.gather(*(arrivals(h) for h in handles)))

    times = asyncio.run(read_all())
    start = max(t[0] for t in times)
    if not extra:  # every stream started in one step and ends in one: count to the very last token
        return sum(1 for t in times for x in t if x > start) / (max(t[-1] for t in times) - start)
    end = min(t[-1] for t in times)
    counted = sum(1 for t in times for x in t if start < x <= end)
    if counted < len(prompts) * (n_tokens - 1):
        raise SystemExit(f"only {counted} tokens decoded with every stream running; raise the extra tokens")
    return counted / (end - start)


def prompts_for(tokenize: Any, n: int, length: int, salt: int) -> list[list[int]]:
    """``n`` prompts of exactly ``length`` tokens sharing no prefix (a fresh first token per salt)."""
    out = []
    for i in range(n):
        ids = tokenize(filler_text(length + 16, seed=salt * 100 + i))[: length - 1]
        out.append([1000 + salt * 64 + i, *ids])
    return out


def one_rate(kind: str, model: str, threads: int, unified: bool, n: int, prompt: int, tokens: int,
             context: int, salt: int, extra: int = 0) -> float:  # fmt: skip
    """One measurement, ours or the reference, in this process (which ``measure`` makes fresh)."""
    options = BackendOptions(context=context, parallel=max(4, n), threads=threads, kv_unified=unified)
    backend = LlamaCppBackend.load(model, options)
    batch = prompts_for(backend.tokenizer.encode_text, n, prompt, salt)
    if kind == "ours":
        try:
            return ours_rate(backend, batch, tokens, extra)
        finally:
            backend.close()
    backend.close()
    raw = RawLlama.load(model, n_ctx=n * (prompt + tokens + 16), n_seq=n, threads=threads, unified=unified)
    try:
        return raw.decode_rate(batch, tokens)
    finally:
        raw.close()


def measure(model: str, threads: int, unified: bool, n: int, prompt: int, tokens: int, repeats: int,
            context: int, extra: int = 0) -> dict[str, Any]:  # fmt: skip
    """Ours and the reference alternate, each in a fresh process: llama.cpp's OpenMP workers belong to
    the thread that decodes (ours: the engine thread; the reference: the main thread), and a process
    holding two such pools runs both slower (measured: 4 streams at 51 instead of 69 tok/s)."""
    ours, ref = [], []
    for rep in range(repeats):
        for kind, out in (("ours", ours), ("reference", ref)):
            spec = [kind, model, threads, unified, n, prompt, tokens, context, rep, extra]
            done = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)], check=True,
                                  capture_output=True, text=True)  # fmt: skip
            out.append(float(done.stdout.strip().splitlines()[-1]))
    return {"ours_tok_s": ours, "reference_tok_s": ref, "ours_median": median(ours),
            "reference_median": median(ref)}  # fmt: skip


def first_request_ttft(model: str, threads: int, repeats: int) -> dict[str, Any]:
    """Time to first token of the first request after load, and of later ones with new prompts."""
    backend = LlamaCppBackend.load(model, BackendOptions(context=2048, parallel=4, threads=threads))
    params = SamplingParams(temperature=0.0, max_tokens=2, ignore_eos=True)
    ttfts = []
    try:
        for rep in range(repeats + 1):
            prompt = prompts_for(backend.tokenizer.encode_text, 1, 256, 50 + rep)[0]
            handle = backend.submit(prompt, params)
            list(handle)
            ttfts.append(handle.timings.time_to_first_token)
    finally:
        backend.close()
    later = median(ttfts[1:])
    return {"first_s": ttfts[0], "later_s": ttfts[1:], "later_median_s": later, "ratio": ttfts[0] / later}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(DEFAULT_MODEL))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--context", type=int, default=4096, help="ours: context per sequence (serve's default)")
    ap.add_argument("--long-only", action="store_true",
                    help="re-measure only the 8 x 2000 case into the existing results file")  # fmt: skip
    ap.add_argument("--redo", help="re-measure short cases into the existing results, e.g. per-sequence:1,4")
    ap.add_argument("--ttft-only", action="store_true",
                    help="re-measure only the first request's TTFT into the existing results")  # fmt: skip
    ap.add_argument("--loads", type=int, default=3, help="fresh loads for the first-request TTFT")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(one_rate(*json.loads(args.child)))
        return
    if args.long_only:
        update_long(args)
        return
    if args.redo:
        redo_short(args)
        return
    if args.ttft_only:
        update_ttft(args)
        return
    info = machine()
    results: dict[str, Any] = {"short": {}, "long": {}}
    for name, unified in LAYOUTS.items():
        for n in SHORT["streams"]:
            shape = (n, SHORT["prompt"], SHORT["tokens"])
            got = measure(args.model, args.threads, unified, *shape, args.repeats, args.context)
            results["short"].setdefault(str(n), {})[name] = got
            ours, raw = got["ours_median"], got["reference_median"]
            print(f"{name:12s} {n:2d} streams: ours {ours:.1f}, raw {raw:.1f}")
        results["long"][name] = measure_long(args, name, unified)
    summary = summarize(results)
    ttft = ttft_over_loads(args)
    payload = {
        "machine": info,
        "config": {"threads": args.threads, "repeats": args.repeats, "context_per_sequence": args.context,
                   "short": SHORT, "long": LONG, "model": args.model},
        "results": results,
        "summary": summary,
        "first_request_ttft": ttft,
        "targets": {"decode_ratio": 0.95, "first_ttft_ratio": 1.10},
    }
    print(f"-> {write_result('engine_speed', payload)}")


def measure_long(args: argparse.Namespace, name: str, unified: bool) -> dict[str, Any]:
    need = LONG["prompt"] + LONG["tokens"] + LONG["extra"] + 16
    got = measure(args.model, args.threads, unified, LONG["streams"], LONG["prompt"], LONG["tokens"],
                  args.repeats, max(args.context, need), LONG["extra"])  # fmt: skip
    print(f"{name:12s} 8 x 2000: ours {got['ours_median']:.1f}, raw {got['reference_median']:.1f}")
    return got


def existing_results() -> dict[str, Any]:
    """The results file a partial re-measurement updates (its "benchmark" key is written anew)."""
    payload = json.loads((RESULTS / "engine_speed.json").read_text())
    payload.pop("benchmark", None)
    return dict(payload)


def ttft_over_loads(args: argparse.Namespace) -> dict[str, Any]:
    """First-request TTFT over ``--loads`` fresh loads: single loads vary by up to 20 % here."""
    loads = [first_request_ttft(args.model, args.threads, repeats=4) for _ in range(args.loads)]
    first = median([t["first_s"] for t in loads])
    later = median([x for t in loads for x in t["later_s"]])
    print(f"first request TTFT {first * 1000:.0f} ms, later {later * 1000:.0f} ms ({args.loads} loads)")
    when = _dt.datetime.now(_dt.timezone.utc).isoformat()
    return {"first_s": first, "later_median_s": later, "ratio": first / later, "loads": loads, "when": when}


def update_long(args: argparse.Namespace) -> None:
    payload = existing_results()
    payload["results"]["long"] = {name: measure_long(args, name, u) for name, u in LAYOUTS.items()}
    payload["summary"] = summarize(payload["results"])
    payload["long_measured"] = {"machine": machine(), "when": _dt.datetime.now(_dt.timezone.utc).isoformat()}
    print(f"-> {write_result('engine_speed', payload)}")


def update_ttft(args: argparse.Namespace) -> None:
    payload = existing_results()
    payload["first_request_ttft"] = ttft_over_loads(args)
    print(f"-> {write_result('engine_speed', payload)}")


def redo_short(args: argparse.Namespace) -> None:
    """Re-measure some short cases (a layout and stream counts) of the existing results file, for a
    case that other work on the machine disturbed; the file records what was redone and when."""
    layout, _, counts = args.redo.partition(":")
    payload = existing_results()
    for n in (int(c) for c in counts.split(",")):
        shape = (n, SHORT["prompt"], SHORT["tokens"])
        got = measure(args.model, args.threads, LAYOUTS[layout], *shape, args.repeats, args.context)
        payload["results"]["short"][str(n)][layout] = got
        ours, raw = got["ours_median"], got["reference_median"]
        print(f"{layout:12s} {n:2d} streams: ours {ours:.1f}, raw {raw:.1f}")
    payload["summary"] = summarize(payload["results"])
    redone = payload.setdefault("redone", [])
    redone.append({"cases": args.redo, "when": _dt.datetime.now(_dt.timezone.utc).isoformat()})
    print(f"-> {write_result('engine_speed', payload)}")


def summarize(results: dict[str, Any]) -> dict[str, Any]:
    """Per case: the best reference layout, and each of our layouts as a ratio to it."""
    cases = {f"{n} streams": layouts for n, layouts in results["short"].items()}
    cases["8 streams x 2000"] = results["long"]
    out = {}
    for case, layouts in cases.items():
        best_ref = max(v["reference_median"] for v in layouts.values())
        out[case] = {name: v["ours_median"] / best_ref for name, v in layouts.items()}
        out[case]["reference_best_tok_s"] = best_ref
    return out


if __name__ == "__main__":
    main()
