"""Typed events produced by the output parser.

A generation is a stream of these: reasoning and content arrive as text deltas, a tool call arrives
whole once its closing marker is seen, and ``Done`` is always last. Frozen, so a consumer may keep
them without copying.
"""

from __future__ import annotations

import json
import random
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TypeAlias

from qwenkit.errors import UsageError


@dataclass(frozen=True)
class ReasoningDelta:
    text: str


@dataclass(frozen=True)
class ContentDelta:
    text: str


@dataclass(frozen=True)
class ToolCall:
    """One complete tool call; ``arguments`` is a JSON object as a string, as OpenAI sends it."""

    id: str
    name: str
    arguments: str
    index: int

    def arguments_dict(self) -> dict[str, object]:
        value = json.loads(self.arguments)
        if not isinstance(value, dict):  # cannot happen for parser-made calls; guards hand-made ones
            raise UsageError(f"tool call {self.id} arguments are not a JSON object")
        return value


@dataclass(frozen=True)
class Done:
    """Always the last event: why the generation ended (stop, length, tool_calls, ...)."""

    finish_reason: str


Event: TypeAlias = ReasoningDelta | ContentDelta | ToolCall | Done


@dataclass(frozen=True)
class ParsedOutput:
    """A whole generation, split: what ``parse_output`` returns and what a stream adds up to."""

    reasoning: str
    content: str
    tool_calls: tuple[ToolCall, ...]
    finish_reason: str
    events: tuple[Event, ...] = field(repr=False, compare=False, default=())

    @property
    def truncated_in_reasoning(self) -> bool:
        """True when the output ended (e.g. on the length limit) before thinking was closed."""
        return self.finish_reason == "length" and not self.content and not self.tool_calls

    @classmethod
    def from_events(cls, events: Iterable[Event]) -> ParsedOutput:
        kept = tuple(events)
        reasoning = "".join(e.text for e in kept if isinstance(e, ReasoningDelta))
        content = "".join(e.text for e in kept if isinstance(e, ContentDelta))
        calls = tuple(e for e in kept if isinstance(e, ToolCall))
        done = [e for e in kept if isinstance(e, Done)]
        if len(done) != 1 or not isinstance(kept[-1], Done):
            raise UsageError("an event stream must end with exactly one Done event")
        return cls(reasoning, content, calls, done[0].finish_reason, kept)


def coalesce(events: Iterable[Event]) -> list[Event]:
    """Merge neighbouring deltas of the same kind: two streams that differ only in chunking compare equal."""
    out: list[Event] = []
    for event in events:
        last = out[-1] if out else None
        if isinstance(event, ReasoningDelta) and isinstance(last, ReasoningDelta):
            out[-1] = ReasoningDelta(last.text + event.text)
        elif isinstance(event, ContentDelta) and isinstance(last, ContentDelta):
            out[-1] = ContentDelta(last.text + event.text)
        else:
            out.append(event)
    return out


class ToolCallIds:
    """Makes ``call_<hex>`` ids; random by default, reproducible when given a seed (tests, replays)."""

    def __init__(self, *, seed: int | None = None, prefix: str = "call_", hex_chars: int = 24) -> None:
        if hex_chars < 1:
            raise UsageError("tool call ids need at least one hex character")
        self._rng = random.Random(seed) if seed is not None else None
        self._prefix = prefix
        self._bits = hex_chars * 4
        self._hex_chars = hex_chars

    def next_id(self) -> str:
        value = self._rng.getrandbits(self._bits) if self._rng else secrets.randbits(self._bits)
        return f"{self._prefix}{value:0{self._hex_chars}x}"
