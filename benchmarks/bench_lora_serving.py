"""What per-request LoRA costs on llama.cpp: sequences on different adapters cannot share a decode.

Three runs of the same work (``--streams`` greedy streams of ``--tokens`` tokens each, one engine):
every stream on the base model; every stream on one adapter; half on the base and half on the adapter
(the runner groups them and the groups take turns, one ``llama_decode`` per group per round). The
adapter is a random rank-16 LoRA over all linear layers (its values do not change the cost), made with
peft from the model's config and converted with ``qwenkit tune export``.

    nice -n 5 .venv/bin/python benchmarks/bench_lora_serving.py [--streams 2] [--tokens 64]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import DEFAULT_MODEL, machine, median, write_result


def make_adapter(model: Path, folder: Path) -> Path:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoConfig, AutoModelForCausalLM

    from qwenkit.finetune.export import export_gguf

    config = AutoConfig.from_pretrained(model.parent, gguf_file=model.name)
    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_config(config)
    lora = LoraConfig(r=16, lora_alpha=32, target_modules="all-linear", init_lora_weights=False)
    peft_model = get_peft_model(base, lora)
    peft_model.save_pretrained(folder / "adapter")
    return export_gguf(folder / "adapter", folder / "adapter.gguf", base=str(model))


def run(backend: Any, adapters: list[str | None], tokens: int) -> dict[str, float]:
    from qwenkit.engine.types import SamplingParams

    prompt = backend.tokenizer.encode_text("Count from one to one hundred in words: one, two, three,")
    start = time.perf_counter()
    handles = [
        backend.submit(prompt, SamplingParams(temperature=0.0, max_tokens=tokens, ignore_eos=True, adapter=a))
        for a in adapters
    ]
    for h in handles:
        list(h)
    wall = time.perf_counter() - start
    return {"wall_seconds": wall, "aggregate_tokens_per_second": len(adapters) * tokens / wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--streams", type=int, default=2)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    args = parser.parse_args()

    from qwenkit.engine.llamacpp import LlamaCppBackend
    from qwenkit.engine.types import BackendOptions

    with tempfile.TemporaryDirectory() as tmp:
        adapter = make_adapter(args.model, Path(tmp))
        options = BackendOptions(context=512, parallel=args.streams, lora=(("a", str(adapter)),))
        backend = LlamaCppBackend.load(args.model, options)
        half = args.streams // 2
        layouts: dict[str, list[str | None]] = {
            "all on the base": [None] * args.streams,
            "all on one adapter": ["a"] * args.streams,
            "half base, half adapter (groups take turns)": [None] * half + ["a"] * (args.streams - half),
        }
        results: dict[str, Any] = {}
        run(backend, [None], 8)  # warm
        for name, layout in layouts.items():
            rates = [
                run(backend, layout, args.tokens)["aggregate_tokens_per_second"] for _ in range(args.repeats)
            ]
            results[name] = {
                "aggregate_tokens_per_second": round(median(rates), 1),
                "runs": [round(r, 1) for r in rates],
            }
        switches = backend.runner.adapters.switches
        backend.close()
    mixed = results["half base, half adapter (groups take turns)"]["aggregate_tokens_per_second"]
    same = results["all on the base"]["aggregate_tokens_per_second"]
    payload = {
        "machine": machine(), "model": str(args.model), "streams": args.streams, "tokens": args.tokens,
        "results": results, "mixed_vs_base_ratio": round(mixed / same, 3), "adapter_switches": switches,
    }  # fmt: skip
    print(json.dumps(payload, indent=2))
    print(write_result("lora_serving", payload))


if __name__ == "__main__":
    main()
