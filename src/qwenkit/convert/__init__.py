"""Making model files: a Hugging Face checkpoint to GGUF, GGUF to smaller quantizations, and what each
costs in quality (perplexity, KL divergence against a base), all through llama.cpp's own code."""

from __future__ import annotations

from qwenkit.convert.checkpoint import Checkpoint, check_checkpoint
from qwenkit.convert.hf_to_gguf import ConvertResult, convert
from qwenkit.convert.quantize import Fallback, QuantizeResult, QuantType, quantize
from qwenkit.defaults import OutType

__all__ = [
    "Checkpoint",
    "ConvertResult",
    "Fallback",
    "OutType",
    "QuantType",
    "QuantizeResult",
    "check_checkpoint",
    "convert",
    "quantize",
]
