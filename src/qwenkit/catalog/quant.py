"""Weight formats and what one weight costs in each.

Two containers: Hugging Face checkpoints (bf16/fp16, fp8, bitsandbytes int8/nf4, GPTQ/AWQ int4),
where only the linear layers of the transformer blocks are quantized and embeddings, norms and
biases stay 16-bit; and GGUF files, where llama.cpp's quantizer picks a ggml type per tensor.

For GGUF the average "bits per weight" of a recipe hides a lot for small Qwen models: a K-quant
needs rows that are a multiple of 256, which hidden size 896 (Qwen2.5-0.5B) is not, so those
tensors fall back to Q5_0/Q8_0, and the 136M-parameter embedding table is stored twice (token_embd
and output). So a GGUF recipe here assigns a ggml type per tensor with llama.cpp's rules
(``llama_tensor_get_type`` in src/llama-quant.cpp) for the recipes we offer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from types import MappingProxyType

from qwenkit.errors import UsageError


@dataclass(frozen=True)
class GgmlType:
    """A ggml storage type: ``block_bytes`` bytes hold ``block_size`` weights."""

    name: str
    block_size: int
    block_bytes: int

    @property
    def bits_per_weight(self) -> float:
        return 8.0 * self.block_bytes / self.block_size

    def nbytes(self, n_elements: int) -> int:
        return -(-n_elements // self.block_size) * self.block_bytes


def _types(*items: GgmlType) -> Mapping[str, GgmlType]:
    return MappingProxyType({t.name: t for t in items})


# Block layouts from ggml-common.h (QK_K = 256 for the K-quants).
GGML_TYPES: Mapping[str, GgmlType] = _types(
    GgmlType("F32", 1, 4),
    GgmlType("F16", 1, 2),
    GgmlType("BF16", 1, 2),
    GgmlType("Q8_0", 32, 34),
    GgmlType("Q5_0", 32, 22),
    GgmlType("Q5_1", 32, 24),
    GgmlType("Q4_0", 32, 18),
    GgmlType("Q4_1", 32, 20),
    GgmlType("Q4_K", 256, 144),
    GgmlType("Q5_K", 256, 176),
    GgmlType("Q6_K", 256, 210),
)

# What llama.cpp's quantizer uses when a tensor's row length is not a multiple of the block size.
_FALLBACK: Mapping[str, str] = MappingProxyType({"Q4_K": "Q5_0", "Q5_K": "Q5_1", "Q6_K": "Q8_0"})


class Container(str, Enum):
    HF = "hf"
    GGUF = "gguf"


def use_more_bits(i_layer: int, n_layers: int) -> bool:
    """llama.cpp's choice of layers that get a bigger type in the _M recipes (about half)."""
    return i_layer < n_layers // 8 or i_layer >= 7 * n_layers // 8 or (i_layer - n_layers // 8) % 3 == 2


@dataclass(frozen=True)
class GgufRecipe:
    """One ``llama-quantize`` file type, reduced to the rules that touch Qwen's tensors."""

    base: str  # ggml type of every 2-D weight without a special rule
    more_bits: str | None = None  # type of attn_v / ffn_down on use_more_bits layers (_M recipes)

    def tensor_type(self, kind: str, ne0: int, layer: int, n_layers: int) -> GgmlType:
        """The ggml type llama.cpp's quantizer gives a 2-D weight of this kind and row length."""
        name = self.base
        if kind == "output":
            # output.weight: Q8_0 if the row does not fit the base block, else Q6_K (Q8_0 stays Q8_0)
            if ne0 % GGML_TYPES[self.base].block_size:
                name = "Q8_0"
            elif self.base != "Q8_0":
                name = "Q6_K"
        elif self.more_bits and (kind == "attn_v" or "ffn_down" in kind) and use_more_bits(layer, n_layers):
            name = self.more_bits
        return _fit_row(name, ne0)


def _fit_row(name: str, ne0: int) -> GgmlType:
    chosen = GGML_TYPES[name]
    if ne0 % chosen.block_size:
        fallback = GGML_TYPES[_FALLBACK.get(name, "F16")]
        chosen = fallback if ne0 % fallback.block_size == 0 else GGML_TYPES["F16"]
    return chosen


@dataclass(frozen=True)
class Quant:
    """A weight format users can ask for by name.

    ``linear_bits``: bits per weight of the quantized linear layers (HF container; scales and
    zero points included). ``quality``: higher keeps more of the bf16 model's quality.
    """

    name: str
    label: str
    container: Container
    quality: int
    linear_bits: float = 16.0
    recipe: GgufRecipe | None = None
    min_compute_capability: tuple[int, int] = (0, 0)  # CUDA compute capability it needs (fp8: 8.9)

    @property
    def is_gguf(self) -> bool:
        return self.container is Container.GGUF

    @property
    def is_quantized(self) -> bool:
        return self.quality < 100


def _hf(name: str, label: str, bits: float, quality: int, cc: tuple[int, int] = (0, 0)) -> Quant:
    return Quant(name, label, Container.HF, quality, linear_bits=bits, min_compute_capability=cc)


def _gguf(name: str, label: str, quality: int, base: str, more_bits: str | None = None) -> Quant:
    return Quant(name, label, Container.GGUF, quality, recipe=GgufRecipe(base, more_bits))


# Bits per weight of the HF quantizers:
#   fp8: 8 bits + one fp32 scale per 128x128 block (Qwen's FP8 checkpoints)    -> ~8.0
#   int8 (bitsandbytes LLM.int8): int8 + one fp32 scale per output row          -> ~8.03
#   nf4 (bitsandbytes, transformers' default: no double quant): 4 + fp32/64     -> 4.5
#   GPTQ / AWQ int4, group 128: 4 + (fp16 scale + 4-bit zero) / 128            -> ~4.16
QUANTS: Mapping[str, Quant] = MappingProxyType(
    {
        q.name: q
        for q in (
            _hf("bf16", "BF16", 16.0, 100),
            _hf("fp16", "FP16", 16.0, 100),
            _hf("fp8", "FP8", 8.002, 95, cc=(8, 9)),
            _hf("int8", "INT8 (bitsandbytes)", 8.03, 93),
            _hf("nf4", "NF4 (bitsandbytes)", 4.5, 80),
            _hf("gptq-int4", "GPTQ-Int4", 4.16, 84),
            _hf("awq-int4", "AWQ-Int4", 4.16, 85),
            _gguf("q8_0", "Q8_0", 96, "Q8_0"),
            _gguf("q6_k", "Q6_K", 92, "Q6_K"),
            _gguf("q5_k_m", "Q5_K_M", 89, "Q5_K", more_bits="Q6_K"),
            _gguf("q4_k_m", "Q4_K_M", 85, "Q4_K", more_bits="Q6_K"),
            _gguf("q4_0", "Q4_0", 78, "Q4_0"),
        )
    }
)

_ALIASES: Mapping[str, str] = MappingProxyType(
    {"f16": "fp16", "float16": "fp16", "bfloat16": "bf16", "gptq": "gptq-int4", "awq": "awq-int4",
     "int4-gptq": "gptq-int4", "int4-awq": "awq-int4", "bnb-4bit": "nf4", "bnb-8bit": "int8"}
)


def get_quant(name: str) -> Quant:
    """Look a format up by name, case-insensitively (``Q4_K_M`` == ``q4_k_m``)."""
    key = name.strip().lower().replace(" ", "")
    key = _ALIASES.get(key, key)
    try:
        return QUANTS[key]
    except KeyError:
        known = ", ".join(QUANTS)
        raise UsageError(f"unknown weight format {name!r}; known formats: {known}", param="quant") from None
