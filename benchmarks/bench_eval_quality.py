"""Quality next to speed on the real models: the ``qwenkit eval`` runs behind the README's table.

Each stage is one ``qwenkit eval`` command (printed before it runs), writing its per-item results
(``*.jsonl``, resumable) and its report (``*.json``) under ``benchmarks/results/eval/``; ``compare``
stages write the table (``*.txt``) and the PNG. Run stages by name, in order:

    python benchmarks/bench_eval_quality.py humaneval-0.5b humaneval-1.5b humaneval-compare

Models: ``QWENKIT_REAL_MODEL`` (0.5B Q4_K_M), ``QWENKIT_REAL_MODEL_1_5B`` and
``QWENKIT_REAL_MODEL_Q8`` (the 0.5B's Q8_0, made by ``qwenkit quantize``) name the files.

The first HumanEval runs sent the instruction alone (``--no-prefill``); the ``-prefill`` stages send
EvalPlus's pre-filled answer opening (``qwenkit eval``'s default). ``humaneval-0.5b-url`` starts
``qwenkit serve`` on the same file and settings (one sequence, the same context and threads) and runs
the same evaluation over ``--url``; ``humaneval-url-agreement`` compares its verdicts item by item
with the in-process ``humaneval-0.5b-c1`` run (greedy, one answer at a time on both sides, so the
same batch shapes and the same tokens; at 4 answers at once the batch shapes, and so a few tokens,
depend on timing). Both sides use one thread, so the two stages can run side by side on two cores:

    python benchmarks/bench_eval_quality.py humaneval-0.5b-c1 &
    python benchmarks/bench_eval_quality.py humaneval-0.5b-url; wait
    python benchmarks/bench_eval_quality.py humaneval-url-agreement
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from qwenkit.eval.results import read_results

RESULTS = Path(__file__).parent / "results" / "eval"
CACHE = Path.home() / ".cache" / "qwenkit-test-models"
MODELS = {
    "0.5b": os.environ.get("QWENKIT_REAL_MODEL", str(CACHE / "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf")),
    "1.5b": os.environ.get("QWENKIT_REAL_MODEL_1_5B", str(CACHE / "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf")),
    "0.5b-q8": os.environ.get("QWENKIT_REAL_MODEL_Q8", str(CACHE / "qwen2.5-coder-0.5b-instruct-q8_0.gguf")),
}
GSM8K = os.environ.get("QWENKIT_GSM8K", str(Path(__file__).parents[1] / ".." / "shared" / "data" / "gsm8k"
                                            / "test.jsonl"))
RUN = ["--concurrency", "4", "--threads", "2"]
ONE_AT_A_TIME = ["--concurrency", "1", "--threads", "1", "--context", "2048"]
PORT = 8765
AGREEMENT = ("humaneval-0.5b-q4_k_m-prefill-c1", "humaneval-0.5b-q4_k_m-prefill-url")
SERVER = ["serve", MODELS["0.5b"], "--port", str(PORT), "--parallel", "1", *ONE_AT_A_TIME[2:]]


def run_stage(name: str, model: str, task: str, *extra: str, run: list[str] = RUN) -> list[str]:
    stem = str(RESULTS / name)
    data = ["--data", GSM8K] if task == "gsm8k" else []
    target = ["--url", f"http://127.0.0.1:{PORT}"] if model == "url" else [MODELS[model]]
    return ["eval", *target, "--task", task, *data, *run, *extra, "--out", f"{stem}.jsonl", "--resume",
            "--json", f"{stem}.json"]


def compare_stage(name: str, *runs: str) -> list[str]:
    reports = [str(RESULTS / f"{r}.json") for r in runs]
    return ["eval", "--compare", *reports, "--plot", str(RESULTS / f"{name}.png"), "--json",
            str(RESULTS / f"{name}.json")]


STAGES: dict[str, list[str]] = {
    "humaneval-0.5b": run_stage("humaneval-0.5b-q4_k_m", "0.5b", "humaneval", "--no-prefill"),
    "humaneval-1.5b": run_stage("humaneval-1.5b-q4_k_m", "1.5b", "humaneval", "--no-prefill"),
    "humaneval-0.5b-q8": run_stage("humaneval-0.5b-q8_0", "0.5b-q8", "humaneval", "--no-prefill"),
    "humaneval-0.5b-prefill": run_stage("humaneval-0.5b-q4_k_m-prefill", "0.5b", "humaneval"),
    "humaneval-prefill-effect": compare_stage("humaneval-prefill-effect", "humaneval-0.5b-q4_k_m",
                                              "humaneval-0.5b-q4_k_m-prefill"),
    "humaneval-0.5b-c1": run_stage("humaneval-0.5b-q4_k_m-prefill-c1", "0.5b", "humaneval",
                                   run=ONE_AT_A_TIME),
    "humaneval-0.5b-url": run_stage("humaneval-0.5b-q4_k_m-prefill-url", "url", "humaneval",
                                    run=ONE_AT_A_TIME[:2]),
    "humaneval-url-agreement": compare_stage("humaneval-url-agreement", *AGREEMENT),
    "humaneval-1.5b-prefill": run_stage("humaneval-1.5b-q4_k_m-prefill", "1.5b", "humaneval"),
    "humaneval-prefill-compare": compare_stage("humaneval-prefill-compare", "humaneval-0.5b-q4_k_m-prefill",
                                               "humaneval-1.5b-q4_k_m-prefill"),
    "humaneval-compare": compare_stage("humaneval-compare", "humaneval-0.5b-q4_k_m", "humaneval-1.5b-q4_k_m"),
    "humaneval-quant-compare": compare_stage("humaneval-quant-compare", "humaneval-0.5b-q8_0",
                                             "humaneval-0.5b-q4_k_m"),
    "gsm8k-0.5b": run_stage("gsm8k200-0.5b-q4_k_m", "0.5b", "gsm8k", "--limit", "200"),
    "gsm8k-1.5b": run_stage("gsm8k200-1.5b-q4_k_m", "1.5b", "gsm8k", "--limit", "200"),
    "gsm8k-compare": compare_stage("gsm8k200-compare", "gsm8k200-0.5b-q4_k_m", "gsm8k200-1.5b-q4_k_m"),
}


def serve_while(command: list[str]) -> int:
    """Run ``command`` while ``qwenkit serve`` (same file and settings as in-process) answers."""
    print("$ qwenkit " + shlex.join(SERVER), file=sys.stderr, flush=True)
    server = subprocess.Popen([sys.executable, "-m", "qwenkit", *SERVER])
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{PORT}/ready", timeout=5) as ready:
                    if ready.status == 200:
                        break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    print("qwenkit serve did not become ready", file=sys.stderr)
                    return 1
                time.sleep(2)
        return subprocess.run(command, check=False).returncode
    finally:
        server.terminate()
        server.wait(timeout=60)


def verdict_differences(a: str, b: str) -> list[str]:
    """Items whose verdict differs between two results files (for the agreement stage's table)."""
    def verdicts(name: str) -> dict[str, bool]:
        _, records = read_results(RESULTS / f"{name}.jsonl")
        return {r.item: r.correct for r in records}

    first, second = verdicts(a), verdicts(b)
    return sorted(i for i in first.keys() & second.keys() if first[i] != second[i])


def main(names: list[str]) -> int:
    unknown = [n for n in names if n not in STAGES]
    if unknown or not names:
        print(f"stages: {', '.join(STAGES)}", file=sys.stderr)
        return 2
    RESULTS.mkdir(parents=True, exist_ok=True)
    for name in names:
        command = [sys.executable, "-m", "qwenkit", *STAGES[name]]
        print("$ qwenkit " + shlex.join(STAGES[name]), file=sys.stderr, flush=True)
        if name.endswith(("compare", "agreement", "effect")):
            with (RESULTS / f"{name}.txt").open("w", encoding="utf-8") as table:
                wide = {**os.environ, "COLUMNS": "200"}
                done = subprocess.run(command, stdout=table, check=False, env=wide)
                if name == "humaneval-url-agreement":
                    differ = verdict_differences(*AGREEMENT)
                    table.write(f"\nitems whose verdict differs: {len(differ)} {differ}\n")
        elif name.endswith("-url"):
            done = subprocess.CompletedProcess(command, serve_while(command))
        else:
            done = subprocess.run(command, check=False)
        if done.returncode != 0:
            return done.returncode
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
