"""What ``run`` and ``chat`` tell people besides the answer: ignored thinking flags, cut answers.

These go to stderr as single lines, so that stdout stays the answer in text mode too.
"""

from __future__ import annotations

from dataclasses import dataclass

from qwenkit.chat.template import resolve_template, template_features
from qwenkit.engine.chat_run import ChatResult
from qwenkit.engine.llm import LLM
from qwenkit.engine.types import FinishReason

NO_THINKING = "this model's chat template has no thinking mode"


def can_think(llm: LLM) -> bool:
    """Whether the template the model renders with (its own, or the one it was loaded with) thinks."""
    return template_features(resolve_template(llm.template, llm.tokenizer)).supports_thinking


@dataclass(frozen=True)
class ThinkingRequest:
    """The thinking options to send, after dropping those the model cannot honour."""

    enable: bool | None
    budget: int | None
    warnings: tuple[str, ...] = ()

    @classmethod
    def for_model(cls, llm: LLM, enable: bool | None, budget: int | None) -> ThinkingRequest:
        if can_think(llm):
            return cls(enable, budget)
        flags = (("--think", enable is True), ("--thinking-budget", bool(budget)))
        asked = [flag for flag, on in flags if on]
        if not asked:
            return cls(None, None)
        verb = "is" if len(asked) == 1 else "are"
        return cls(None, None, (f"{' and '.join(asked)} {verb} ignored: {NO_THINKING}",))


def cut_notice(result: ChatResult, max_tokens: int | None, context: int) -> str | None:
    """'[answer cut at --max-tokens 16]' when the answer stopped on length, else None."""
    if result.finish_reason != FinishReason.LENGTH.value:
        return None
    if max_tokens is not None:
        return f"[answer cut at --max-tokens {max_tokens}]"
    return f"[answer cut: the context of {context} tokens is full; raise --context]"
