"""A GGUF back to a Hugging Face checkpoint (safetensors), through transformers' own GGUF loader.

This is how a checkpoint of a model published only as GGUF is made here (e.g. to test the whole
convert -> quantize path on the real Qwen2.5-Coder-0.5B without a network): transformers dequantizes
every tensor to float while loading, but then refuses ``save_pretrained`` because the model was
"quantized with gguf". The weights it holds are plain tensors, so the GGUF quantizer and its
``quantization_config`` are dropped before saving. The dequantized float32 weights are read from
qwenkit's unpacked cache where it holds them (engine/gguf_unpack.py). The result carries the source's
rounding: an f16 GGUF made from it is exactly as good as the 4-bit file it came from, no better.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qwenkit.engine.transformers_loading import ModelSource
from qwenkit.errors import MissingDependencyError, UsageError

DTYPES = ("float16", "bfloat16", "float32")


@dataclass(frozen=True)
class CheckpointResult:
    path: Path
    dtype: str
    seconds: float


def gguf_to_checkpoint(
    gguf_path: str | Path, out_dir: str | Path, dtype: str = "float16"
) -> CheckpointResult:
    """Write ``gguf_path`` as config.json + safetensors + tokenizer into ``out_dir`` (float16: the f16
    GGUF converted from it then holds exactly these values)."""
    try:
        import torch
        import transformers
    except ImportError as exc:
        raise MissingDependencyError.for_extra(exc.name or "transformers", "hf") from None
    gguf_path, out_dir = Path(gguf_path), Path(out_dir)
    if dtype not in DTYPES:
        raise UsageError(f"unknown dtype {dtype!r}; choose one of {', '.join(DTYPES)}", param="dtype")
    if not gguf_path.is_file():
        raise UsageError(f"{gguf_path} is not a file", param="gguf")
    start = time.perf_counter()
    source = ModelSource(gguf_path.parent, gguf_path.name).readable()  # the unpacked cache, if it fits
    kwargs = source.gguf_kwargs()
    auto = transformers.AutoModelForCausalLM
    model: Any = auto.from_pretrained(source.directory, dtype=torch.float32, **kwargs)
    tokenizer = transformers.AutoTokenizer.from_pretrained(source.directory, **kwargs)
    model.hf_quantizer = None  # the GGUF "quantizer" only dequantized at load; nothing quantized remains
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.to(getattr(torch, dtype))
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    return CheckpointResult(out_dir, dtype, time.perf_counter() - start)
