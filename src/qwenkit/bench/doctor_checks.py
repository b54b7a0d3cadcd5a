"""The checks ``qwenkit doctor`` runs, in order. Each is a small function ``DoctorState -> CheckResult``.

Nothing here touches the network: the model must already be on this machine to be checked.
"""

from __future__ import annotations

import importlib.util
import platform
import re
import shutil
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType

from qwenkit.bench.contention import diagnose_speed, sample_cpu_load
from qwenkit.bench.doctor import Check, CheckResult, DoctorState, Status
from qwenkit.bench.report import library_versions
from qwenkit.catalog.estimate import GiB, estimate_memory
from qwenkit.catalog.quant import get_quant
from qwenkit.engine.cpu_placement import pins
from qwenkit.engine.types import BackendKind
from qwenkit.errors import ModelFormatError

# llama.cpp's system-info feature name -> the /proc/cpuinfo flag that provides it.
CPU_FEATURES: Mapping[str, str] = MappingProxyType({
    "AVX": "avx", "AVX2": "avx2", "FMA": "fma", "F16C": "f16c", "AVX512": "avx512f",
    "AVX512_VNNI": "avx512_vnni", "AVX512_BF16": "avx512_bf16", "AVX_VNNI": "avx_vnni",
})
# llama.cpp's AMX kernels (ggml_backend_amx_mul_mat) segfault on the first decode of the Qwen2.5 K-quant
# GGUFs (seen on a Sapphire Rapids VM with llama-cpp-python 0.3.36): a build that uses them is broken.
BROKEN_FEATURES = ("AMX_INT8",)
NO_AMX_FLAGS = "-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
REBUILD_HINT = (
    f'rebuild it for this CPU: CFLAGS="{NO_AMX_FLAGS}" CXXFLAGS="{NO_AMX_FLAGS}" pip install '
    "--force-reinstall --no-cache-dir --no-binary llama-cpp-python llama-cpp-python"
)
GPU_ONLY_QUANTS = frozenset({"fp8", "int8", "nf4", "gptq-int4", "awq-int4"})
MIN_FREE_DISK = GiB
DOCTOR_PROMPT = [{"role": "user", "content": "Reply with one word: ready?"}]
DOCTOR_TOKENS = 32  # enough for a decode speed worth comparing with the roofline
DOCTOR_CONTEXT_TOKENS = 48  # about the prompt and half the answer


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str]:
    try:
        text = cpuinfo.read_text(errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return frozenset()


def parse_system_info(text: str) -> dict[str, bool]:
    """``"CPU : AVX = 1 | AVX2 = 1 | AVX512 = 0 |"`` -> {"AVX": True, "AVX2": True, "AVX512": False}."""
    return {name: value == "1" for name, value in re.findall(r"([A-Z0-9_]+) = (\d)", text)}


def missing_cpu_features(build: Mapping[str, bool], flags: frozenset[str]) -> list[str]:
    """Features this CPU has that the llama.cpp build does not use."""
    return [name for name, flag in CPU_FEATURES.items() if flag in flags and not build.get(name, False)]


def _gib(n: float) -> str:
    return f"{n / GiB:.1f} GiB"


def check_python(state: DoctorState) -> CheckResult:
    version = platform.python_version()
    return CheckResult("python", Status.OK, f"Python {version} ({sys.executable})")


def check_packages(state: DoctorState) -> CheckResult:
    versions = library_versions()
    text = ", ".join(f"{k} {v}" for k, v in versions.items())
    if "llama-cpp-python" not in versions and "transformers" not in versions:
        return CheckResult("packages", Status.FAIL, f"no backend installed ({text})",
                           "pip install 'qwenkit[llama]' (GGUF on CPU) or 'qwenkit[hf]'")
    return CheckResult("packages", Status.OK, text)


def check_torch(state: DoctorState) -> CheckResult:
    if importlib.util.find_spec("torch") is None:
        return CheckResult("torch", Status.SKIP, "not installed (only the transformers backend needs it)")
    import torch

    cuda = torch.cuda.is_available()
    cuda_text = f"CUDA {torch.version.cuda} available" if cuda else "CUDA not available"
    text = f"torch {torch.__version__}, {cuda_text}"
    if state.hardware.has_cuda and not cuda:
        return CheckResult("torch", Status.WARN, text + " although nvidia-smi sees a GPU",
                           "install a CUDA build of torch (pip install torch==2.13.0 --index-url "
                           "https://download.pytorch.org/whl/cu128)")
    return CheckResult("torch", Status.OK, text)


def check_llama_cpp(state: DoctorState) -> CheckResult:
    if importlib.util.find_spec("llama_cpp") is None:
        return CheckResult("llama.cpp", Status.SKIP, "llama-cpp-python not installed (GGUF models need it)",
                           "pip install 'qwenkit[llama]'")
    import llama_cpp

    raw = llama_cpp.llama_print_system_info()
    info = raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)
    build = parse_system_info(info)
    used = ", ".join(name for name, on in build.items() if on) or "none reported"
    text = f"llama-cpp-python {llama_cpp.__version__}; uses {used}"
    broken = [name for name in BROKEN_FEATURES if build.get(name, False)]
    if broken:
        return CheckResult("llama.cpp", Status.FAIL,
                           f"{text}; its {', '.join(broken)} kernels crash on Qwen GGUFs", REBUILD_HINT)
    missing = missing_cpu_features(build, state.cpu_flags)
    if missing:
        return CheckResult("llama.cpp", Status.WARN,
                           f"{text}; this CPU also has {', '.join(missing)}, which the build does not use",
                           REBUILD_HINT)
    if state.hardware.has_cuda and not llama_cpp.llama_supports_gpu_offload():
        return CheckResult("llama.cpp", Status.WARN, f"{text}; a CPU-only build on a machine with a GPU",
                           'CMAKE_ARGS="-DGGML_CUDA=on" pip install --force-reinstall llama-cpp-python')
    return CheckResult("llama.cpp", Status.OK, text)


