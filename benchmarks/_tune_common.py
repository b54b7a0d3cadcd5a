"""What the two training benchmarks share: the synthetic data, the run through ``qwenkit.tune``'s own
loop (no replay, no probe, no eval split), and the fields of the result."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from _common import filler_text


def filler_chats(path: Path, n: int, words: int) -> Path:
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


def train(
    base: Path, work: Path, steps: int, batch_size: int, words: int, lora_r: int, **extra: Any
) -> tuple[Any, float]:
    """One fixed-length training run; the result and its wall time with load and save."""
    from qwenkit.finetune.config import TuneConfig
    from qwenkit.finetune.run import tune_config

    data = filler_chats(work / "d.jsonl", steps * batch_size, words)
    config = TuneConfig.build({
        "base": str(base), "data": data, "output": work / "out", "max_steps": steps,
        "batch_size": batch_size, "lora_r": lora_r, "replay": 0, "probe": False,
        "eval_fraction": 0.0, "save_every": steps, **extra,
    })  # fmt: skip
    start = time.perf_counter()
    result = tune_config(config, say=print)
    return result, time.perf_counter() - start


def speed_fields(history: Any, steps: int, wall: float) -> dict[str, Any]:
    return {
        "train_tokens": history.tokens,
        "train_seconds": round(history.seconds, 2),
        "train_tokens_per_second": round(history.tokens_per_second, 1),
        "seconds_per_step": round(history.seconds / steps, 3),
        "wall_seconds_with_load_and_save": round(wall, 1),
        "final_loss": history.loss[-1] if history.loss else None,
    }
