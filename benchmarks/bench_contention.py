"""Decode speed on a busy machine: thread counts and OpenMP wait policies, quiet and contended.

Each configuration runs in a fresh process (OpenMP reads its environment when the library loads):
greedy single-stream decode quiet, then while two busy processes started by the benchmark compete for
the cores. Configurations: llama.cpp's defaults (threads = cores, OpenMP's default spinning), fewer
threads, OpenMP's passive wait and short spin counts, qwenkit's policy (short spin, threads pinned one
per core) at 2 fixed threads, and qwenkit's defaults as they are when loaded (with the thread tuner).
Every configuration runs in ``--repeats`` fresh processes, round after round: where the scheduler puts
the threads differs between processes. Target for qwenkit's defaults: contended >= 50 % of quiet, and
never below 1 thread contended, also in its worst process.

    .venv/bin/python benchmarks/bench_contention.py [--tokens 32] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import time
from typing import Any

from _common import DEFAULT_MODEL, machine, write_result

OMP_VARS = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")
# name -> (threads, environment); None threads: qwenkit's default. "qwenkit" applies qwenkit's policy.
CONFIGS: dict[str, tuple[int | None, dict[str, str]]] = {
    "llama.cpp default (2 threads, OpenMP spin)": (2, {}),
    "1 thread": (1, {}),
    "2 threads, OMP_WAIT_POLICY=passive": (2, {"OMP_WAIT_POLICY": "passive"}),
    "2 threads, GOMP_SPINCOUNT=10000": (2, {"GOMP_SPINCOUNT": "10000"}),
    "2 threads, GOMP_SPINCOUNT=1000": (2, {"GOMP_SPINCOUNT": "1000"}),
    "2 threads, qwenkit policy (pinned, no tuner)": (2, {"QWENKIT_BENCH_QWENKIT": "1"}),
    "qwenkit default": (None, {"QWENKIT_BENCH_QWENKIT": "1"}),
}


def burn() -> None:
    x = 0
    while True:
        x += 1


def child(threads: int | None, tokens: int) -> dict[str, Any]:
    """Runs inside the measured process: quiet rate, then contended rate (ours or raw llama.cpp)."""
    from qwenkit.engine.llamacpp import LlamaCppBackend
    from qwenkit.engine.types import BackendOptions, SamplingParams

    backend = LlamaCppBackend.load(DEFAULT_MODEL, BackendOptions(context=512, parallel=1, threads=threads))
    prompt = backend.tokenizer.encode_text("Count from one to one hundred in words: one, two, three,")
    params = SamplingParams(temperature=0.0, max_tokens=tokens, ignore_eos=True)

    def rate() -> float:
        handle = backend.submit(prompt, params)
        list(handle)
        return handle.timings.decode_tokens_per_second

    rate()
    quiet = [rate(), rate()]
    burners = [multiprocessing.Process(target=burn, daemon=True) for _ in range(2)]
    for b in burners:
        b.start()
    time.sleep(1.0)
    try:
        busy = [rate(), rate()]
    finally:
        for b in burners:
            b.terminate()
    backend.close()
    environment = {k: os.environ.get(k) for k in OMP_VARS}
    return {"quiet_tok_s": quiet, "contended_tok_s": busy, "environment": environment}


def run_config(name: str, threads: int | None, env: dict[str, str], tokens: int) -> dict[str, Any]:
    """One fresh process of one configuration: its best quiet and best contended rate."""
    base = {k: v for k, v in os.environ.items() if k not in OMP_VARS}
    qwenkit_policy = "QWENKIT_BENCH_QWENKIT" in env
    if not qwenkit_policy:
        base["QWENKIT_OMP_POLICY"] = "off"  # measure llama.cpp as configured here, not qwenkit's policy
    cmd = [sys.executable, __file__, "--child", "--tokens", str(tokens)]
    if threads is not None:
        cmd += ["--threads", str(threads)]
    out = subprocess.run(cmd, env={**base, **env}, capture_output=True, text=True, check=True)
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    quiet, busy = max(result["quiet_tok_s"]), max(result["contended_tok_s"])
    result.update(quiet=quiet, contended=busy, contended_share=busy / quiet)
    print(f"{name:45s} quiet {quiet:5.1f} tok/s, contended {busy:5.1f} tok/s ({100 * busy / quiet:.0f}%)")
    return result


def summarize(threads: int | None, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over the fresh processes of one configuration, and its worst contended run: placement
    on a busy machine is chance per process, so one lucky process proves nothing."""
    quiet = statistics.median(r["quiet"] for r in runs)
    busy = statistics.median(r["contended"] for r in runs)
    worst = min(r["contended"] for r in runs)
    return {
        "threads": threads, "runs": runs, "quiet": quiet, "contended": busy, "contended_worst": worst,
        "contended_share": busy / quiet,
    }  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3, help="fresh processes per configuration")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--threads", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.threads, args.tokens)))
        return
    info = machine()
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in CONFIGS}
    for _ in range(args.repeats):  # round after round, so that a slow minute touches every configuration
        for name, (threads, env) in CONFIGS.items():
            runs[name].append(run_config(name, threads, env, args.tokens))
    results = {name: summarize(CONFIGS[name][0], r) for name, r in runs.items()}
    for name, r in results.items():
        print(
            f"{name:45s} median quiet {r['quiet']:5.1f}, contended {r['contended']:5.1f} "
            f"({100 * r['contended_share']:.0f}%), worst contended {r['contended_worst']:5.1f}"
        )
    ours = results["qwenkit default"]
    one = results["1 thread"]
    payload = {
        "machine": info,
        "config": dict(tokens=args.tokens, competitors=2, model=str(DEFAULT_MODEL), repeats=args.repeats),
        "results": results,
        "qwenkit_contended_share_of_quiet": ours["contended_share"],
        "qwenkit_contended_vs_one_thread": ours["contended"] / one["contended"],
        "qwenkit_worst_contended_vs_one_thread": ours["contended_worst"] / one["contended"],
        "targets": {"contended_share_of_quiet": 0.5, "contended_vs_one_thread": 1.0},
    }
    print(f"-> {write_result('contention', payload)}")


if __name__ == "__main__":
    main()