def check_hardware(state: DoctorState) -> CheckResult:
    hw = state.hardware
    gpus = "; ".join(f"{g.name} {_gib(g.memory_total)}" for g in hw.gpus) or "no CUDA GPU"
    text = (f"{hw.cpu.model}, {hw.cpu.physical_cores} cores / {hw.cpu.logical_cores} threads, RAM "
            f"{_gib(hw.ram_available)} free of {_gib(hw.ram_total)}; {gpus}")
    if hw.ram_available < GiB:
        return CheckResult("hardware", Status.WARN, text,
                           "less than 1 GiB of RAM is free: close other programs")
    return CheckResult("hardware", Status.OK, text)


def check_model(state: DoctorState) -> CheckResult:
    from qwenkit.models import DEFAULT_MODEL, find_local, read_gguf_metadata, resolve

    ref = resolve(state.ref or DEFAULT_MODEL)
    state.model_format, state.model_quant = ref.format, ref.quant
    state.variant_id = ref.variant.id if ref.variant else None
    local = find_local(ref)
    if local is None:
        status = Status.FAIL if state.explicit_ref else Status.WARN
        return CheckResult("model", status, f"{ref.display} is not on this machine",
                           f"download it with: qwenkit pull {ref.display}")
    state.model_format, state.model_quant = local.format, local.quant
    if local.format != "gguf":
        state.model_ok, state.model_path = True, local.path
        return CheckResult("model", Status.OK, f"{local.path} (safetensors)")
    meta = read_gguf_metadata(local.path)  # raises ModelFormatError for a truncated or corrupt file
    expected = next((m.size for m in (ref.variant.mirrors if ref.variant else ())
                     if m.filename == local.path.name and m.size), None)
    if expected is not None and meta.file_size != expected:
        raise ModelFormatError(f"{local.path} has {meta.file_size:,} bytes; the catalog says {expected:,}",
                               hint=f"re-download it: qwenkit rm {ref.display}; qwenkit pull {ref.display}")
    state.model_ok, state.model_path = True, local.path
    kind = meta.file_type_name or "GGUF"
    return CheckResult("model", Status.OK, f"{local.path} ({kind}, {meta.tensor_count} tensors, "
                                           f"{_gib(meta.file_size)}, header and tensor table intact)")


def _needed_disk(state: DoctorState) -> int | None:
    from qwenkit.catalog import load_catalog
    from qwenkit.catalog.estimate import weight_bytes

    if state.variant_id is None:
        return None
    variant = load_catalog().get(state.variant_id)
    sizes = [m.size for m in variant.mirrors if m.quant == state.model_quant and m.size]
    if sizes:
        return sizes[0]
    return weight_bytes(variant.arch, get_quant(state.model_quant or "bf16")).total


def check_disk(state: DoctorState) -> CheckResult:
    from qwenkit.models.store import store_root

    where = state.model_path.parent if state.model_path is not None else store_root()
    probe = where
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    text = f"{_gib(free)} free at {where}"
    if state.model_path is None:
        needed = _needed_disk(state)
        if needed is not None and needed > free:
            return CheckResult("disk", Status.FAIL, f"{text}; the model needs {_gib(needed)}",
                               "free disk space or set QWENKIT_HOME / HF_HOME to a larger disk")
    if free < MIN_FREE_DISK:
        return CheckResult("disk", Status.WARN, text, "less than 1 GiB free: downloads and logs may fail")
    return CheckResult("disk", Status.OK, text)


def _memory_needed(state: DoctorState, context: int) -> int | None:
    """Peak bytes at ``context`` tokens (catalog estimate; else file size + the GGUF's KV size)."""
    from qwenkit.catalog import load_catalog

    file_bytes = state.model_path.stat().st_size if state.model_path and state.model_path.is_file() else None
    if state.variant_id is not None:
        variant = load_catalog().get(state.variant_id)
        quant = get_quant(state.model_quant or "bf16")
        return estimate_memory(variant.arch, quant, context, weights_bytes=file_bytes).peak
    if file_bytes is not None and state.model_format == "gguf" and state.model_path is not None:
        from qwenkit.bench.roofline import gguf_kv_bytes_per_token
        from qwenkit.models import read_gguf_metadata

        return int(file_bytes + gguf_kv_bytes_per_token(read_gguf_metadata(state.model_path)) * context)
    return None


