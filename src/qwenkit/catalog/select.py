"""Which Qwen model to run for a task on a device, following the family's own selection guide.

Two registries drive it. ``TASKS`` (``catalog/tasks.py``): a task's preference tiers (code ->
Qwen3-Coder, Qwen2.5-Coder, then Qwen3.5/Qwen3; hard reasoning -> a thinking model; vision ->
Qwen3-VL and Qwen3.5; ...).
``DEVICE_FORMATS``: which weight formats and backend a device runs a variant in (CPU: GGUF quants
on llama.cpp for text, transformers bf16 when images or audio go in; CUDA: bf16/fp8 on vLLM for
text, int8/nf4 and media on transformers). A variant gets the best-quality format that fits the memory
budget at a usable speed; variants are ranked by tier, then by size (bigger is better once it fits
and is fast enough).
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from qwenkit.catalog.estimate import MemoryEstimate, estimate_decode_speed, estimate_memory
from qwenkit.catalog.hardware import DEFAULT_GPU_BANDWIDTH, HardwareInfo
from qwenkit.catalog.quant import QUANTS, Quant
from qwenkit.catalog.schema import Architecture, Generation, Specialisation, Thinking, Variant
from qwenkit.catalog.tasks import TASKS, TEXT_GENERATION_SPECIALISATIONS, TaskRule, Tier
from qwenkit.errors import QwenkitError, UsageError

__all__ = [  # the task registry lives in catalog/tasks.py and is re-exported here
    "CPU_GGUF_LADDER", "CUDA_HF_LADDER", "DEVICE_FORMATS", "LLAMA_CPP_TEXT_GENERATIONS",
    "MIN_USABLE_TOKENS_PER_S", "TASKS", "TEXT_GENERATION_SPECIALISATIONS", "FormatOption",
    "NothingFitsError", "Recommendation", "SelectRequest", "Selection", "TaskRule", "Tier", "check_device",
    "effective_params", "format_bytes", "parse_memory", "resolve_request", "select",
]

MIN_USABLE_TOKENS_PER_S = 5.0  # below this a variant is ranked after every faster one

_UNITS: Mapping[str, int] = MappingProxyType(
    {"": 0, "b": 1, "k": 1024, "kb": 10**3, "kib": 1024, "m": 1024**2, "mb": 10**6, "mib": 1024**2,
     "g": 1024**3, "gb": 10**9, "gib": 1024**3, "t": 1024**4, "tb": 10**12, "tib": 1024**4}
)
_MEMORY_RE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([a-z]*)\s*$", re.IGNORECASE)


def parse_memory(text: str) -> int:
    """'8GB' -> 8e9, '512MiB' -> 512 x 2^20, '1.5G' -> 1.5 x 2^30 (a bare K/M/G/T is binary)."""
    match = _MEMORY_RE.match(text or "")
    unit = match.group(2).lower() if match else ""
    if not match or unit not in _UNITS or not unit:
        raise UsageError(
            f"cannot read {text!r} as an amount of memory",
            param="memory",
            hint="write a number and a unit, e.g. 8GB, 512MiB or 1.5G",
        )
    value = float(match.group(1)) * _UNITS[unit]
    if value < 1:
        raise UsageError(f"memory must be more than zero, got {text!r}", param="memory")
    return int(value)


def format_bytes(n: float) -> str:
    return f"{n / 10**9:.2f} GB" if n >= 10**9 else f"{n / 10**6:.0f} MB"


@dataclass(frozen=True)
class FormatOption:
    quant: Quant
    backend: str  # a name in qwenkit.engine.registry.BACKENDS
    official: bool  # an official file exists (GGUF) / the checkpoint is the released one (HF)
    local: bool = False  # a file of it is on this machine (downloaded, or made with qwenkit quantize)


# Architectures llama.cpp runs for text (qwen, qwen2, qwen2moe, qwen3, qwen3moe, qwen3next, qwen35,
# qwen35moe: all in the bundled llama.cpp of llama-cpp-python 0.3.36).
LLAMA_CPP_TEXT_GENERATIONS = frozenset(Generation)
CPU_GGUF_LADDER = ("q8_0", "q6_k", "q5_k_m", "q4_k_m", "q4_0")  # best quality first
CUDA_HF_LADDER = ("bf16", "fp8", "int8", "nf4")


# Multimodal specialists: transformers runs them whole (qwenkit's llama.cpp path is text-only).
_MEDIA_SPECIALISATIONS = frozenset({Specialisation.VL, Specialisation.AUDIO, Specialisation.OMNI})


def _cpu_options(v: Variant, compute_capability: tuple[int, int] | None, media: bool) -> list[FormatOption]:
    """Text in: GGUF quants on llama.cpp (a Qwen3.5 runs its language model there). Images or audio
    in, or a multimodal specialist: transformers bf16."""
    if media or v.specialisation in _MEDIA_SPECIALISATIONS or v.generation not in LLAMA_CPP_TEXT_GENERATIONS:
        return [FormatOption(QUANTS["bf16"], "transformers", True)]
    official = {name.lower() for name in v.gguf_files}
    names = [q for q in CPU_GGUF_LADDER if q in official] or list(CPU_GGUF_LADDER)
    return [FormatOption(QUANTS[q], "llamacpp", q in official) for q in names]


# On GPUs, text models serve best on vLLM (paged KV, continuous batching, FP8 kernels); bitsandbytes
# int8 / nf4 and images or audio go to transformers (qwenkit's vLLM path is text-only).
_VLLM_QUANTS = frozenset({"bf16", "fp8"})


def _cuda_options(v: Variant, compute_capability: tuple[int, int] | None, media: bool) -> list[FormatOption]:
    cc = compute_capability or (0, 0)
    text = not media and v.specialisation not in _MEDIA_SPECIALISATIONS
    return [
        FormatOption(QUANTS[q], "vllm" if text and q in _VLLM_QUANTS else "transformers", q == "bf16")
        for q in CUDA_HF_LADDER
        if cc >= QUANTS[q].min_compute_capability  # unknown GPU: nothing that needs a newer one
    ]


DEVICE_FORMATS: Mapping[str, Callable[[Variant, tuple[int, int] | None, bool], list[FormatOption]]] = (
    MappingProxyType({"cpu": _cpu_options, "cuda": _cuda_options})
)


@dataclass(frozen=True)
class SelectRequest:
    task: str
    device: str  # "cpu" or "cuda" (already resolved from "auto")
    memory: int  # budget in bytes
    bandwidth: float  # bytes/s
    context: int = 8192
    compute_capability: tuple[int, int] | None = None
    limit: int = 5
    local: frozenset[tuple[str, str]] = frozenset()  # (catalog id, quant name) pairs on this machine

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise UsageError(f"unknown task {self.task!r}; choose one of: {', '.join(TASKS)}", param="task")
        if self.device not in DEVICE_FORMATS:
            raise UsageError(f"unknown device {self.device!r}; choose cpu or cuda", param="device")
        if self.context < 1:
            raise UsageError(f"context must be a positive token count, not {self.context}", param="context")
        for name, value, smallest in (("memory", self.memory, 1), ("limit", self.limit, 1)):
            if value < smallest:
                raise UsageError(f"{name} must be at least {smallest}, not {value}", param=name)
        if not self.bandwidth > 0:  # also NaN
            raise UsageError(f"bandwidth must be positive, not {self.bandwidth}", param="bandwidth")


@dataclass(frozen=True)
class Recommendation:
    variant: Variant
    option: FormatOption
    memory: MemoryEstimate
    tokens_per_s: float
    tier: int
    why: str
    thinking: bool | None

    @property
    def usable(self) -> bool:
        return self.tokens_per_s >= MIN_USABLE_TOKENS_PER_S

    def sort_key(self) -> tuple[bool, int, float, int]:
        return (not self.usable, self.tier, -effective_params(self.variant), -self.option.quant.quality)


@dataclass(frozen=True)
class Selection:
    request: SelectRequest
    recommendations: tuple[Recommendation, ...]
    message: str

    @property
    def fits(self) -> bool:
        return bool(self.recommendations)


class NothingFitsError(QwenkitError):
    """No suitable model fits the memory budget (exit code 1; the message says what would)."""


def effective_params(v: Variant) -> float:
    """A size to rank by: an MoE counts as the geometric mean of its total and active parameters."""
    return math.sqrt(v.params_total * v.params_active) if v.is_moe else float(v.params_total)


# qwenkit's engines never materialise the attention scores: its llama.cpp engine leaves flash
# attention on auto (on for CPU and CUDA builds), transformers uses SDPA.
_FLASH_ATTENTION = True


# Qwen's own GGUF files of these generations store a tied embedding twice (token_embd + output).
_OFFICIAL_GGUF_TIED_COPY = frozenset({Generation.QWEN1_5, Generation.QWEN2, Generation.QWEN2_5})


def _tied_copy(v: Variant, opt: FormatOption) -> bool:
    return opt.official and v.generation in _OFFICIAL_GGUF_TIED_COPY


def _loaded(v: Variant, opt: FormatOption) -> Architecture:
    """What the backend loads: llama.cpp runs the language model alone (a vision tower is a separate
    mmproj file qwenkit does not load); transformers loads the whole checkpoint."""
    return v.arch.shrunk(encoder_params=0) if opt.backend == "llamacpp" else v.arch


def _estimate(v: Variant, opt: FormatOption, context: int) -> MemoryEstimate:
    return estimate_memory(
        _loaded(v, opt), opt.quant, context, flash_attention=_FLASH_ATTENTION,
        tied_output_copy=_tied_copy(v, opt),
    )


def _candidate(v: Variant, opt: FormatOption, req: SelectRequest, tier: int, rule: Tier) -> Recommendation:
    est = _estimate(v, opt, req.context)
    speed = estimate_decode_speed(
        _loaded(v, opt), opt.quant, req.bandwidth, context_tokens=req.context // 2,
        tied_output_copy=_tied_copy(v, opt),
    )
    return Recommendation(v, opt, est, speed.tokens_per_s, tier, rule.why, _thinking_mode(v, rule))


def _thinking_mode(v: Variant, rule: Tier) -> bool | None:
    """None: the model has no switch to set (no thinking); a thinking-only model always thinks."""
    if v.thinking is Thinking.NONE:
        return None
    return True if v.thinking is Thinking.THINKING_ONLY else rule.thinking


def _suitable(variants: Iterable[Variant], req: SelectRequest) -> list[tuple[Variant, int, Tier]]:
    found = []
    for v in variants:
        for index, tier in enumerate(TASKS[req.task].tiers):
            if tier.accepts(v) and v.context_max >= req.context:
                found.append((v, index, tier))
                break
    return found


def _best_option(cands: Sequence[Recommendation], budget: int) -> Recommendation | None:
    """Best quality that fits at a usable speed; else the lightest that fits (quality order in)."""
    fitting = [c for c in cands if c.memory.peak <= budget]
    usable = [c for c in fitting if c.usable]
    if usable:
        return usable[0]
    return min(fitting, key=lambda c: c.memory.peak, default=None)


def _why(rec: Recommendation, device: str) -> str:
    parts = [rec.why]
    if rec.option.local:
        parts.append("already on this machine")
    elif rec.option.backend == "llamacpp" and not rec.option.official:
        parts.append(f"no official {rec.option.quant.label} GGUF: convert with llama.cpp")
    if rec.option.backend == "vllm":
        parts.append("vLLM: pip install 'qwenkit[vllm]'")
    if rec.option.backend == "transformers" and device == "cpu":
        parts.append("llama.cpp path is text-only here, so transformers on CPU (slow)")
    if not rec.usable:
        parts.append(f"slow: under {MIN_USABLE_TOKENS_PER_S:g} tok/s")
    return "; ".join(parts)


def _with_local(v: Variant, options: list[FormatOption], req: SelectRequest) -> list[FormatOption]:
    """Mark the options on disk; a GGUF quant made locally joins a llama.cpp ladder it was not on."""
    here = {q for vid, q in req.local if vid == v.id}
    marked = [dataclasses.replace(o, local=o.quant.name in here) for o in options]
    if any(o.backend == "llamacpp" for o in options):
        listed = {o.quant.name for o in options}
        marked += [FormatOption(QUANTS[q], "llamacpp", False, True) for q in CPU_GGUF_LADDER
                   if q in here and q not in listed]  # fmt: skip
    return marked


def select(variants: Iterable[Variant], req: SelectRequest) -> Selection:
    """Ranked recommendations for ``req``; empty, with a message saying what would fit, if none."""
    variants = list(variants)
    suitable = _suitable(variants, req)
    ranked: list[Recommendation] = []
    all_cands: list[Recommendation] = []
    for v, tier_index, tier in suitable:
        listed = DEVICE_FORMATS[req.device](v, req.compute_capability, TASKS[req.task].media)
        options = _with_local(v, listed, req)
        cands = [_candidate(v, o, req, tier_index, tier) for o in options]
        all_cands.extend(cands)
        best = _best_option(cands, req.memory)
        if best is not None:
            ranked.append(dataclasses.replace(best, why=_why(best, req.device)))
    ranked.sort(key=Recommendation.sort_key)
    top = tuple(ranked[: req.limit])
    if top:
        lead = top[0]
        msg = f"{lead.variant.id} as {lead.option.quant.label} fits in {format_bytes(req.memory)}"
        return Selection(req, top, msg)
    if not suitable and not any(t.accepts(v) for v in variants for t in TASKS[req.task].tiers):
        return Selection(req, (), f"no model in the catalog suits --task {req.task}")
    return Selection(req, (), _nothing_fits_message(req, all_cands, suitable))


def _nothing_fits_message(
    req: SelectRequest, cands: Sequence[Recommendation], suitable: Sequence[tuple[Variant, int, Tier]]
) -> str:
    task = f"--task {req.task} on {req.device}"
    if not suitable:
        return (
            f"no model for {task} supports a context of {req.context} tokens; "
            "try a shorter --context"
        )
    smallest = min(cands, key=lambda c: c.memory.peak)
    msg = (
        f"nothing fits in {format_bytes(req.memory)} for {task} at {req.context} tokens of context. "
        f"The smallest suitable model, {smallest.variant.id} as {smallest.option.quant.label}, "
        f"needs {format_bytes(smallest.memory.peak)} (try --memory {_round_up_gb(smallest.memory.peak)})"
    )
    shorter = _context_that_fits(smallest, req)
    if shorter:
        msg += f", or fits in {format_bytes(req.memory)} with --context {shorter}"
    return msg + "."


def _round_up_gb(n: int) -> str:
    return f"{math.ceil(n / 10**8) / 10:g}GB"


def _context_that_fits(rec: Recommendation, req: SelectRequest) -> int | None:
    context = req.context // 2
    while context >= 512:
        est = _estimate(rec.variant, rec.option, context)
        if est.peak <= req.memory:
            return context
        context //= 2
    return None


def check_device(device: str) -> None:
    if device not in ("auto", *DEVICE_FORMATS):
        raise UsageError(f"unknown device {device!r}; choose auto, cpu or cuda", param="device")


def resolve_request(
    task: str,
    device: str,
    memory: str | None,
    context: int,
    hardware: HardwareInfo,
    bandwidth_gbps: float | None = None,
    limit: int = 5,
) -> SelectRequest:
    """Turn CLI-level choices into a request: ``auto`` device, default budget and bandwidth."""
    check_device(device)
    resolved = ("cuda" if hardware.has_cuda else "cpu") if device == "auto" else device
    gpu = hardware.best_gpu() if resolved == "cuda" else None
    if resolved == "cuda" and gpu is None and memory is None:
        raise UsageError(
            "no CUDA GPU was found on this machine",
            param="device",
            hint="to plan for one elsewhere, give its memory: --device cuda --memory 24GB",
        )
    if memory is not None:
        budget = parse_memory(memory)
    else:
        budget = gpu.usable_memory if gpu is not None else hardware.ram_available
    if bandwidth_gbps is not None:
        if not bandwidth_gbps > 0:
            raise UsageError(f"bandwidth must be positive GB/s, not {bandwidth_gbps}", param="bandwidth")
        bandwidth = bandwidth_gbps * 10**9
    elif resolved == "cuda":
        bandwidth = gpu.bandwidth if gpu is not None else DEFAULT_GPU_BANDWIDTH
    else:
        bandwidth = hardware.cpu.bandwidth
    cc = gpu.compute_capability if gpu is not None else None
    return SelectRequest(task, resolved, budget, bandwidth, context, cc, limit)
