"""What every evaluation task provides: items with their chat prompt, and a grader for one answer."""

from __future__ import annotations

import enum
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

Messages = Sequence[Mapping[str, Any]]


class TaskName(str, enum.Enum):
    HUMANEVAL = "humaneval"
    GSM8K = "gsm8k"


class Metric(str, enum.Enum):
    """What a task's score is called: code passes its tests, or a final answer is right."""

    PASS_AT = "pass@"
    ACCURACY = "accuracy"


@dataclass(frozen=True)
class Item:
    """One problem: its id, the chat messages sent, and what grading needs (tests, the answer).

    ``prefill`` is the start of the answer, written for the model: it is sent as a final assistant
    message that the model continues (unless it thinks first), and graded as part of the answer."""

    id: str
    messages: tuple[Mapping[str, str], ...]
    reference: Mapping[str, Any]
    prefill: str = ""

    def conversation(self, prefill: str) -> tuple[Mapping[str, str], ...]:
        """The messages sent, ending with ``prefill`` as the assistant message to continue (if any)."""
        return (*self.messages, {"role": "assistant", "content": prefill}) if prefill else self.messages

    @property
    def prompt_hash(self) -> str:
        """sha256 of the messages and pre-fill: a resumed run redoes an item whose prompt changed."""
        text = json.dumps(list(self.conversation(self.prefill)), sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class Grade:
    correct: bool
    reason: str  # "passed", "wrong answer 17 (expected 18)", "AssertionError: ...", "timeout after 10 s"
    extracted: str | None  # the code or final answer that was graded


@dataclass(frozen=True)
class Published:
    """A figure from a model's report, shown next to ours (scores in percent)."""

    score: float
    source: str


class Task(Protocol):
    name: TaskName
    metric: Metric
    max_tokens: int  # default answer length limit (without thinking)

    def items(self) -> list[Item]: ...

    def grade(self, item: Item, answer: str) -> Grade:
        """Grade one answer; may run code (then it blocks: call it from a worker thread)."""

    def published(self, model: str) -> Published | None: ...