def check_memory(state: DoctorState) -> CheckResult:
    if state.variant_id is None and state.model_path is None:
        return CheckResult("memory", Status.SKIP, "unknown model size")
    hw = state.hardware
    gpu = hw.best_gpu()
    free, where = (gpu.usable_memory, f"free memory on {gpu.name}") if gpu else (hw.ram_available, "free RAM")
    needed = _memory_needed(state, state.context)
    if needed is None:
        return CheckResult("memory", Status.SKIP, "unknown model size")
    text = f"~{_gib(needed)} needed at context {state.context}; {_gib(free)} {where}"
    if needed <= free:
        return CheckResult("memory", Status.OK, text)
    context = state.context // 2
    while context >= 512:
        fits = _memory_needed(state, context)
        if fits is not None and fits <= free:
            return CheckResult("memory", Status.WARN, f"context {state.context} does not fit: {text}",
                               f"use --context {context} or less, or a smaller quant")
        context //= 2
    return CheckResult("memory", Status.FAIL, f"the model does not fit even at context 512: {text}",
                       "pick a smaller model or quant (qwenkit select)")


def check_precision(state: DoctorState) -> CheckResult:
    quant = state.model_quant or ("bf16" if state.model_format == "safetensors" else None)
    if state.model_format is None:
        return CheckResult("precision", Status.SKIP, "no model")
    if state.model_format == "safetensors" and not state.hardware.has_cuda:
        if quant in GPU_ONLY_QUANTS:
            return CheckResult("precision", Status.FAIL,
                               f"{quant} weights need a CUDA GPU; this machine has none",
                               "use a GGUF quant on CPU, e.g. REF:q4_k_m")
        return CheckResult("precision", Status.WARN,
                           f"{quant or 'fp16/bf16'} safetensors on a CPU: slow, and fp16 math is emulated",
                           "on a CPU use a GGUF quant with llama.cpp, e.g. REF:q4_k_m")
    return CheckResult("precision", Status.OK, f"{quant or 'unknown quant'} {state.model_format}")


def _roofline_percent(state: DoctorState, tokens_per_second: float) -> float | None:
    """Decode speed as a share of what memory bandwidth allows (GGUF on the CPU; else None)."""
    if state.model_path is None or state.model_format != "gguf" or state.hardware.has_cuda:
        return None
    from qwenkit.bench.roofline import measure_read_bandwidth, model_bytes_from_gguf, roofline
    from qwenkit.models import read_gguf_metadata

    model = model_bytes_from_gguf(read_gguf_metadata(state.model_path))
    bandwidth = measure_read_bandwidth(size_bytes=64 * 1024**2, repeats=3)
    return roofline(tokens_per_second, model, bandwidth, context_tokens=DOCTOR_CONTEXT_TOKENS).percent


def check_generation(state: DoctorState) -> CheckResult:
    if not state.generate:
        return CheckResult("generation", Status.SKIP, "skipped (--no-generate)")
    if not state.model_ok or state.model_path is None:
        return CheckResult("generation", Status.SKIP, "no usable model to try")
    from qwenkit.engine.llm import load

    cpu = sample_cpu_load()  # before our own model makes the machine busy
    start = time.perf_counter()
    with load(str(state.model_path), backend=state.backend, context=512, parallel=1, progress=False) as llm:
        loaded = time.perf_counter() - start
        result = llm.chat(DOCTOR_PROMPT, max_tokens=DOCTOR_TOKENS, temperature=0.0, ignore_eos=True)
        llama = llm.backend.kind is BackendKind.LLAMACPP
    if result.usage.completion_tokens < 1:
        return CheckResult("generation", Status.FAIL, "the model loaded but generated nothing")
    answer = (result.content or result.reasoning).strip().replace("\n", " ")[:60]
    text = (f"loaded in {loaded:.1f}s; {result.usage.completion_tokens} tokens at "
            f"{result.decode_tokens_per_second:.1f} tok/s: {answer!r}")
    percent = _roofline_percent(state, result.decode_tokens_per_second)
    threads = state.hardware.cpu.physical_cores or 1  # what load() uses by default
    pinned = llama and pins(threads)
    diagnosis = None if percent is None else diagnose_speed(percent, cpu, threads, pinned=pinned)
    if diagnosis is not None:
        summary = f"{text}; {diagnosis.summary}"
        return CheckResult("generation", Status.WARN, summary, diagnosis.recommendation)
    return CheckResult("generation", Status.OK, text)


CHECKS: tuple[Check, ...] = (
    Check("python", check_python),
    Check("packages", check_packages),
    Check("torch", check_torch),
    Check("llama.cpp", check_llama_cpp),
    Check("hardware", check_hardware),
    Check("model", check_model),
    Check("disk", check_disk),
    Check("memory", check_memory),
    Check("precision", check_precision),
    Check("generation", check_generation),
)
