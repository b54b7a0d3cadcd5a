"""Decode speed of the transformers backend on CUDA against the memory-bandwidth roofline.

The GPU machines have no network and no vLLM, so this measures what can be measured there: qwenkit's
transformers backend (its engine core, batched decode, SDPA attention, bf16) on a catalog model at its
real size with random weights (speed does not depend on the values), ``ignore_eos`` so every stream
runs its full length. The roofline is the GPU's own copy bandwidth, measured first, divided by the
bytes one decode step must read: every weight once, plus each stream's KV cache so far.

    python benchmarks/bench_transformers_gpu.py [--model qwen3-8b] [--batch 1,8,32]
                                                [--prompt-tokens 512] [--new-tokens 128]
    python benchmarks/bench_transformers_gpu.py --tiny   # a shrunk model on the CPU: checks the script only
"""

from __future__ import annotations

import argparse
import random
import time
from typing import Any

from _common import machine, tokenizer_dir, write_result

TINY = {
    "layers": 2,
    "hidden_size": 128,
    "num_attention_heads": 4,
    "num_kv_heads": 2,
    "head_dim": 32,
    "intermediate_size": 256,
}



def copy_bandwidth(device: str) -> float:
    """Bytes per second the device moves in a large copy (read + write), the roofline's numerator."""
    import torch

    size = 2**30 if device == "cuda" else 2**26
    src = torch.empty(size, dtype=torch.uint8, device=device)
    dst = torch.empty_like(src)
    dst.copy_(src)
    if device == "cuda":
        torch.cuda.synchronize()
    began = time.perf_counter()
    for _ in range(10):
        dst.copy_(src)
    if device == "cuda":
        torch.cuda.synchronize()
    return 2 * 10 * size / (time.perf_counter() - began)


def build_backend(name: str, tiny: bool, batch: int, context: int) -> tuple[Any, Any]:
    """The engine over a random-weight model made on the device (no checkpoint written)."""
    import torch
    import transformers

    from qwenkit.catalog import load_catalog
    from qwenkit.catalog.hf_config import hf_config_dict
    from qwenkit.chat.hf_tokenizer import HFTokenizer
    from qwenkit.engine.transformers import TransformersBackend, TransformersRunner
    from qwenkit.engine.types import BackendOptions

    device = "cpu" if tiny else "cuda"
    dtype = torch.float32 if tiny else torch.bfloat16
    variant = load_catalog().get(name)
    config = transformers.AutoConfig.for_model(
        **(hf_config_dict(variant, **TINY) if tiny else hf_config_dict(variant))
    )
    torch.manual_seed(0)
    with torch.device(device):
        model = transformers.AutoModelForCausalLM.from_config(config, dtype=dtype, attn_implementation="sdpa")
    options = BackendOptions(
        context=context, parallel=batch, device=device, dtype="float32" if tiny else "bfloat16"
    )
    runner = TransformersRunner(model.eval(), HFTokenizer.from_dir(tokenizer_dir()), device, options)
    return TransformersBackend(runner, max_queue=batch), config


def weights_read(model: Any, config: Any) -> int:
    """Parameters one decode step reads whole: all but the input embedding (one row per token),
    unless the output head is that same matrix."""
    total = sum(p.numel() for p in model.parameters())
    embedding = model.get_input_embeddings().weight.numel()
    return total if config.tie_word_embeddings else total - embedding


def step_bytes(config: Any, params: int, batch: int, kv_len: float) -> float:
    """What one decode step reads: bf16 weights once, and each stream's K and V so far."""
    kv_per_token = 2 * config.num_hidden_layers * config.num_key_value_heads * config.head_dim * 2
    return 2 * params + batch * kv_len * kv_per_token


def run_batch(backend: Any, batch: int, prompt_tokens: int, new_tokens: int, vocab: int) -> dict[str, float]:
    from qwenkit.engine.types import SamplingParams

    rng = random.Random(batch)
    prompts = [[rng.randrange(1000, vocab) for _ in range(prompt_tokens)] for _ in range(batch)]
    params = SamplingParams(temperature=0.0, max_tokens=new_tokens, ignore_eos=True)
    began = time.perf_counter()
    handles = [backend.submit(p, params) for p in prompts]
    counts = [sum(1 for _ in h) for h in handles]
    assert counts == [new_tokens] * batch, counts
    first = max(h.timings.first_token for h in handles)
    end = max(h.timings.finished for h in handles)
    return {
        "decode_tok_s": batch * (new_tokens - 1) / (end - first),
        "ttft_last_s": first - began,
        "wall_s": end - began,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="qwen3-8b", help="catalog id, built at its real size")
    ap.add_argument("--batch", default="1,8,32")
    ap.add_argument("--prompt-tokens", type=int, default=512)
    ap.add_argument("--new-tokens", type=int, default=128)
    ap.add_argument("--tiny", action="store_true", help="a shrunk model on the CPU (checks the script)")
    args = ap.parse_args()
    import torch

    if not args.tiny and not torch.cuda.is_available():
        raise SystemExit("no CUDA GPU: this benchmark needs one (--tiny checks the script on the CPU)")
    device = "cpu" if args.tiny else "cuda"
    batches = [int(b) for b in args.batch.split(",")]
    context = args.prompt_tokens + args.new_tokens + 16
    bandwidth = copy_bandwidth(device)
    backend, config = build_backend(args.model, args.tiny, max(batches), context)
    params = sum(p.numel() for p in backend.runner.model.parameters())
    read = weights_read(backend.runner.model, config)
    vocab = min(config.vocab_size, backend.tokenizer.vocab_size)
    run_batch(backend, 1, 16, 4, vocab)  # warm-up: kernels and allocator
    results: dict[str, Any] = {}
    for batch in batches:
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        measured = run_batch(backend, batch, args.prompt_tokens, args.new_tokens, vocab)
        roofline = (
            batch * bandwidth / step_bytes(config, read, batch, args.prompt_tokens + args.new_tokens / 2)
        )
        peak = torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else None
        results[str(batch)] = {
            **measured,
            "roofline_tok_s": roofline,
            "fraction_of_roofline": measured["decode_tok_s"] / roofline,
            "peak_gpu_memory_gib": peak,
        }
        print(
            f"batch {batch}: {measured['decode_tok_s']:.1f} tok/s, roofline {roofline:.0f} "
            f"({measured['decode_tok_s'] / roofline:.0%})"
        )
    backend.close()
    if args.tiny:
        return  # a check of the script, not a measurement: nothing written
    path = write_result(
        "transformers_gpu",
        {
            "machine": {**machine(), "device": torch.cuda.get_device_name(0), "torch": torch.__version__},
            "config": {
                "model": args.model,
                "parameters": params,
                "parameters_read_per_step": read,
                "dtype": "bfloat16",
                "attention": "sdpa",
                "prompt_tokens": args.prompt_tokens,
                "new_tokens": args.new_tokens,
                "weights": "random, the catalog entry's real shape",
            },
            "copy_bandwidth_gb_s": bandwidth / 1e9,
            "batches": results,
        },
    )
    print(f"-> {path}")


if __name__ == "__main__":
    main()
