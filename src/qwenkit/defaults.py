"""Values that the command line reads while Typer builds its commands (on every run, ``--help``
included) and that the layers below it use too: kept here, importing nothing, so that the CLI can
read them without importing those layers (``qwenkit.models`` and ``qwenkit.engine`` import the chat
layer and cost about 0.4 s)."""

from __future__ import annotations

from enum import Enum

DEFAULT_MODEL = "qwen2.5-coder-0.5b-instruct:q4_k_m"  # what `qwenkit run` / `serve` use without a REF
MIN_CONTEXT = 64  # tokens: less cannot hold a chat template and an answer
# tokens per sequence: 2**20, above Qwen2.5-*-1M's 1,010,000, the longest of the family; larger values
# would also overflow llama.cpp's 32-bit context size once multiplied by the sequences served
MAX_CONTEXT = 1 << 20


class OutType(str, Enum):
    """The converter's output types (``qwenkit convert --outtype``) and their bytes per weight."""

    F32 = "f32"
    F16 = "f16"
    BF16 = "bf16"
    Q8_0 = "q8_0"

    @property
    def bytes_per_weight(self) -> float:
        return {"f32": 4.0, "f16": 2.0, "bf16": 2.0, "q8_0": 34 / 32}[self.value]

    @property
    def file_suffix(self) -> str:
        return self.value.upper()

    @property
    def projector_type(self) -> OutType:
        """The mmproj's type: f16 unless f32 was asked for (llama.cpp's vision encoder is not quantized
        to 8 bits by its own tools, and bf16 is not what its CPU path is tested with)."""
        return OutType.F32 if self is OutType.F32 else OutType.F16
