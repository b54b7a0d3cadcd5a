"""Image-prompt throughput of a Qwen2.5-VL-7B-sized model on CUDA (run when a GPU is lent).

The GPU machines have no network, so the model is the catalog's ``qwen2.5-vl-7b-instruct`` at its
real size with random bf16 weights (speed and memory do not depend on the values), built by
``qwenkit.catalog.hf_vl_config``. Each prompt is made as qwenkit makes it: the picture resized by
Qwen's rule (``qwenkit.media``, 1280 image tokens at most), the chat rendered by the built-in
``qwen2.5-vl`` template with each image's pad tokens expanded (``encode_chat``), the pixels cut into
patches by transformers' image processor (already at a fixed point of the resize rule). For each
image size and batch size it measures the prefill (vision tower and prompt: time to the first token)
and the decode rate after it, and the peak GPU memory.

    python benchmarks/bench_vl_gpu.py [--sizes 448x448,1280x720,1920x1080] [--batch 1,4,16]
                                      [--new-tokens 64] [--repeats 3]
    python benchmarks/bench_vl_gpu.py --tiny   # a shrunk model on the CPU: checks the script only
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

from _common import machine, tokenizer_dir, write_result

CATALOG_ID = "qwen2.5-vl-7b-instruct"
TINY_TEXT = {"layers": 2, "hidden_size": 128, "num_attention_heads": 4, "num_kv_heads": 2, "head_dim": 32,
             "intermediate_size": 256}
TINY_VISION = {"depth": 3, "hidden_size": 64, "intermediate_size": 128}



def _device(tiny: bool) -> tuple[str, Any, dict[str, Any]]:
    import torch

    if tiny:
        return "cpu", torch.float32, {"name": "cpu (--tiny: a check of the script, not a measurement)"}
    if not torch.cuda.is_available():
        raise SystemExit("no CUDA GPU: this benchmark needs one (--tiny checks the script on the CPU)")
    props = torch.cuda.get_device_properties(0)
    memory = round(props.total_memory / 2**30, 1)
    return "cuda", torch.bfloat16, {"name": props.name, "memory_gib": memory, "torch": torch.__version__}


def build_model(tiny: bool, device: str, dtype: Any) -> tuple[Any, Any]:
    import torch
    import transformers

    from qwenkit.catalog import load_catalog
    from qwenkit.catalog.hf_vl_config import hf_vl_config_dict

    variant = load_catalog().get(CATALOG_ID)
    config = (hf_vl_config_dict(variant, TINY_VISION, vision_heads=4, **TINY_TEXT) if tiny
              else hf_vl_config_dict(variant))
    cls = getattr(transformers, config["architectures"][0])
    torch.manual_seed(0)
    with torch.device(device):
        model = cls._from_config(transformers.AutoConfig.for_model(**config), dtype=dtype)
    return model.eval(), variant


def make_prompt(variant: Any, tokenizer: Any, width: int, height: int) -> tuple[list[int], Any, int]:
    """Prompt ids, the processor's tensors for one picture, and its image-token count."""
    from PIL import Image
    from transformers import Qwen2VLImageProcessorPil

    from qwenkit.chat import encode_chat
    from qwenkit.media import PixelBudget, VisionGrid, prepare_picture

    tower = variant.arch.vision
    grid = VisionGrid(tower.patch_size, tower.spatial_merge_size, tower.temporal_patch_size)
    budget = PixelBudget()
    prepared = prepare_picture(Image.effect_noise((width, height), 60).convert("RGB"), grid, budget)
    processor = Qwen2VLImageProcessorPil(min_pixels=budget.min_pixels, max_pixels=budget.max_pixels)
    pixels = processor(images=[prepared.image], return_tensors="pt")
    messages = [{"role": "user", "content": [{"type": "image", "image": "chart.png"},
                                             {"type": "text", "text": "Describe this chart in detail."}]}]
    encoded = encode_chat(messages, tokenizer, template="qwen2.5-vl", image_tokens=[prepared.tokens])
    return list(encoded.ids), pixels, prepared.tokens


def _timed(model: Any, inputs: dict[str, Any], new_tokens: int, device: str) -> float:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    with torch.no_grad():
        model.generate(**inputs, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False)
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - started


def measure(model: Any, ids: list[int], pixels: Any, batch: int, new_tokens: int, repeats: int,
            device: str) -> dict[str, float]:
    """Prefill = a 1-token generate; decode rate from the rest of a ``new_tokens`` generate."""
    import torch

    input_ids = torch.tensor([ids] * batch, device=device)
    inputs = {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids),
              "pixel_values": pixels["pixel_values"].repeat(batch, 1).to(device, model.dtype),
              "image_grid_thw": pixels["image_grid_thw"].repeat(batch, 1).to(device)}
    _timed(model, inputs, 2, device)  # warm-up: kernels and allocator for these shapes
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    prefill = statistics.median(_timed(model, inputs, 1, device) for _ in range(repeats))
    whole = statistics.median(_timed(model, inputs, new_tokens, device) for _ in range(repeats))
    decode_seconds = max(whole - prefill, 1e-9)
    peak = torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else 0.0
    return {"prefill_seconds": round(prefill, 4),
            "prompt_tokens_per_second": round(batch * len(ids) / prefill, 1),
            "decode_tokens_per_second": round(batch * (new_tokens - 1) / decode_seconds, 1),
            "peak_gpu_memory_gib": round(peak, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="448x448,1280x720,1920x1080", help="WIDTHxHEIGHT,...")
    parser.add_argument("--batch", default="1,4,16", help="prompts decoded together, comma-separated")
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tiny", action="store_true", help="a shrunk model on the CPU (checks the script)")
    args = parser.parse_args()

    from qwenkit.chat.hf_tokenizer import HFTokenizer

    device, dtype, gpu = _device(args.tiny)
    model, variant = build_model(args.tiny, device, dtype)
    tokenizer = HFTokenizer.from_dir(tokenizer_dir())
    rows = []
    for size in args.sizes.split(","):
        width, height = (int(n) for n in size.lower().split("x"))
        ids, pixels, image_tokens = make_prompt(variant, tokenizer, width, height)
        for batch in (int(b) for b in args.batch.split(",")):
            timings = measure(model, ids, pixels, batch, args.new_tokens, args.repeats, device)
            row = {"image": f"{width}x{height}", "image_tokens": image_tokens, "prompt_tokens": len(ids),
                   "batch": batch, **timings}
            print(json.dumps(row))
            rows.append(row)
    if args.tiny:
        return  # the script works; these numbers measure nothing worth a file
    payload = {"machine": machine(), "gpu": gpu, "device": device,
               "model": f"{CATALOG_ID} architecture, random weights, {dtype}",
               "new_tokens": args.new_tokens, "repeats": args.repeats, "rows": rows}
    print(write_result("vl_gpu", payload))


if __name__ == "__main__":
    main()
