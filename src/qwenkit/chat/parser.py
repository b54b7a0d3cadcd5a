"""Incremental parser for Qwen output: reasoning, then an answer of content and tool calls.

A small state machine over text. Each ``feed`` looks only at the new text plus at most one marker's
worth of held-back characters, so a whole generation parses in linear time however it is chunked,
and any chunking yields the same events as one ``feed`` of the whole text (``parse_output`` is
exactly that: one feed, one finish).

This layer splits reasoning from the answer; the answer goes through the model's tool parser
(``chat.tool_parsers``, chosen by tool format), which says what is content and what is a call.
Conventions follow Qwen's chat template and docs: reasoning and content are each stripped of
leading and trailing newlines (the ``\\n`` after ``<think>``, the ``\\n\\n`` after ``</think>``);
tool calls written inside ``<think>`` stay reasoning.
"""

from __future__ import annotations

import enum
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
from qwenkit.chat.tool_parsers import ParsedCall, Piece, PlainText, ToolParser, partial_marker_len
from qwenkit.errors import UsageError

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"


class _State(enum.Enum):
    START = "start"  # nothing but whitespace (and maybe part of a leading <think>) seen yet
    REASONING = "reasoning"
    ANSWER = "answer"  # everything goes to the tool parser
    FINISHED = "finished"


class Phase(enum.Enum):
    """Where the text seen so far has gone; what token accounting needs to know."""

    UNDECIDED = "undecided"  # only whitespace or a partial "<think>": reasoning or answer, not yet known
    REASONING = "reasoning"
    ANSWER = "answer"


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


class OutputParser:
    """Feed text deltas, get typed events; call ``finish`` once at the end.

    ``starts_in_reasoning``: the prompt already opened ``<think>`` (Qwen3-Thinking-2507 templates),
    so output is reasoning until ``</think>``. Either way a ``<think>`` the model writes first
    (after optional whitespace) opens reasoning. ``tool_parser``: how the answer becomes content
    and calls (default: all content).
    """

    def __init__(
        self,
        *,
        starts_in_reasoning: bool,
        tool_parser: ToolParser | None = None,
        tool_ids: ToolCallIds | None = None,
    ) -> None:
        self._starts_in_reasoning = starts_in_reasoning
        self._tools = tool_parser if tool_parser is not None else PlainText()
        self._ids = tool_ids or ToolCallIds()
        self._state = _State.START
        self._held = ""  # START: a possible "<think>" prefix; REASONING: a partial "</think>"
        self._start_space: list[str] = []
        self._opened_reasoning = starts_in_reasoning
        self._tool_count = 0
        self._reasoning = _NewlineTrim()
        self._content = _NewlineTrim()
        self._steps: dict[_State, Callable[[str, list[Event]], str]] = {
            _State.START: self._step_start,
            _State.REASONING: self._step_reasoning,
            _State.ANSWER: self._step_answer,
        }
        self._step = self._steps[_State.START]

    @property
    def phase(self) -> Phase:
        """Where output goes now; UNDECIDED while held text could still open ``<think>``."""
        if self._state is _State.START:
            return Phase.REASONING if self._starts_in_reasoning else Phase.UNDECIDED
        return Phase.REASONING if self._state is _State.REASONING else Phase.ANSWER

    @property
    def in_reasoning(self) -> bool:
        """True while output is (or, before any text, would be) reasoning: the engine's loop guard asks."""
        return self.phase is Phase.REASONING

    @property
    def opened_reasoning(self) -> bool:
        """The output began with reasoning (the prompt's ``<think>`` or the model's own)."""
        return self._opened_reasoning

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
            if self._starts_in_reasoning:
                self._emit(self._reasoning, ReasoningDelta, leftover, out)
            else:
                self._answer(self._tools.feed(leftover), out)
        elif self._state is _State.REASONING:
            self._emit(self._reasoning, ReasoningDelta, self._held, out)
        self._answer(self._tools.finish(), out)
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
            self._opened_reasoning = True
            self._goto(_State.REASONING)
            return combined[len(THINK_OPEN) :]
        if THINK_OPEN.startswith(combined):
            self._held = combined
            return ""
        leading = "".join(self._start_space)
        self._start_space.clear()
        self._goto(_State.REASONING if self._starts_in_reasoning else _State.ANSWER)
        return leading + combined

    def _step_reasoning(self, text: str, out: list[Event]) -> str:
        buf = self._held + text
        self._held = ""
        idx = buf.find(THINK_CLOSE)
        if idx >= 0:
            self._emit(self._reasoning, ReasoningDelta, buf[:idx], out)
            self._goto(_State.ANSWER)
            return buf[idx + len(THINK_CLOSE) :]
        keep = partial_marker_len(buf, THINK_CLOSE)
        self._emit(self._reasoning, ReasoningDelta, buf[: len(buf) - keep], out)
        self._held = buf[len(buf) - keep :]
        return ""

    def _step_answer(self, text: str, out: list[Event]) -> str:
        self._answer(self._tools.feed(text), out)
        return ""

    def _goto(self, state: _State) -> None:
        self._state = state
        self._step = self._steps[state]

    def _answer(self, pieces: list[Piece], out: list[Event]) -> None:
        for piece in pieces:
            if isinstance(piece, ParsedCall):
                out.append(ToolCall(self._ids.next_id(), piece.name, piece.arguments, self._tool_count))
                self._tool_count += 1
            else:
                self._emit(self._content, ContentDelta, piece, out)

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
    tool_parser: ToolParser | None = None,
    finish_reason: str = "stop",
    tool_ids: ToolCallIds | None = None,
) -> ParsedOutput:
    """Parse a whole generation: one ``feed`` and one ``finish`` of the incremental parser."""
    parser = OutputParser(starts_in_reasoning=starts_in_reasoning, tool_parser=tool_parser, tool_ids=tool_ids)
    events = parser.feed(text)
    events.extend(parser.finish(finish_reason))
    return ParsedOutput.from_events(events)
