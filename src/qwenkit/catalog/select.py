"""Which Qwen model to run for a task on a device, following the family's own selection guide.

Two registries drive it. ``TASKS``: a task's preference tiers (code -> Qwen2.5-Coder, then Qwen3;
hard reasoning -> Qwen3 with thinking; vision -> VL; ...). ``DEVICE_FORMATS``: which weight
formats and backend a device runs a variant in (CPU: GGUF quants on llama.cpp for text models,
transformers bf16 for vision/audio; CUDA: bf16/fp8/int8/nf4 on transformers). A variant gets the
best-quality format that fits the memory budget at a usable speed; variants are ranked by tier,
then by size (bigger is better once it fits and is fast enough).
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
from qwenkit.catalog.schema import Generation, Modality, Specialisation, Thinking, Variant
from qwenkit.errors import QwenkitError, UsageError

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
class Tier:
    """One step of a task's preference order: which variants, why, and the thinking mode to use."""

    accepts: Callable[[Variant], bool]
    why: str
    thinking: bool | None = None


@dataclass(frozen=True)
class TaskRule:
    description: str
    tiers: tuple[Tier, ...]


def _text_instruct(v: Variant) -> bool:
    return v.instruct and v.modalities == (Modality.TEXT,)


def _family(
    *generations: Generation, spec: Specialisation = Specialisation.GENERAL
) -> Callable[[Variant], bool]:
    return lambda v: _text_instruct(v) and v.generation in generations and v.specialisation is spec


def _thinking(v: Variant) -> bool:
    return _text_instruct(v) and v.thinking is not Thinking.NONE


def _modality(m: Modality, spec: Specialisation, *generations: Generation) -> Callable[[Variant], bool]:
    return lambda v: (
        v.instruct and m in v.modalities and v.specialisation is spec and v.generation in generations
    )


_Q3, _Q25, _Q2 = Generation.QWEN3, Generation.QWEN2_5, Generation.QWEN2
_CODER, _MATH = Specialisation.CODER, Specialisation.MATH
_VL, _AUDIO = Specialisation.VL, Specialisation.AUDIO

TASKS: Mapping[str, TaskRule] = MappingProxyType(
    {
        "chat": TaskRule("general assistant chat", (
            Tier(_family(_Q3), "Qwen3: the current general model, thinking can be switched on per turn"),
            Tier(_family(_Q25), "Qwen2.5-Instruct: strong general chat without a thinking mode"),
        )),
        "code": TaskRule("writing and completing code", (
            Tier(_family(_Q25, spec=_CODER), "Qwen2.5-Coder: Qwen's code model (FIM, repo-level)"),
            Tier(_family(_Q3), "Qwen3: general model, strong at code with thinking", thinking=True),
        )),
        "math": TaskRule("mathematics", (
            Tier(_thinking, "Qwen3 with thinking: step-by-step math", thinking=True),
            Tier(_family(_Q25, spec=_MATH), "Qwen2.5-Math: math specialist (CoT / tool use)"),
            Tier(_family(_Q2, spec=_MATH), "Qwen2-Math: earlier math specialist"),
        )),
        "reasoning": TaskRule("hard multi-step reasoning", (
            Tier(_thinking, "Qwen3 with thinking: reasons before it answers", thinking=True),
        )),
        "vision": TaskRule("images and video", (
            Tier(_modality(Modality.IMAGE, _VL, _Q25), "Qwen2.5-VL: images, documents, video"),
            Tier(_modality(Modality.IMAGE, _VL, _Q2), "Qwen2-VL: earlier vision-language model"),
        )),
        "audio": TaskRule("speech and sound", (
            Tier(_modality(Modality.AUDIO, _AUDIO, _Q2), "Qwen2-Audio: speech, sound, voice chat"),
        )),
        "multilingual": TaskRule("many languages", (
            Tier(_family(_Q3), "Qwen3: trained on 119 languages and dialects"),
            Tier(_family(_Q25), "Qwen2.5: 29+ languages"),
        )),
    }
)


