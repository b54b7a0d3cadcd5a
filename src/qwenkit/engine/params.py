"""What a chat request may ask for, and how unset values take Qwen's recommended defaults."""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from qwenkit.catalog.schema import SamplingDefaults
from qwenkit.chat.messages import normalize_tools
from qwenkit.chat.template import TemplateFamily
from qwenkit.engine.sampling import SamplingOptions
from qwenkit.engine.stops import validate_stops
from qwenkit.engine.types import SamplingParams
from qwenkit.errors import UsageError

# Qwen's published presets, used when a model is not in the catalog (a bare GGUF, say).
QWEN3_THINKING = SamplingDefaults(temperature=0.6, top_p=0.95, top_k=20, min_p=0.0)
QWEN3_NON_THINKING = SamplingDefaults(temperature=0.7, top_p=0.8, top_k=20, min_p=0.0)
QWEN2_5_INSTRUCT = SamplingDefaults(temperature=0.7, top_p=0.8, top_k=20, repetition_penalty=1.05)

# Qwen's early-stop text for a thinking budget (Qwen3 docs); </think> is added as its token.
THINKING_EARLY_STOP = (
    "\n\nConsidering the limited time by the user, I have to give the solution based on the thinking "
    "directly now.\n"
)


class ToolChoiceMode(str, enum.Enum):
    """OpenAI's tool_choice words: may call (auto), must not (none), must call one or more (required)."""

    AUTO = "auto"
    NONE = "none"
    REQUIRED = "required"


@dataclass(frozen=True)
class NamedToolChoice:
    """tool_choice naming one function: the answer must be one call of it."""

    name: str


ToolChoice: TypeAlias = ToolChoiceMode | NamedToolChoice


def tool_choice_from(value: Any) -> ToolChoice:
    """``"auto"``, ``"none"``, ``"required"``, ``{"type": "function", "function": {"name": ...}}``."""
    if isinstance(value, (ToolChoiceMode, NamedToolChoice)):
        return value
    if isinstance(value, str):
        try:
            return ToolChoiceMode(value)
        except ValueError:
            pass
    elif isinstance(value, Mapping):
        fn = value.get("function")
        name = fn.get("name") if isinstance(fn, Mapping) else None
        if isinstance(name, str) and name:
            return NamedToolChoice(name)
    raise UsageError(
        "tool_choice must be 'auto', 'none', 'required' or {'type': 'function', 'function': {'name': ...}}",
        param="tool_choice",
    )


