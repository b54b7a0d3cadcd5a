"""Hermes-style calls (Qwen2 and later), and Qwen2.5-Coder's JSON-only answers.

``hermes``: ``<tool_call>\\n{"name": ..., "arguments": {...}}\\n</tool_call>`` blocks. A block is a
call whatever name it gives, declared or not (as in vLLM): the markers are the model's explicit
choice, and the client, which knows its tools, decides what to do with an unknown one.

``hermes-json``: the same blocks, and, when the request allows it (tools offered, tool_choice
``auto``, no grammar), an answer that is exactly one JSON call or a list of them, bare or in one
fenced block: what Qwen2.5-Coder writes instead of a block. Such an answer is a call only if every
item names a declared tool and its arguments validate against that tool's schema; anything else is
content. While the answer can still become such a call it is held back, so a stream and a whole
parse always agree.
"""

from __future__ import annotations

import enum
import json
import re
from typing import Any

from qwenkit.chat.tool_parsers.base import (
    BlockParser,
    ParsedCall,
    Piece,
    ToolContext,
    ToolSet,
    call_from_object,
    hermes_body,
    strict_json,
)
from qwenkit.chat.tool_parsers.json_prefix import JsonPrefixScanner, Scan

FENCE = "```"
# A fence opener as far as it has been read: ``` then an optional "json" info string.
_FENCE_OPEN_PREFIX = re.compile(r"`{1,3}|```[ \t]*(?:j(?:s(?:o(?:n[ \t]*)?)?)?)?\r?", re.IGNORECASE)
_FENCE_LINE_MAX = 32
_WHITESPACE_RUN = re.compile(r"[ \t\r\n]+")


class HermesParser(BlockParser):
    def __init__(self, context: ToolContext | None = None) -> None:
        del context
        super().__init__(hermes_body)


class _Stage(enum.Enum):
    LEAD = "lead"  # only whitespace so far
    FENCE_LINE = "fence_line"  # reading the opening fence line
    JSON = "json"  # inside the candidate JSON value
    TRAIL = "trail"  # after the value: whitespace (and, when fenced, one closing fence)
    REJECTED = "rejected"  # cannot be a JSON-only answer: plain hermes from here on


class JsonAnswer:
    """Tracks whether the answer so far can still be one JSON value, bare or fenced."""

    def __init__(self) -> None:
        self.stage = _Stage.LEAD
        self.fenced = False
        self._line = ""  # the fence line so far
        self._closing = ""  # TRAIL: backticks of the closing fence so far
        self._closed = False  # TRAIL: the closing fence is complete
        self._scanner = JsonPrefixScanner()

    def feed(self, text: str) -> None:
        pos = 0
        while pos < len(text) and self.stage is not _Stage.REJECTED:
            pos = self._step(text, pos)

    def _step(self, text: str, pos: int) -> int:
        if self.stage is _Stage.JSON:
            scan = self._scanner.feed(text[pos:])
            if scan is Scan.INVALID:
                self.stage = _Stage.REJECTED
                return len(text)
            if scan is Scan.MORE:
                return len(text)
            self.stage = _Stage.TRAIL
            return pos + self._scanner.end
        if self._takes_space():
            space = _WHITESPACE_RUN.match(text, pos)
            if space is not None:
                return space.end()
        char = text[pos]
        if self.stage is _Stage.LEAD:
            self._lead(char)
        elif self.stage is _Stage.FENCE_LINE:
            self._fence_line(char)
        else:
            self._trail(char)
        return pos + 1

    def _takes_space(self) -> bool:
        """Whitespace is free before the value, after it, and around the closing fence (not inside it)."""
        if self.stage is _Stage.LEAD:
            return True
        return self.stage is _Stage.TRAIL and (self._closed or not self._closing)

    def _lead(self, char: str) -> None:
        if char == "`" and not self.fenced:
            self.stage, self._line = _Stage.FENCE_LINE, char
        elif char in "{[":
            self.stage = _Stage.JSON
            self._scanner.feed(char)
        else:
            self.stage = _Stage.REJECTED

    def _fence_line(self, char: str) -> None:
        if char == "\n" and self._line.startswith(FENCE):
            self.stage, self.fenced = _Stage.LEAD, True
            return
        self._line += char
        if len(self._line) > _FENCE_LINE_MAX or not _FENCE_OPEN_PREFIX.fullmatch(self._line):
            self.stage = _Stage.REJECTED

    def _trail(self, char: str) -> None:
        if char == "`" and self.fenced and not self._closed:
            self._closing += char
            self._closed = self._closing == FENCE
            return
        self.stage = _Stage.REJECTED

    def complete(self) -> bool:
        """The answer is a whole JSON value, and a fenced one has its closing fence."""
        return self.stage is _Stage.TRAIL and (self._closed or not self.fenced)


def _json_text(answer: str) -> str:
    text = answer.strip()
    if text.startswith(FENCE):
        text = text[text.index("\n") + 1 : -len(FENCE)]
    return text


def answer_calls(answer: str, tools: ToolSet) -> list[ParsedCall] | None:
    """The calls a JSON-only answer makes, or None unless every item is a valid declared call."""
    try:
        value: Any = strict_json(_json_text(answer))
    except (ValueError, RecursionError):
        return None
    items = value if isinstance(value, list) else [value]
    calls: list[ParsedCall] = []
    for item in items:
        call = call_from_object(item, allow_extra_keys=False)
        tool = tools.get(call.name) if call is not None else None
        if call is None or tool is None or not tool.accepts(json.loads(call.arguments)):
            return None
        calls.append(call)
    return calls or None


class HermesJsonParser:
    """``hermes-json``: Hermes blocks, plus a JSON-only answer when ``context.json_answers``."""

    def __init__(self, context: ToolContext) -> None:
        self._tools = context.tools
        self._blocks = HermesParser()
        self._answer = JsonAnswer()
        self._held: list[str] = []
        if not (context.json_answers and context.tools):
            self._answer.stage = _Stage.REJECTED

    def feed(self, text: str) -> list[Piece]:
        if self._answer.stage is _Stage.REJECTED and not self._held:
            return self._blocks.feed(text)
        self._held.append(text)
        self._answer.feed(text)
        if self._answer.stage is _Stage.REJECTED:
            return self._release()
        return []

    def finish(self) -> list[Piece]:
        if self._held and self._answer.complete():
            calls = answer_calls("".join(self._held), self._tools)
            if calls is not None:
                self._held = []
                return list(calls)
        out = self._release()
        out.extend(self._blocks.finish())
        return out

    def _release(self) -> list[Piece]:
        text = "".join(self._held)
        self._held = []
        self._answer.stage = _Stage.REJECTED
        return self._blocks.feed(text)