@dataclass(frozen=True)
class FormatOption:
    quant: Quant
    backend: str  # a name in qwenkit.engine.registry.BACKENDS
    official: bool  # an official file exists (GGUF) / the checkpoint is the released one (HF)


# Architectures llama.cpp runs for text (qwen, qwen2, qwen2moe, qwen3, qwen3moe).
LLAMA_CPP_TEXT_GENERATIONS = frozenset(Generation)
CPU_GGUF_LADDER = ("q8_0", "q6_k", "q5_k_m", "q4_k_m", "q4_0")  # best quality first
CUDA_HF_LADDER = ("bf16", "fp8", "int8", "nf4")


def _cpu_options(v: Variant, compute_capability: tuple[int, int] | None) -> list[FormatOption]:
    if v.modalities != (Modality.TEXT,) or v.generation not in LLAMA_CPP_TEXT_GENERATIONS:
        return [FormatOption(QUANTS["bf16"], "transformers", True)]  # vision / audio: transformers
    official = {name.lower() for name in v.gguf_files}
    names = [q for q in CPU_GGUF_LADDER if q in official] or list(CPU_GGUF_LADDER)
    return [FormatOption(QUANTS[q], "llamacpp", q in official) for q in names]


def _cuda_options(v: Variant, compute_capability: tuple[int, int] | None) -> list[FormatOption]:
    cc = compute_capability or (0, 0)
    return [
        FormatOption(QUANTS[q], "transformers", q == "bf16")
        for q in CUDA_HF_LADDER
        if cc >= QUANTS[q].min_compute_capability  # unknown GPU: nothing that needs a newer one
    ]


DEVICE_FORMATS: Mapping[str, Callable[[Variant, tuple[int, int] | None], list[FormatOption]]] = (
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

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise UsageError(f"unknown task {self.task!r}; choose one of: {', '.join(TASKS)}", param="task")
        if self.device not in DEVICE_FORMATS:
            raise UsageError(f"unknown device {self.device!r}; choose cpu or cuda", param="device")
        if self.context < 1:
            raise UsageError(f"context must be a positive token count, not {self.context}", param="context")
        if self.memory < 1 or self.bandwidth <= 0 or self.limit < 1:
            raise UsageError("memory, bandwidth and limit must be positive", param="memory")


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


def _estimate(v: Variant, opt: FormatOption, context: int) -> MemoryEstimate:
    return estimate_memory(
        v.arch, opt.quant, context, flash_attention=_FLASH_ATTENTION, tied_output_copy=_tied_copy(v, opt)
    )


def _candidate(v: Variant, opt: FormatOption, req: SelectRequest, tier: int, rule: Tier) -> Recommendation:
    est = _estimate(v, opt, req.context)
    speed = estimate_decode_speed(
        v.arch, opt.quant, req.bandwidth, context_tokens=req.context // 2, tied_output_copy=_tied_copy(v, opt)
    )
    thinking = rule.thinking if v.thinking is not Thinking.NONE else None
    return Recommendation(v, opt, est, speed.tokens_per_s, tier, rule.why, thinking)


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
    if rec.option.backend == "llamacpp" and not rec.option.official:
        parts.append(f"no official {rec.option.quant.label} GGUF: convert with llama.cpp")
    if rec.option.backend == "transformers" and device == "cpu":
        parts.append("llama.cpp path is text-only here, so transformers on CPU (slow)")
    if not rec.usable:
        parts.append(f"slow: under {MIN_USABLE_TOKENS_PER_S:g} tok/s")
    return "; ".join(parts)


def select(variants: Iterable[Variant], req: SelectRequest) -> Selection:
    """Ranked recommendations for ``req``; empty, with a message saying what would fit, if none."""
    suitable = _suitable(variants, req)
    ranked: list[Recommendation] = []
    all_cands: list[Recommendation] = []
    for v, tier_index, tier in suitable:
        options = DEVICE_FORMATS[req.device](v, req.compute_capability)
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
