"""``qwenkit bench`` end to end: open the target, run the workload, add the roofline, build the report."""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from qwenkit.bench.contention import diagnose_speed, sample_cpu_load
from qwenkit.bench.driver import DriverResult, run_workload
from qwenkit.bench.progress import NullProgress, ProgressSink
from qwenkit.bench.report import BenchReport, describe_machine, now_iso
from qwenkit.bench.roofline import (
    Bandwidth,
    ModelBytes,
    Roofline,
    measure_read_bandwidth,
    model_bytes_from_catalog,
    model_bytes_from_gguf,
    roofline,
)
from qwenkit.bench.runner_http import HttpTarget
from qwenkit.bench.runner_inprocess import InProcessTarget
from qwenkit.bench.stats import LevelSummary
from qwenkit.bench.target import Target
from qwenkit.bench.workload import COMMON_WORDS, Workload, vocabulary_words
from qwenkit.catalog.hardware import HardwareInfo, detect_hardware
from qwenkit.engine.cpu_placement import pins
from qwenkit.engine.types import BackendKind
from qwenkit.errors import QwenkitError, UsageError

CONTEXT_STEP = 256


def auto_context(workload: Workload) -> int:
    """The smallest multiple of 256 holding the longest prompt, its answer and a little slack."""
    need = workload.max_sequence + 16
    return max(CONTEXT_STEP, -(-need // CONTEXT_STEP) * CONTEXT_STEP)


@dataclass(frozen=True)
class BenchConfig:
    workload: Workload
    ref: str | None = None
    url: str | None = None
    api_key: str | None = None
    served_model: str | None = None
    backend: str = "auto"
    context: int | None = None
    threads: int | None = None
    bandwidth: bool = True  # measure memory bandwidth for the roofline


def model_bytes_for(ref: str | None, path: Path | None) -> ModelBytes | None:
    """Bytes per token from the GGUF file when there is one, else the catalog; None when unknown."""
    if path is not None and path.is_file() and path.suffix == ".gguf":
        from qwenkit.models import read_gguf_metadata

        return model_bytes_from_gguf(read_gguf_metadata(path))
    if ref is None:
        return None
    from qwenkit.models import find_local, resolve

    model_ref = resolve(ref)
    local = find_local(model_ref)
    if local is not None and local.path.is_file() and local.path.suffix == ".gguf":
        return model_bytes_for(None, local.path)
    if model_ref.variant is not None:
        return model_bytes_from_catalog(model_ref.variant, model_ref.quant or "bf16")
    return None


def on_gpu(target: Target, hardware: HardwareInfo) -> bool:
    """Whether the measured model runs on a GPU (then the GPU's spec bandwidth is the roofline's)."""
    if not hardware.has_cuda:
        return False
    if isinstance(target, InProcessTarget):
        backend = target.llm.backend
        device = str(getattr(backend, "device", ""))
        if device:
            return device.startswith("cuda")
        if importlib.util.find_spec("llama_cpp") is None:
            return False
        from qwenkit.engine.llama_lib import llama_lib

        return bool(llama_lib().llama_supports_gpu_offload())
    return bool(target.server_pids())  # a local server on a machine with a GPU: assume it uses it


def pick_bandwidth(gpu: bool, hardware: HardwareInfo) -> Bandwidth:
    best = hardware.best_gpu()
    if gpu and best is not None:
        return Bandwidth(best.bandwidth, "spec", f"{best.name}: vendor figure")
    return measure_read_bandwidth()


def single_stream(levels: Sequence[LevelSummary]) -> LevelSummary | None:
    """The level the roofline is about: lowest concurrency, then shortest prompt."""
    usable = [s for s in levels if s.decode_tps is not None]
    return min(usable, key=lambda s: (s.concurrency, s.prompt_tokens_target), default=None)


def compute_roofline(
    levels: Sequence[LevelSummary], model: ModelBytes | None, bandwidth: Bandwidth | None, output_tokens: int
) -> Roofline | None:
    level = single_stream(levels)
    if level is None or model is None or bandwidth is None or level.decode_tps is None:
        return None
    context = level.prompt_tokens_mean + output_tokens / 2  # the KV read grows over the answer
    return roofline(level.decode_tps.p50, model, bandwidth, context)


async def _open(config: BenchConfig, progress: bool) -> tuple[Target, Sequence[str]]:
    if config.url is not None:
        http = HttpTarget(config.url, api_key=config.api_key, model=config.served_model)
        await http.connect()
        return http, COMMON_WORDS
    if config.ref is None:
        raise UsageError("name a model (REF) or a server (--url)")
    context = config.context or auto_context(config.workload)
    local = await asyncio.to_thread(
        InProcessTarget.load, config.ref, backend=config.backend, context=context, threads=config.threads,
        parallel=config.workload.max_concurrency, progress=progress,
    )
    return local, vocabulary_words(local.llm.tokenizer)


async def run_bench(config: BenchConfig, progress: ProgressSink | None = None, *, show_progress: bool = True
                    ) -> BenchReport:
    sink = progress or NullProgress()
    hardware = detect_hardware()
    load = await asyncio.to_thread(sample_cpu_load)  # before our own model makes the machine busy
    target, words = await _open(config, show_progress)
    try:
        gpu = on_gpu(target, hardware)
        result: DriverResult = await run_workload(target, config.workload, words, gpu=gpu, progress=sink)
    finally:
        await target.aclose()
    path = Path(target.info.model_path) if target.info.model_path else None
    notes = list(result.notes)
    try:
        model = model_bytes_for(config.ref, path)
    except QwenkitError as exc:
        model, notes = None, [*notes, f"roofline: cannot size the model: {exc.message}"]
    bandwidth = None
    local = isinstance(target, InProcessTarget) or bool(target.server_pids())
    if config.bandwidth and not local:
        notes.append("roofline: the server does not run on this machine, so its bandwidth is unknown here")
    elif config.bandwidth:
        sink.begin("memory bandwidth", 1)
        bandwidth = await asyncio.to_thread(pick_bandwidth, gpu, hardware)
        sink.advance()
        sink.end()
    line = compute_roofline(result.levels, model, bandwidth, config.workload.output_tokens)
    threads = config.threads or hardware.cpu.physical_cores or 1
    llama = isinstance(target, InProcessTarget) and target.info.backend == BackendKind.LLAMACPP.value
    pinned = llama and pins(threads)
    return BenchReport(
        created=now_iso(),
        machine=describe_machine(hardware),
        target=target.info,
        workload=config.workload,
        levels=result.levels,
        bandwidth=bandwidth,
        model_bytes=model,
        roofline=line,
        notes=tuple(notes),
        cpu_load=load,
        diagnosis=None if line is None or gpu else diagnose_speed(line.percent, load, threads, pinned=pinned),
    )
