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
import time
from pathlib import Path

from _common import DEFAULT_MODEL, filler_text, machine, write_result


def _data(path: Path, n: int, words: int) -> Path:
    rows = [
        {
            "messages": [
                {"role": "user", "content": filler_text(words, seed=i)},
                {"role": "assistant", "content": filler_text(words, seed=1000 + i)},
            ]
        }
        for i in range(n)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--words", type=int, default=16, help="words per user turn and per answer")
    parser.add_argument("--lora-r", type=int, default=16)
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    args = parser.parse_args()

    from qwenkit.finetune.config import TuneConfig
    from qwenkit.finetune.run import tune_config

    with tempfile.TemporaryDirectory() as tmp:
        data = _data(Path(tmp) / "d.jsonl", args.steps * args.batch_size, args.words)
        config = TuneConfig.build({
            "base": str(args.model), "data": data, "output": Path(tmp) / "out", "max_steps": args.steps,
            "batch_size": args.batch_size, "lora_r": args.lora_r, "replay": 0, "probe": False,
            "eval_fraction": 0.0, "save_every": args.steps,
        })  # fmt: skip
        start = time.perf_counter()
        result = tune_config(config, say=print)
        wall = time.perf_counter() - start
    history = result.history
    payload = {
        "machine": machine(),
        "model": str(args.model),
        "device": "cpu",
        "dtype": "float32",
        "steps": args.steps,
        "batch_size": args.batch_size,
        "lora_r": args.lora_r,
        "train_tokens": history.tokens,
        "train_seconds": round(history.seconds, 2),
        "train_tokens_per_second": round(history.tokens_per_second, 1),
        "seconds_per_step": round(history.seconds / args.steps, 2),
        "wall_seconds_with_load_and_save": round(wall, 1),
        "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
        "final_loss": history.loss[-1] if history.loss else None,
    }
    print(json.dumps(payload, indent=2))
    print(write_result("tune_cpu", payload))


if __name__ == "__main__":
    main()
