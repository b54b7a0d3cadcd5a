"""Chat templates: which one applies, compiled once per source, rendered inside the sandbox.

A model's own template (tokenizer_config.json, or ``tokenizer.chat_template`` in GGUF metadata) wins;
the built-in official Qwen2.5 and Qwen3 templates serve models that ship none.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from functools import cache, lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2

from qwenkit.chat.sandbox import RenderBudget, build_environment, run_with_budget
from qwenkit.chat.tokenizer import Tokenizer
from qwenkit.errors import ModelFormatError, TemplateError, UsageError

TURN_START = "<|im_start|>"

# Built-in template name -> file in qwenkit/chat/templates.
BUILTIN_TEMPLATES: Mapping[str, str] = {
    "qwen2.5": "qwen2_5.jinja",
    "qwen3": "qwen3.jinja",
    "qwen2.5-vl": "qwen2_5_vl.jinja",  # Qwen2-VL and Qwen2.5-VL (chat_template.json; no tools)
}

GGUF_TEMPLATE_KEY = "tokenizer.chat_template"


@cache
def builtin_template(name: str) -> str:
    """The source of a built-in template by name (``qwen2.5``, ``qwen3``, ``qwen2.5-vl``)."""
    filename = BUILTIN_TEMPLATES.get(name)
    if filename is None:
        known = ", ".join(sorted(BUILTIN_TEMPLATES))
        raise UsageError(f"unknown built-in chat template {name!r}; known: {known}", param="template")
    return resources.files("qwenkit.chat").joinpath("templates", filename).read_text(encoding="utf-8")


def default_builtin_for(tokenizer: Tokenizer) -> str:
    """Qwen3's vocabulary adds <think>; Qwen2.5's does not. Pick the template family accordingly."""
    return "qwen3" if "<think>" in tokenizer.special_tokens else "qwen2.5"


def resolve_template(template: str | None, tokenizer: Tokenizer) -> str:
    """``template`` is a built-in name, Jinja source, or None for the model's own (else a built-in)."""
    if template is None:
        own = tokenizer.chat_template
        return own if own else builtin_template(default_builtin_for(tokenizer))
    if not isinstance(template, str) or not template.strip():
        raise UsageError("template must be a built-in template name or Jinja source", param="template")
    if template in BUILTIN_TEMPLATES:
        return builtin_template(template)
    if "{{" not in template and "{%" not in template:
        known = ", ".join(sorted(BUILTIN_TEMPLATES))
        raise UsageError(
            f"template {template!r} is neither a built-in ({known}) nor Jinja source", param="template"
        )
    return template


def gguf_chat_template(path: str | Path) -> str | None:
    """The chat template embedded in a GGUF file's metadata, if any."""
    try:
        from gguf import GGUFReader
    except ImportError as exc:  # gguf is a base dependency; this guards broken installs
        from qwenkit.errors import MissingDependencyError

        raise MissingDependencyError.for_extra("gguf", "llama") from exc
    try:
        reader = GGUFReader(str(path))
    except (OSError, ValueError) as exc:
        raise ModelFormatError(f"cannot read GGUF metadata from {path}: {exc}") from exc
    field = reader.fields.get(GGUF_TEMPLATE_KEY)
    if field is None:
        return None
    value = field.contents()
    return value if isinstance(value, str) and value else None


@dataclass(frozen=True)
class TemplateFeatures:
    """What a template does with thinking, read from its source once."""

    supports_thinking: bool  # reads enable_thinking or emits <think>
    reads_reasoning: bool  # renders assistant reasoning_content (and splits inline <think> itself)


@lru_cache(maxsize=64)
def template_features(source: str) -> TemplateFeatures:
    return TemplateFeatures(
        supports_thinking="enable_thinking" in source or "<think>" in source,
        reads_reasoning="reasoning_content" in source,
    )


class TemplateFamily(str, Enum):
    """What kind of chat template a model ships: decides sampling presets and thinking controls."""

    QWEN3 = "qwen3"  # ChatML with a thinking mode (enable_thinking, <think>)
    QWEN2_5 = "qwen2.5"  # ChatML with Qwen2.5's conventions (default system prompt, <tools>/<tool_call>)
    CHATML = "chatml-other"  # ChatML of another kind
    OTHER = "other"


def classify_template(source: str | None) -> TemplateFamily | None:
    """The one classifier of chat templates (None: the model ships no template)."""
    if not source:
        return None
    if TURN_START not in source:
        return TemplateFamily.OTHER
    if template_features(source).supports_thinking or "reasoning_content" in source:
        return TemplateFamily.QWEN3
    qwen_system = "You are Qwen, created by Alibaba Cloud" in source
    if qwen_system or ("<tools>" in source and "<tool_call>" in source):
        return TemplateFamily.QWEN2_5
    return TemplateFamily.CHATML


@lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    return build_environment()


@lru_cache(maxsize=64)
def compile_template(source: str) -> jinja2.Template:
    """Parse and compile once per distinct source; syntax errors become ``TemplateError``."""
    try:
        return _environment().from_string(source)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(f"chat template has a syntax error at line {exc.lineno}: {exc.message}") from exc
    except jinja2.exceptions.SecurityError as exc:
        raise TemplateError(f"chat template is not allowed: {exc}") from exc


def _stream(
    template: jinja2.Template, variables: Mapping[str, Any], budget: RenderBudget
) -> Callable[[], str]:
    def run() -> str:
        parts: list[str] = []
        size = 0
        for chunk in template.generate(**variables):
            size += len(chunk)
            budget.check_size(size, "rendered prompt")
            parts.append(chunk)
        return "".join(parts)

    return run


def render(source: str, variables: Mapping[str, Any], budget: RenderBudget | None = None) -> str:
    """Render ``source`` with ``variables`` in the sandbox; every failure is a ``TemplateError``."""
    template = compile_template(source)
    budget = budget or RenderBudget()
    try:
        return run_with_budget(budget, _stream(template, variables, budget))
    except TemplateError:
        raise
    except jinja2.exceptions.SecurityError as exc:
        raise TemplateError(f"chat template tried to leave its sandbox: {exc}") from exc
    except jinja2.exceptions.UndefinedError as exc:
        raise TemplateError(f"chat template used an undefined value: {exc.message}") from exc
    except jinja2.exceptions.TemplateError as exc:  # raise_exception(...) in the template
        raise TemplateError(f"chat template rejected the conversation: {exc.message}") from exc
    except RecursionError as exc:
        raise TemplateError("chat template recursed too deeply") from exc
    except MemoryError as exc:
        raise TemplateError("chat template ran out of memory") from exc
    except (
        TypeError,
        ValueError,
        KeyError,
        IndexError,
        AttributeError,
        ZeroDivisionError,
        OverflowError,
    ) as exc:
        raise TemplateError(f"chat template failed to render: {type(exc).__name__}: {exc}") from exc