@dataclass(frozen=True)
class ChatParams:
    """Per-request generation options; ``None`` means "the model's recommended value"."""

    sampling: SamplingOptions = field(default_factory=SamplingOptions)
    max_tokens: int | None = None
    stop: tuple[str, ...] = ()
    enable_thinking: bool | None = None
    thinking_budget: int | None = None
    thinking_loop_guard: bool = False
    tools: tuple[Mapping[str, Any], ...] | None = None
    tool_choice: ToolChoice = ToolChoiceMode.AUTO
    logprobs: bool = False
    top_logprobs: int = 0
    grammar: str | None = None
    ignore_eos: bool = False
    extra_stop_token_ids: frozenset[int] = field(default_factory=frozenset)
    adapter: str | None = None  # a LoRA adapter the backend serves by name; None: the base model
    continue_final_message: bool = False  # the answer goes on from the final (assistant) message

    def __post_init__(self) -> None:
        object.__setattr__(self, "stop", validate_stops(self.stop))
        if self.thinking_budget is not None and (
            not isinstance(self.thinking_budget, int) or self.thinking_budget < 0
        ):
            raise UsageError("thinking_budget must be a non-negative integer", param="thinking_budget")
        if self.max_tokens is not None and (not isinstance(self.max_tokens, int) or self.max_tokens < 1):
            raise UsageError("max_tokens must be a positive integer", param="max_tokens")
        object.__setattr__(self, "tool_choice", tool_choice_from(self.tool_choice))
        if self.forces_tool_call:
            self._check_forced_choice()

    def _check_forced_choice(self) -> None:
        if not self.tools:
            raise UsageError("tool_choice requires tools", param="tool_choice")
        named = self.tool_choice
        if isinstance(named, NamedToolChoice) and named.name not in {
            spec.name for spec in normalize_tools(list(self.tools)) or ()
        }:
            raise UsageError(
                f"tool_choice names function {named.name!r}, which is not in tools",
                param="tool_choice.function.name",
            )
        if self.grammar is None:  # nothing else can force a call
            raise UsageError(
                "tool_choice 'required' or a named function needs a grammar that forces the call "
                "(the server builds one from the tools)",
                param="tool_choice",
            )

    @property
    def forces_tool_call(self) -> bool:
        return self.tool_choice is ToolChoiceMode.REQUIRED or isinstance(self.tool_choice, NamedToolChoice)

    @property
    def offered_tools(self) -> tuple[Mapping[str, Any], ...] | None:
        """The tools the model sees: none when tool_choice is ``none``."""
        return self.tools if self.tools and self.tool_choice is not ToolChoiceMode.NONE else None

    @property
    def json_tool_answers(self) -> bool:
        """A whole answer that is a JSON call may count as one: tools offered, ``auto``, no grammar."""
        return bool(self.offered_tools) and self.tool_choice is ToolChoiceMode.AUTO and self.grammar is None

    @classmethod
    def from_kwargs(cls, **kwargs: Any) -> ChatParams:
        """Build from keyword arguments (sampling ones flat: ``temperature=0``), rejecting names that
        are not options."""
        knobs = {k: kwargs.pop(k) for k in list(kwargs) if k in SamplingOptions.model_fields}
        if knobs:
            kwargs["sampling"] = SamplingOptions.create(**knobs)
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(kwargs) - names)
        if unknown:
            raise UsageError(f"unknown generation option(s): {', '.join(unknown)}", param=unknown[0])
        if isinstance(kwargs.get("stop"), str):
            kwargs["stop"] = (kwargs["stop"],)
        for key in ("stop", "tools"):
            if isinstance(kwargs.get(key), list):
                kwargs[key] = tuple(kwargs[key])
        return cls(**kwargs)

    def with_seed(self, seed: int | None) -> ChatParams:
        return dataclasses.replace(self, sampling=self.sampling.model_copy(update={"seed": seed}))


def _pick(value: Any, default: Any) -> Any:
    return default if value is None else value


def resolve_sampling(
    params: ChatParams,
    defaults: SamplingDefaults,
    *,
    max_tokens_limit: int,
    stop_token_ids: frozenset[int],
) -> SamplingParams:
    """Fill unset values from the model's preset; cap max_tokens at what the context leaves."""
    if max_tokens_limit < 1:
        raise UsageError("the prompt leaves no room in the context for an answer", param="messages")
    if params.max_tokens is not None and params.max_tokens > max_tokens_limit:
        raise UsageError(
            f"max_tokens ({params.max_tokens}) is more than the context leaves after the prompt "
            f"({max_tokens_limit})",
            param="max_tokens",
        )
    knobs = params.sampling
    return SamplingParams(
        temperature=_pick(knobs.temperature, defaults.temperature),
        top_p=_pick(knobs.top_p, defaults.top_p),
        top_k=_pick(knobs.top_k_or_off, defaults.top_k),
        min_p=_pick(knobs.min_p, defaults.min_p),
        presence_penalty=_pick(knobs.presence_penalty, defaults.presence_penalty),
        frequency_penalty=_pick(knobs.frequency_penalty, 0.0),
        repetition_penalty=_pick(knobs.repetition_penalty, defaults.repetition_penalty),
        seed=knobs.seed,
        max_tokens=_pick(params.max_tokens, max_tokens_limit),
        stop_token_ids=stop_token_ids | params.extra_stop_token_ids,
        ignore_eos=params.ignore_eos,
        logprobs=params.logprobs,
        top_logprobs=params.top_logprobs,
        grammar=params.grammar,
        logit_bias=knobs.bias_pairs(),
        adapter=params.adapter,
    )


def fallback_defaults(template_family: TemplateFamily | None, thinking: bool | None) -> SamplingDefaults:
    """Presets for a model the catalog does not know, chosen by its chat template family."""
    if template_family is TemplateFamily.QWEN3:
        return QWEN3_NON_THINKING if thinking is False else QWEN3_THINKING
    return QWEN2_5_INSTRUCT


def stop_strings(values: Sequence[str] | str | None) -> tuple[str, ...]:
    if values is None:
        return ()
    return validate_stops((values,) if isinstance(values, str) else tuple(values))
