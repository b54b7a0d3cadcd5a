"""GGUF to a smaller GGUF through llama.cpp's quantizer (``llama_model_quantize`` in llama-cpp-python).

The quantizer refuses nothing on its own that matters to people: requantizing a 4-bit file works and
quietly stacks two roundings. So an input whose weights are already quantized is refused unless the
caller allows it. K-quants work on blocks of 256 columns; a tensor whose width is not a multiple of
that (Qwen2.5-0.5B's 896, its 4864-wide FFN) falls back to a 32-block type, and those fallbacks are
reported by name, as llama.cpp's log states them, beside the output's own tensor-type histogram.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

from qwenkit.convert.output import atomic_output, check_room, check_target, child_process
from qwenkit.errors import ConversionError, UsageError
from qwenkit.models.gguf_reader import GGUFMetadata, read_gguf_metadata
from qwenkit.models.ref import quant_from_filename

UNQUANTIZED_TENSOR_TYPES = frozenset({"F32", "F16", "BF16"})


class QuantType(str, Enum):
    """Target types, with llama.cpp's ``llama_ftype`` numbers and bits per weight as a size guide."""

    Q8_0 = "Q8_0"
    Q6_K = "Q6_K"
    Q5_K_M = "Q5_K_M"
    Q4_K_M = "Q4_K_M"
    Q4_0 = "Q4_0"

    @property
    def ftype(self) -> int:
        return {"Q8_0": 7, "Q6_K": 18, "Q5_K_M": 17, "Q4_K_M": 15, "Q4_0": 2}[self.value]

    @property
    def bits_per_weight(self) -> float:
        return {"Q8_0": 8.5, "Q6_K": 6.56, "Q5_K_M": 5.69, "Q4_K_M": 4.89, "Q4_0": 4.5}[self.value]

    @classmethod
    def parse(cls, text: str) -> QuantType:
        try:
            return cls(text.upper())
        except ValueError:
            names = ", ".join(t.value for t in cls)
            raise UsageError(
                f"unknown quantization type {text!r}; choose one of {names}", param="type"
            ) from None


@dataclass(frozen=True)
class Fallback:
    tensor: str
    wanted: str
    used: str
    columns: int


@dataclass(frozen=True)
class QuantizeResult:
    path: Path
    type: QuantType
    source_type: str
    size: int
    source_size: int
    seconds: float
    tensors: int
    fallbacks: tuple[Fallback, ...]
    tensor_types: dict[str, int] = field(default_factory=dict)
    requantized: bool = False


def quantized_weights(meta: GGUFMetadata) -> list[str]:
    """Names of the quantized types among a file's tensors (empty: f32/f16/bf16 only)."""
    return sorted({t.type_name for t in meta.tensors} - UNQUANTIZED_TENSOR_TYPES)


def default_output(src: Path, qtype: QuantType) -> Path:
    """``model-F16.gguf`` -> ``model-Q4_K_M.gguf``: the source's name with its type replaced."""
    stem = src.name.removesuffix(".gguf")
    quant = quant_from_filename(src.name)
    if quant and stem.lower().endswith(quant.lower()):
        stem = stem[: -len(quant)].rstrip("-_.")
    return src.with_name(f"{stem}-{qtype.value}.gguf")


def _source(src: Path) -> GGUFMetadata:
    if not src.exists():
        raise UsageError(f"{src} does not exist", param="input")
    if src.is_dir():
        raise UsageError(
            f"{src} is a directory; quantize takes a .gguf file (convert a checkpoint first)", param="input"
        )
    return read_gguf_metadata(src)


def _run_worker(
    src: Path, tmp: Path, qtype: QuantType, allow: bool, progress: Callable[[int, int, str], None] | None
) -> tuple[list[Fallback], int]:
    threads = str(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
    command = [
        sys.executable,
        "-m",
        "qwenkit.convert.quantize_worker",
        str(src),
        str(tmp),
        str(qtype.ftype),
        "1" if allow else "0",
        threads,
    ]
    fallbacks: list[Fallback] = []
    tensors, error, code = 0, "", None
    with child_process(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            event = json.loads(line) if line.startswith("{") else {}
            kind = event.get("event")
            if kind == "tensor":
                tensors = event["total"]
                if progress is not None:
                    progress(event["index"], event["total"], event["name"])
            elif kind == "fallback":
                fallbacks.append(Fallback(event["name"], event["wanted"], event["used"], event["columns"]))
            elif kind == "error":
                error = event["message"]
            elif kind == "done":
                code = event["code"]
        stderr = proc.stderr.read() if proc.stderr else ""
        proc.wait()
    if proc.returncode != 0 or code != 0:
        reason = error or (stderr.strip().splitlines() or [f"exit code {proc.returncode}"])[-1]
        raise ConversionError(f"llama.cpp's quantizer failed on {src}: {reason}")
    return fallbacks, tensors


def quantize(
    src: str | Path,
    qtype: QuantType | str,
    output: str | Path | None = None,
    *,
    allow_requantize: bool = False,
    progress: Callable[[int, int, str], None] | None = None,
) -> QuantizeResult:
    """Quantize ``src`` to ``qtype``; the output appears only when it is whole."""
    src = Path(src)
    qtype = qtype if isinstance(qtype, QuantType) else QuantType.parse(qtype)
    meta = _source(src)
    already = quantized_weights(meta)
    if already and not allow_requantize:
        raise UsageError(
            f"{src.name} is already quantized ({meta.file_type_name or ', '.join(already)}); quantizing it "
            "again stacks a second rounding on the first",
            param="input",
            hint="quantize the f16/bf16/f32 file instead, or pass --allow-requantize",
        )
    target = Path(output) if output is not None else default_output(src, qtype)
    check_target(target, src)
    check_room(target, int(meta.parameter_count * qtype.bits_per_weight / 8 * 1.1) + (64 << 20))
    start = time.perf_counter()
    with atomic_output(target) as tmp:
        fallbacks, tensors = _run_worker(src, tmp, qtype, allow_requantize, progress)
    out_meta = read_gguf_metadata(target)
    return QuantizeResult(
        path=target,
        type=qtype,
        source_type=meta.file_type_name or "unknown",
        size=target.stat().st_size,
        source_size=src.stat().st_size,
        seconds=time.perf_counter() - start,
        tensors=tensors or out_meta.tensor_count,
        fallbacks=tuple(fallbacks),
        tensor_types=out_meta.tensor_type_histogram(),
        requantized=bool(already),
    )
