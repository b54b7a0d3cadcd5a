"""The tasks ``qwenkit select`` knows and, for each, which Qwen models suit it, best first.

A task is a tuple of tiers; a tier accepts variants by generation, specialisation and modality and
says why. Only generative text specialisations (general, coder, math) answer text tasks: embedding
and reranker models never do, and VL / audio / omni models only serve the media tasks.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from qwenkit.catalog.schema import Generation, Modality, Specialisation, Thinking, Variant


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
    media: bool = False  # images / audio go in: the model's own encoders must run (transformers)


# Specialisations that generate text for text tasks. Embedding and reranker models produce vectors
# and scores, VL / audio / omni models belong to their media tasks: none of them is in this set.
TEXT_GENERATION_SPECIALISATIONS = frozenset(
    {Specialisation.GENERAL, Specialisation.CODER, Specialisation.MATH}
)


def _text_instruct(v: Variant) -> bool:
    return (
        v.instruct and Modality.TEXT in v.modalities and v.specialisation in TEXT_GENERATION_SPECIALISATIONS
    )


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


def _either(*rules: Callable[[Variant], bool]) -> Callable[[Variant], bool]:
    return lambda v: any(rule(v) for rule in rules)


_Q35, _Q3, _Q25, _Q2 = Generation.QWEN3_5, Generation.QWEN3, Generation.QWEN2_5, Generation.QWEN2
_GENERAL, _CODER, _MATH = Specialisation.GENERAL, Specialisation.CODER, Specialisation.MATH
_VL, _AUDIO, _OMNI = Specialisation.VL, Specialisation.AUDIO, Specialisation.OMNI
_IMAGE, _SOUND = Modality.IMAGE, Modality.AUDIO

TASKS: Mapping[str, TaskRule] = MappingProxyType(
    {
        "chat": TaskRule("general assistant chat", (
            Tier(_family(_Q35, _Q3), "Qwen3.5 / Qwen3: the current general models"),
            Tier(_family(_Q25), "Qwen2.5-Instruct: strong general chat without a thinking mode"),
        )),
        "code": TaskRule("writing and completing code", (
            Tier(_family(_Q3, spec=_CODER), "Qwen3-Coder: agentic code model (256K context, FIM)"),
            Tier(_family(_Q25, spec=_CODER), "Qwen2.5-Coder: Qwen's code model (FIM, repo-level)"),
            Tier(_family(_Q35, _Q3), "Qwen3.5 / Qwen3: general models, strong at code with thinking",
                 thinking=True),
        )),
        "math": TaskRule("mathematics", (
            Tier(_thinking, "thinking model (Qwen3.5, Qwen3, QwQ): step-by-step math", thinking=True),
            Tier(_family(_Q25, spec=_MATH), "Qwen2.5-Math: math specialist (CoT / tool use)"),
            Tier(_family(_Q2, spec=_MATH), "Qwen2-Math: earlier math specialist"),
        )),
        "reasoning": TaskRule("hard multi-step reasoning", (
            Tier(_thinking, "thinking model (Qwen3.5, Qwen3, QwQ): reasons before it answers",
                 thinking=True),
        )),
        "vision": TaskRule("images and video", (
            Tier(_either(_modality(_IMAGE, _VL, _Q3), _modality(_IMAGE, _GENERAL, _Q35)),
                 "Qwen3-VL / Qwen3.5: images, documents, video"),
            Tier(_modality(_IMAGE, _VL, _Q25), "Qwen2.5-VL: images, documents, video"),
            Tier(_modality(_IMAGE, _VL, _Q2), "Qwen2-VL: earlier vision-language model"),
        ), media=True),
        "audio": TaskRule("speech and sound", (
            Tier(_modality(_SOUND, _OMNI, _Q25), "Qwen2.5-Omni: speech, sound, images and video in"),
            Tier(_modality(_SOUND, _AUDIO, _Q2), "Qwen2-Audio: speech, sound, voice chat"),
        ), media=True),
        "multilingual": TaskRule("many languages", (
            Tier(_family(_Q35, _Q3), "Qwen3.5 (201 languages) / Qwen3 (119 languages and dialects)"),
            Tier(_family(_Q25), "Qwen2.5: 29+ languages"),
        )),
    }
)
