"""Quality next to speed on the real models: the ``qwenkit eval`` runs behind the README's table.

Each stage is one ``qwenkit eval`` command (printed before it runs), writing its per-item results
(``*.jsonl``, resumable) and its report (``*.json``) under ``benchmarks/results/eval/``; ``compare``
stages write the table (``*.txt``) and the PNG. Run stages by name, in order:

    python benchmarks/bench_eval_quality.py humaneval-0.5b humaneval-1.5b humaneval-compare

Models: ``QWENKIT_REAL_MODEL`` (0.5B Q4_K_M), ``QWENKIT_REAL_MODEL_1_5B`` and
``QWENKIT_REAL_MODEL_Q8`` (the 0.5B's Q8_0, made by ``qwenkit quantize``) name the files.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

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


def run_stage(name: str, model: str, task: str, *extra: str) -> list[str]:
    stem = str(RESULTS / name)
    data = ["--data", GSM8K] if task == "gsm8k" else []
    return ["eval", MODELS[model], "--task", task, *data, *RUN, *extra, "--out", f"{stem}.jsonl", "--resume",
            "--json", f"{stem}.json"]


def compare_stage(name: str, *runs: str) -> list[str]:
    reports = [str(RESULTS / f"{r}.json") for r in runs]
    return ["eval", "--compare", *reports, "--plot", str(RESULTS / f"{name}.png"), "--json",
            str(RESULTS / f"{name}.json")]


STAGES: dict[str, list[str]] = {
    "humaneval-0.5b": run_stage("humaneval-0.5b-q4_k_m", "0.5b", "humaneval"),
    "humaneval-1.5b": run_stage("humaneval-1.5b-q4_k_m", "1.5b", "humaneval"),
    "humaneval-0.5b-q8": run_stage("humaneval-0.5b-q8_0", "0.5b-q8", "humaneval"),
    "humaneval-compare": compare_stage("humaneval-compare", "humaneval-0.5b-q4_k_m", "humaneval-1.5b-q4_k_m"),
    "humaneval-quant-compare": compare_stage("humaneval-quant-compare", "humaneval-0.5b-q8_0",
                                             "humaneval-0.5b-q4_k_m"),
    "gsm8k-0.5b": run_stage("gsm8k200-0.5b-q4_k_m", "0.5b", "gsm8k", "--limit", "200"),
    "gsm8k-1.5b": run_stage("gsm8k200-1.5b-q4_k_m", "1.5b", "gsm8k", "--limit", "200"),
    "gsm8k-compare": compare_stage("gsm8k200-compare", "gsm8k200-0.5b-q4_k_m", "gsm8k200-1.5b-q4_k_m"),
}


def main(names: list[str]) -> int:
    unknown = [n for n in names if n not in STAGES]
    if unknown or not names:
        print(f"stages: {', '.join(STAGES)}", file=sys.stderr)
        return 2
    RESULTS.mkdir(parents=True, exist_ok=True)
    for name in names:
        command = [sys.executable, "-m", "qwenkit", *STAGES[name]]
        print("$ qwenkit " + shlex.join(STAGES[name]), file=sys.stderr, flush=True)
        if name.endswith("compare"):
            with (RESULTS / f"{name}.txt").open("w", encoding="utf-8") as table:
                wide = {**os.environ, "COLUMNS": "200"}
                done = subprocess.run(command, stdout=table, check=False, env=wide)
        else:
            done = subprocess.run(command, check=False)
        if done.returncode != 0:
            return done.returncode
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
