"""vLLM's own settings (parallelism, memory, quantization), checked against the model before vLLM starts.

vLLM checks some of these itself, but only once it has spawned its workers and begun loading: a
tensor-parallel size that does not divide a 72B model's heads should fail in a second with a
sentence, not minutes later with a worker's stack trace. The Qwen-specific rules live here:
heads and KV heads against the tensor-parallel size, layers against the pipeline stages, the
checkpoint's own quantization against ``--quantization``, and YaRN for contexts past the native
length, set as Qwen's deployment guide sets it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, TypeVar

from qwenkit.errors import ModelFormatError, UsageError


class DistributedExecutor(str, Enum):
    """How vLLM runs its workers: processes on this machine, or a Ray cluster (several nodes)."""

    MP = "mp"
    RAY = "ray"


class VllmQuantization(str, Enum):
    """Weight formats vLLM serves Qwen checkpoints in (Qwen publishes AWQ, GPTQ-Int4/Int8 and FP8)."""

    AWQ = "awq"
    GPTQ = "gptq"
    FP8 = "fp8"  # also applied on the fly to a bf16 checkpoint (vLLM's dynamic FP8)


# Per GPU, besides weights and KV cache: CUDA context, the activation peak and CUDA graphs (vLLM's profile).
RESERVE_BYTES = int(2.5 * 1024**3)
# Qwen's guide: YaRN with factor 4 takes a 32K model to 131,072 tokens; past that it is untested.
MAX_YARN_FACTOR = 4.0


@dataclass(frozen=True)
class VllmSettings:
    """What ``--backend vllm`` adds to the common options; the defaults are a single GPU."""

    tensor_parallel_size: int = 1
    pipeline_parallel_size: int = 1
    data_parallel_size: int = 1
    distributed_executor: DistributedExecutor | None = None  # None: vLLM's choice
    gpu_memory_utilization: float = 0.9
    quantization: VllmQuantization | None = None  # None: what the checkpoint says
    enable_prefix_caching: bool = True
    # No torch.compile (nor CUDA graphs): the engine starts about a minute sooner and decodes slower.
    enforce_eager: bool = False

    def __post_init__(self) -> None:
        for name in ("tensor_parallel_size", "pipeline_parallel_size", "data_parallel_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise UsageError(f"{name} must be a positive integer, got {value!r}", param=name)
        if not 0.0 < self.gpu_memory_utilization <= 1.0:
            raise UsageError(
                f"gpu_memory_utilization must be in (0, 1], got {self.gpu_memory_utilization!r}",
                param="gpu_memory_utilization",
            )

    @property
    def is_default(self) -> bool:
        return self == VllmSettings()


E = TypeVar("E", bound=Enum)


def _parse_choice(kind: type[E], value: str | None, param: str, unknown: str) -> E | None:
    """An enum member from a flag's text (any case); None when not given; ``unknown`` (formatted with
    ``value`` and ``choices``) when it names none."""
    if value is None or value == "":
        return None
    try:
        return kind(value.lower())
    except ValueError:
        choices = [str(member.value) for member in kind]
        message = unknown.format(value=value, choices=", ".join(choices), either=" or ".join(choices))
        raise UsageError(message, param=param) from None


def parse_quantization(value: str | None) -> VllmQuantization | None:
    return _parse_choice(
        VllmQuantization, value, "quantization", "unknown quantization {value!r}; vLLM serves: {choices}"
    )


def parse_executor(value: str | None) -> DistributedExecutor | None:
    return _parse_choice(
        DistributedExecutor,
        value,
        "distributed_executor",
        "unknown distributed executor {value!r}; choose {either}",
    )


@dataclass(frozen=True)
class CheckpointShape:
    """What a checkpoint's config.json says that parallelism and context depend on."""

    num_attention_heads: int
    num_kv_heads: int
    num_layers: int
    max_position_embeddings: int
    quant_method: str | None = None  # quantization_config.quant_method, lower case
    has_rope_scaling: bool = False

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> CheckpointShape:
        text = config.get("text_config", config)  # a VL model's language model
        try:
            heads = int(text["num_attention_heads"])
            layers = int(text["num_hidden_layers"])
            positions = int(text.get("max_position_embeddings", 32768))
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelFormatError(f"config.json lacks a usable {exc} for vLLM") from exc
        quant = config.get("quantization_config") or {}
        method = quant.get("quant_method") if isinstance(quant, Mapping) else None
        return cls(
            num_attention_heads=heads,
            num_kv_heads=int(text.get("num_key_value_heads", heads)),
            num_layers=layers,
            max_position_embeddings=positions,
            quant_method=str(method).lower() if method else None,
            has_rope_scaling=bool(text.get("rope_scaling")),
        )

    @classmethod
    def read(cls, model_dir: Path) -> CheckpointShape:
        path = model_dir / "config.json"
        try:
            return cls.from_config(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, json.JSONDecodeError) as exc:
            raise ModelFormatError(f"cannot read {path}: {exc}") from exc


