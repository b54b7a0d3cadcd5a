"""LoRA training speed and peak memory on CPU for the real 0.5B (the GGUF, dequantized to fp32).

Trains a fixed number of steps on synthetic chat examples of a fixed length through ``qwenkit.tune``'s
own loop (no replay, no probe), and records training tokens/s (every token of the batch, prompt
included, since all of them go through forward and backward) and the process's peak resident memory.

    nice -n 5 .venv/bin/python benchmarks/bench_tune_cpu.py [--steps 8] [--batch-size 4] [--tokens 64]
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
from pathlib import Path

from _common import DEFAULT_MODEL, machine, write_result
from _tune_common import speed_fields, train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--words", type=int, default=16, help="words per user turn and per answer")
    parser.add_argument("--lora-r", type=int, default=16)
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        result, wall = train(args.model, Path(tmp), args.steps, args.batch_size, args.words, args.lora_r)
    payload = {
        "machine": machine(),
        "model": str(args.model),
        "device": "cpu",
        "dtype": "float32",
        "steps": args.steps,
        "batch_size": args.batch_size,
        "lora_r": args.lora_r,
        **speed_fields(result.history, args.steps, wall),
        "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
    }
    print(json.dumps(payload, indent=2))
    print(write_result("tune_cpu", payload))


if __name__ == "__main__":
    main()
