"""The memory-bandwidth roofline: how close decode comes to ``bandwidth / bytes read per token``.

Decoding one token of a dense model reads every weight once (except the embedding table, of which
one row is gathered, unless it doubles as the output layer), only the active experts of an MoE,
plus the KV cache filled so far. Bytes come from the GGUF's own tensor table when there is a file,
else from the catalog's tensor-by-tensor count (``catalog.estimate``).

Bandwidth: measured here with numpy (a sum over an array far larger than the caches, best of N,
once on one thread and once split over the physical cores; the larger wins), or a GPU's spec figure
(``catalog.hardware``) when the model runs on a GPU, which numpy cannot measure.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import psutil

from qwenkit.catalog.quant import get_quant
from qwenkit.catalog.schema import Variant
from qwenkit.errors import ModelFormatError
from qwenkit.models.gguf_reader import GGUFMetadata

KV_BYTES_PER_VALUE = 2  # f16 KV cache, llama.cpp's and transformers' default


@dataclass(frozen=True)
class Bandwidth:
    bytes_per_s: float
    source: str  # "measured" or "spec"
    method: str


def _best_seconds(fn: object, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()  # type: ignore[operator]
        best = min(best, time.perf_counter() - start)
    return max(best, 1e-9)


def measure_read_bandwidth(
    size_bytes: int = 256 * 1024**2, repeats: int = 5, threads: int | None = None
) -> Bandwidth:
    """Bytes/s read by summing a ``size_bytes`` float32 array, best of ``repeats``."""
    import numpy as np

    data = np.ones(max(1024, size_bytes // 4), dtype=np.float32)
    data.sum()  # touch every page once before timing
    single = data.nbytes / _best_seconds(data.sum, repeats)
    n = threads or psutil.cpu_count(logical=False) or 1
    best, used = single, 1
    if n > 1:
        parts = np.array_split(data, n)
        with ThreadPoolExecutor(n) as pool:  # numpy releases the GIL inside the reduction

            def split_sum() -> None:
                list(pool.map(lambda p: p.sum(), parts))

            multi = data.nbytes / _best_seconds(split_sum, repeats)
        if multi > best:
            best, used = multi, n
    method = f"numpy float32 sum over {data.nbytes // 1024**2} MiB, {used} thread(s), best of {repeats}"
    return Bandwidth(best, "measured", method)


@dataclass(frozen=True)
class ModelBytes:
    """Bytes read per generated token, without KV (``weights_per_token``), and KV bytes per cached token."""

    weights_per_token: float
    weights_total: int
    kv_per_token: float
    source: str

    def per_token(self, context_tokens: float) -> float:
        return self.weights_per_token + self.kv_per_token * context_tokens


def _tensor_nbytes(type_name: str, n_elements: int) -> int:
    from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType

    try:
        block, size = GGML_QUANT_SIZES[GGMLQuantizationType[type_name]]
    except KeyError:
        raise ModelFormatError(f"unknown GGUF tensor type {type_name}: cannot size the model") from None
    return -(-n_elements // block) * size


def gguf_kv_bytes_per_token(meta: GGUFMetadata) -> float:
    layers = meta.arch_int("block_count") or 0
    heads = meta.arch_int("attention.head_count") or 0
    kv_heads = meta.arch_int("attention.head_count_kv") or heads
    embd = meta.arch_int("embedding_length") or 0
    head_dim = embd // heads if heads else 0
    k_len = meta.arch_int("attention.key_length") or head_dim
    v_len = meta.arch_int("attention.value_length") or head_dim
    return float(layers * kv_heads * (k_len + v_len) * KV_BYTES_PER_VALUE)


def model_bytes_from_gguf(meta: GGUFMetadata) -> ModelBytes:
    """Per-token reads from the file's tensor table (types and shapes as stored)."""
    names = {t.name for t in meta.tensors}
    tied = "output.weight" not in names
    experts = meta.arch_int("expert_count") or 0
    active = meta.arch_int("expert_used_count") or 0
    fraction = active / experts if experts else 1.0
    total, per_token = 0, 0.0
    for tensor in meta.tensors:
        nbytes = _tensor_nbytes(tensor.type_name, tensor.n_elements)
        total += nbytes
        if tensor.name == "token_embd.weight" and not tied:
            rows = tensor.shape[1] if len(tensor.shape) > 1 else 1
            per_token += nbytes / max(rows, 1)  # one row gathered
        elif "_exps" in tensor.name:
            per_token += nbytes * fraction
        else:
            per_token += nbytes
    return ModelBytes(per_token, total, gguf_kv_bytes_per_token(meta), "gguf tensor table")


def model_bytes_from_catalog(variant: Variant, quant: str, file_bytes: int | None = None) -> ModelBytes:
    """Per-token reads from the catalog's architecture (scaled to a real file's size when known)."""
    from qwenkit.catalog.estimate import weight_bytes

    arch = variant.arch
    counted = weight_bytes(arch, get_quant(quant))
    fraction = arch.num_active_experts / arch.num_experts if arch.is_moe else 0.0
    per_token = counted.read_per_token(fraction)
    total = counted.total
    if file_bytes:
        per_token *= file_bytes / counted.total
        total = file_bytes
    kv = float(arch.kv_bytes_per_token(KV_BYTES_PER_VALUE))
    return ModelBytes(per_token, total, kv, "catalog estimate")


@dataclass(frozen=True)
class Roofline:
    bandwidth_bytes_per_s: float
    bandwidth_source: str
    bytes_per_token: float
    context_tokens: float
    limit_tps: float
    measured_tps: float
    percent: float


def roofline(measured_tps: float, model: ModelBytes, bandwidth: Bandwidth, context_tokens: float) -> Roofline:
    """Single-stream decode speed as a share of what memory bandwidth allows at this context."""
    per_token = model.per_token(context_tokens)
    limit = bandwidth.bytes_per_s / per_token
    return Roofline(
        bandwidth_bytes_per_s=bandwidth.bytes_per_s,
        bandwidth_source=bandwidth.source,
        bytes_per_token=per_token,
        context_tokens=context_tokens,
        limit_tps=limit,
        measured_tps=measured_tps,
        percent=100.0 * measured_tps / limit,
    )