def check_parallelism(settings: VllmSettings, shape: CheckpointShape) -> None:
    """vLLM's sharding rules: every GPU holds whole attention heads, and KV heads split or replicate
    evenly (Qwen2.5-7B's 4 KV heads serve TP 2, 4 or 8; TP 3 fits neither its 28 heads nor its 4)."""
    tp = settings.tensor_parallel_size
    if shape.num_attention_heads % tp:
        raise UsageError(
            f"tensor_parallel_size {tp} does not divide the model's {shape.num_attention_heads} attention "
            f"heads; use one of {', '.join(map(str, valid_tensor_parallel_sizes(shape)))}",
            param="tensor_parallel_size",
        )
    if shape.num_kv_heads % tp and tp % shape.num_kv_heads:
        raise UsageError(
            f"tensor_parallel_size {tp} neither divides nor is a multiple of the model's "
            f"{shape.num_kv_heads} KV heads",
            param="tensor_parallel_size",
        )
    if settings.pipeline_parallel_size > shape.num_layers:
        raise UsageError(
            f"pipeline_parallel_size {settings.pipeline_parallel_size} exceeds the model's "
            f"{shape.num_layers} layers",
            param="pipeline_parallel_size",
        )


def valid_tensor_parallel_sizes(shape: CheckpointShape, limit: int = 64) -> list[int]:
    """Tensor-parallel sizes the model's heads allow, up to ``limit``."""
    return [
        tp
        for tp in range(1, limit + 1)
        if shape.num_attention_heads % tp == 0
        and (shape.num_kv_heads % tp == 0 or tp % shape.num_kv_heads == 0)
    ]


def check_quantization(settings: VllmSettings, shape: CheckpointShape) -> None:
    """AWQ and GPTQ are properties of the checkpoint: asking for them on another one is a mistake."""
    wanted = settings.quantization
    if wanted is None or (wanted is VllmQuantization.FP8 and shape.quant_method in (None, "fp8")):
        return
    have = shape.quant_method
    if have is None:
        raise UsageError(
            f"quantization {wanted.value} needs a {wanted.value.upper()} checkpoint (Qwen publishes "
            f"them as ...-{wanted.value.upper()} repositories); this one has no quantization_config",
            param="quantization",
        )
    if not have.startswith(wanted.value):  # gptq also names gptq_marlin kernels
        raise UsageError(
            f"quantization {wanted.value} was asked for, but the checkpoint is quantized with {have}",
            param="quantization",
        )


def rope_scaling_for(context: int, shape: CheckpointShape) -> dict[str, Any] | None:
    """YaRN for a context past the native length (Qwen's guide: factor = wanted / native, over the native
    ``original_max_position_embeddings``); None when the native length suffices. Static YaRN can cost
    quality on short texts, which is why Qwen says to add it only when long contexts are needed."""
    native = shape.max_position_embeddings
    if context <= native:
        return None
    if shape.has_rope_scaling:
        return None  # the checkpoint already says how it extends; vLLM follows its config.json
    factor = context / native
    if factor > MAX_YARN_FACTOR:
        raise UsageError(
            f"context {context} is {factor:.1f}x the model's native {native} tokens; Qwen documents YaRN up "
            f"to {MAX_YARN_FACTOR:g}x ({int(native * MAX_YARN_FACTOR)} tokens)",
            param="context",
        )
    return {"rope_type": "yarn", "factor": factor, "original_max_position_embeddings": native}


def checkpoint_bytes(model_dir: Path) -> int:
    """Bytes of the weights on disk: what must be spread over the GPUs of one model copy."""
    return sum(p.stat().st_size for p in model_dir.glob("*.safetensors"))


def check_fits(settings: VllmSettings, weight_bytes: int, gpu_bytes: int, reserve_bytes: int) -> None:
    """One shard's weights and vLLM's fixed overhead must fit the share of a GPU vLLM may take,
    leaving room for KV cache (vLLM itself only finds out after loading)."""
    shards = settings.tensor_parallel_size * settings.pipeline_parallel_size
    per_gpu = weight_bytes / shards + reserve_bytes
    budget = gpu_bytes * settings.gpu_memory_utilization
    if per_gpu >= budget:
        gib = 1024**3
        raise UsageError(
            f"each GPU would hold {per_gpu / gib:.1f} GiB of weights and overhead, but "
            f"gpu_memory_utilization {settings.gpu_memory_utilization} of {gpu_bytes / gib:.1f} GiB "
            f"gives {budget / gib:.1f} GiB and leaves none for the KV cache; raise tensor_parallel_size "
            "or pipeline_parallel_size, or use a quantized variant",
            param="tensor_parallel_size",
        )
