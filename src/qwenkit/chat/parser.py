"""Incremental parser for Qwen output: reasoning, content and tool calls from a text stream.

A small state machine over text. Each ``feed`` looks only at the new text plus at most one marker's
worth of held-back characters, so a whole generation parses in linear time however it is chunked,
and any chunking yields the same events as one ``feed`` of the whole text (``parse_output`` is
exactly that: one feed, one finish).

Conventions follow Qwen's chat template and docs: reasoning and content are each stripped of
leading and trailing newlines (the ``\\n`` after ``<think>``, the ``\\n\\n`` after ``</think>``);
tool calls written inside ``<think>`` stay reasoning; a ``<tool_call>`` block whose JSON is not
``{"name": str, "arguments": object}`` stays content verbatim, markers included.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Callable

from qwenkit.chat.events import (
    ContentDelta,
    Done,
    Event,
    ParsedOutput,
    ReasoningDelta,
    ToolCall,
    ToolCallIds,
)
from qwenkit.errors import UsageError

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"
TOOL_OPEN = "<tool_call>"
TOOL_CLOSE = "</tool_call>"


class _State(enum.Enum):
    START = "start"  # nothing but whitespace (and maybe part of a leading <think>) seen yet
    REASONING = "reasoning"
    CONTENT = "content"
    TOOL = "tool"  # inside <tool_call> ... waiting for </tool_call>
    FINISHED = "finished"


def partial_marker_len(text: str, marker: str) -> int:
    """Length of the longest suffix of ``text`` that is a proper prefix of ``marker`` (0 if none).

    Every marker has its only ``<`` first, so the one candidate is the last ``<`` in the final
    ``len(marker) - 1`` characters: one bounded ``rfind``, whatever the buffer size.
    """
    pos = text.rfind("<", max(0, len(text) - len(marker) + 1))
    if pos < 0:
        return 0
    return len(text) - pos if marker.startswith(text[pos:]) else 0


class _NewlineTrim:
    """Streams one channel with its leading and trailing newlines removed (``str.strip("\\n")``).

    Trailing newlines are held back until non-newline text follows; whatever is still held when the
    channel ends is dropped. Only a count is kept, so a long newline run stays linear.
    """

    def __init__(self) -> None:
        self._started = False
        self._pending = 0

    def push(self, text: str) -> str:
        if not self._started:
            text = text.lstrip("\n")
            if not text:
                return ""
            self._started = True
        body = text.rstrip("\n")
        if not body:
            self._pending += len(text)
            return ""
        out = "\n" * self._pending + body
        self._pending = len(text) - len(body)
        return out


def _parse_tool_body(body: str) -> tuple[str, str] | None:
    """``(name, arguments-json)`` for a well-formed Hermes-style call body, else None."""
    try:
        obj = json.loads(body)
    except (ValueError, RecursionError):
        return None
    if not isinstance(obj, dict):
        return None
    name = obj.get("name")
    if not isinstance(name, str) or not name.strip():
        return None
    args = obj.get("arguments", {})
    if isinstance(args, str):  # some fine-tunes send the arguments already serialised
        try:
            args = json.loads(args)
        except (ValueError, RecursionError):
            return None
    if not isinstance(args, dict):
        return None
    return name, json.dumps(args, ensure_ascii=False)


class OutputParser:
    """Feed text deltas, get typed events; call ``finish`` once at the end.

    ``starts_in_reasoning``: the prompt already opened ``<think>`` (Qwen3-Thinking-2507 templates),
    so output is reasoning until ``</think>``. Either way a ``<think>`` the model writes first
    (after optional whitespace) opens reasoning. ``parse_tools``: recognise ``<tool_call>`` blocks.
    """

    def __init__(
        self, *, starts_in_reasoning: bool, parse_tools: bool, tool_ids: ToolCallIds | None = None
    ) -> None:
        self._starts_in_reasoning = starts_in_reasoning
        self._parse_tools = parse_tools
        self._ids = tool_ids or ToolCallIds()
        self._state = _State.START
        self._held = ""  # START: a possible "<think>" prefix; REASONING/CONTENT: a partial marker
        self._start_space: list[str] = []
        self._tool_parts: list[str] = []
        self._tool_tail = ""  # last len(TOOL_CLOSE)-1 chars of the tool body, to find a split marker
        self._tool_count = 0
        self._reasoning = _NewlineTrim()
        self._content = _NewlineTrim()
        self._steps: dict[_State, Callable[[str, list[Event]], str]] = {
            _State.START: self._step_start,
            _State.REASONING: self._step_reasoning,
            _State.CONTENT: self._step_content,
            _State.TOOL: self._step_tool,
        }
        self._step = self._steps[_State.START]

    @property
    def in_reasoning(self) -> bool:
        """True while output is (or, before any text, would be) reasoning: the engine's loop guard asks."""
        if self._state is _State.START:
            return self._starts_in_reasoning or self._held != ""
        return self._state is _State.REASONING

    def feed(self, text: str) -> list[Event]:
        if self._state is _State.FINISHED:
            raise UsageError("this output parser has already finished; make a new one per generation")
        out: list[Event] = []
        while text:
            text = self._step(text, out)
        return out

    def finish(self, finish_reason: str = "stop") -> list[Event]:
        """Flush what was held back and end with ``Done``.

        ``stop`` becomes ``tool_calls`` when the output made tool calls, as OpenAI clients expect.
        """
        if self._state is _State.FINISHED:
            raise UsageError("finish() was already called on this output parser")
        if not finish_reason:
            raise UsageError("finish_reason must be a non-empty string such as 'stop' or 'length'")
        out: list[Event] = []
        if self._state is _State.START:
            leftover = "".join(self._start_space) + self._held
            self._emit_default(leftover, out)
        elif self._state is _State.REASONING:
            self._emit(self._reasoning, ReasoningDelta, self._held, out)
        elif self._state is _State.CONTENT:
            self._emit(self._content, ContentDelta, self._held, out)
        else:  # an unterminated <tool_call> is not a call: the text goes back to the user as content
            self._emit(self._content, ContentDelta, TOOL_OPEN + "".join(self._tool_parts), out)
        self._held = ""
        self._state = _State.FINISHED
        reason = "tool_calls" if self._tool_count and finish_reason == "stop" else finish_reason
        out.append(Done(reason))
        return out

    # -- states: each consumes a prefix of ``text`` and returns what is left for the next state ---

    def _step_start(self, text: str, out: list[Event]) -> str:
        if not self._held:
            stripped = text.lstrip()
            self._start_space.append(text[: len(text) - len(stripped)])
            text = stripped
            if not text:
                return ""
        combined = self._held + text
        self._held = ""
        if combined.startswith(THINK_OPEN):
            self._start_space.clear()
            self._goto(_State.REASONING)
            return combined[len(THINK_OPEN) :]
        if THINK_OPEN.startswith(combined):
            self._held = combined
            return ""
        leading = "".join(self._start_space)
        self._start_space.clear()
        self._goto(_State.REASONING if self._starts_in_reasoning else _State.CONTENT)
        return leading + combined

    def _step_reasoning(self, text: str, out: list[Event]) -> str:
        buf = self._held + text
        self._held = ""
        idx = buf.find(THINK_CLOSE)
        if idx >= 0:
            self._emit(self._reasoning, ReasoningDelta, buf[:idx], out)
            self._goto(_State.CONTENT)
            return buf[idx + len(THINK_CLOSE) :]
        keep = partial_marker_len(buf, THINK_CLOSE)
        self._emit(self._reasoning, ReasoningDelta, buf[: len(buf) - keep], out)
        self._held = buf[len(buf) - keep :]
        return ""

    def _step_content(self, text: str, out: list[Event]) -> str:
        if not self._parse_tools:
            self._emit(self._content, ContentDelta, text, out)
            return ""
        buf = self._held + text
        self._held = ""
        idx = buf.find(TOOL_OPEN)
        if idx >= 0:
            self._emit(self._content, ContentDelta, buf[:idx], out)
            self._goto(_State.TOOL)
            return buf[idx + len(TOOL_OPEN) :]
        keep = partial_marker_len(buf, TOOL_OPEN)
        self._emit(self._content, ContentDelta, buf[: len(buf) - keep], out)
        self._held = buf[len(buf) - keep :]
        return ""

    def _step_tool(self, text: str, out: list[Event]) -> str:
        window = self._tool_tail + text
        idx = window.find(TOOL_CLOSE)
        self._tool_parts.append(text)
        if idx < 0:
            self._tool_tail = window[-(len(TOOL_CLOSE) - 1) :]
            return ""
        whole = "".join(self._tool_parts)
        body = whole[: len(whole) - len(window) + idx]
        self._tool_parts = []
        self._tool_tail = ""
        self._goto(_State.CONTENT)
        self._close_tool(body, out)
        return window[idx + len(TOOL_CLOSE) :]

    def _goto(self, state: _State) -> None:
        self._state = state
        self._step = self._steps[state]

    def _close_tool(self, body: str, out: list[Event]) -> None:
        parsed = _parse_tool_body(body)
        if parsed is None:
            self._emit(self._content, ContentDelta, TOOL_OPEN + body + TOOL_CLOSE, out)
            return
        name, arguments = parsed
        out.append(ToolCall(self._ids.next_id(), name, arguments, self._tool_count))
        self._tool_count += 1

    def _emit_default(self, text: str, out: list[Event]) -> None:
        if self._starts_in_reasoning:
            self._emit(self._reasoning, ReasoningDelta, text, out)
        else:
            self._emit(self._content, ContentDelta, text, out)

    @staticmethod
    def _emit(
        channel: _NewlineTrim,
        kind: type[ReasoningDelta] | type[ContentDelta],
        text: str,
        out: list[Event],
    ) -> None:
        if text:
            kept = channel.push(text)
            if kept:
                out.append(kind(kept))


def parse_output(
    text: str,
    *,
    starts_in_reasoning: bool,
    parse_tools: bool,
    finish_reason: str = "stop",
    tool_ids: ToolCallIds | None = None,
) -> ParsedOutput:
    """Parse a whole generation: one ``feed`` and one ``finish`` of the incremental parser."""
    parser = OutputParser(starts_in_reasoning=starts_in_reasoning, parse_tools=parse_tools, tool_ids=tool_ids)
    events = parser.feed(text)
    events.extend(parser.finish(finish_reason))
    return ParsedOutput.from_events(events)
