"""One chat generation, from TokenEvents to typed events: pure state, no I/O, no threads.

The sync and async APIs (and the server) drive the same ``ChatRun``; they differ only in how they
wait for the next TokenEvent. Order per token: detokenize -> stop strings -> output parser -> loop
guard (which may ask the engine to inject Qwen's early-stop tokens). The thinking budget is counted
where tokens are made (``engine/reasoning_budget.py``); here its forced early stop is only recorded.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from qwenkit.chat.detokenize import IncrementalDetokenizer
from qwenkit.chat.events import ContentDelta, Done, Event, ReasoningDelta, ToolCall, ToolCallIds
from qwenkit.chat.loop_guard import LoopReport, ThinkingLoopDetector
from qwenkit.chat.parser import OutputParser, Phase
from qwenkit.chat.tokenizer import Tokenizer
from qwenkit.chat.tool_parsers import ToolParser
from qwenkit.engine.stops import StopMatcher
from qwenkit.engine.types import FinishReason, Timings, TokenEvent


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int
    reasoning_tokens: int
    cached_prompt_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True)
class TokenLogprob:
    token: str
    token_id: int
    logprob: float
    top: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True)
class ChatResult:
    content: str
    reasoning: str
    tool_calls: tuple[ToolCall, ...]
    finish_reason: str
    usage: Usage
    time_to_first_token: float
    decode_tokens_per_second: float
    warnings: tuple[str, ...] = ()
    logprobs: tuple[TokenLogprob, ...] | None = None
    thinking_stopped_early: str | None = None  # "budget" or "loop" when Qwen's early stop was forced


@dataclass
class TokenStep:
    """What one TokenEvent produced: events for the caller, and what the engine should do next."""

    events: list[Event] = field(default_factory=list)
    inject: list[int] = field(default_factory=list)
    stop: bool = False  # a stop string matched: cancel the generation


@dataclass(frozen=True)
class ThinkingControl:
    """How reasoning may be cut short. ``early_stop_ids``: Qwen's early-stop text, ``</think>``, a blank
    line."""

    early_stop_ids: tuple[int, ...] = ()
    budget: int | None = None
    loop_guard: bool = False


class ChatRun:
    """Accumulates one generation; ``on_token`` per TokenEvent, then ``finish`` once."""

    def __init__(
        self,
        tokenizer: Tokenizer,
        *,
        prompt_tokens: int,
        starts_in_reasoning: bool,
        tool_parser: ToolParser | None = None,
        stops: tuple[str, ...] = (),
        thinking: ThinkingControl | None = None,
        want_logprobs: bool = False,
        tool_ids: ToolCallIds | None = None,
        warnings: tuple[str, ...] = (),
    ) -> None:
        self._tokenizer = tokenizer
        self._detok = IncrementalDetokenizer(tokenizer)
        self._stops = StopMatcher(stops)
        self._parser = OutputParser(
            starts_in_reasoning=starts_in_reasoning, tool_parser=tool_parser, tool_ids=tool_ids
        )
        self._thinking = thinking or ThinkingControl()
        self._loop = ThinkingLoopDetector() if self._thinking.loop_guard else None
        self._prompt_tokens = prompt_tokens
        self._completion = 0
        self._reasoning = 0
        self._undecided = 0  # tokens whose text the parser holds before it knows reasoning from answer
        self._early_stop: str | None = None
        self._stopped_by_string = False
        self._events: list[Event] = []
        self._logprobs: list[TokenLogprob] | None = [] if want_logprobs else None
        self._warnings = warnings

    @property
    def completion_tokens(self) -> int:
        return self._completion

    @property
    def stopped_by_string(self) -> bool:
        return self._stopped_by_string

    def on_token(self, event: TokenEvent) -> TokenStep:
        step = TokenStep()
        if self._stopped_by_string:
            return step
        self._completion += 1
        if event.forced and self._early_stop is None and self._thinking.budget is not None:
            self._early_stop = "budget"  # the handle's early stop at the budget: LLM forces nothing else
        before = self._parser.phase
        matched = self._stops.feed(self._detok.push(event.token_id))
        if matched.text:
            step.events = self._parser.feed(matched.text)
        self._count_reasoning(before, self._parser.phase)
        if self._logprobs is not None and event.logprob is not None:
            self._logprobs.append(self._logprob_entry(event))
        if matched.stopped:
            self._stopped_by_string = True
            step.stop = True
        elif self._parser.in_reasoning and self._early_stop is None:
            step.inject = self._check_thinking(step.events)
        self._events.extend(step.events)
        return step

    def early_stop_refused(self) -> None:
        """The handle refused the loop guard's early stop (the thinking was over, or the budget's early
        stop was queued first): the next forced tokens, if any, are the budget's; the guard is done."""
        self._early_stop = None
        self._loop = None

    def _count_reasoning(self, before: Phase, after: Phase) -> None:
        """A token is reasoning if its text went to reasoning: tokens the parser held undecided
        (whitespace, a partial ``<think>``) are settled once it knows where that text went."""
        if after is Phase.UNDECIDED:
            self._undecided += 1
        elif before is Phase.UNDECIDED:
            held, self._undecided = self._undecided + 1, 0
            if self._parser.opened_reasoning:
                self._reasoning += held
        elif Phase.REASONING in (before, after):
            self._reasoning += 1

    def _check_thinking(self, events: list[Event]) -> list[int]:
        control = self._thinking
        if not control.early_stop_ids or self._loop is None:
            return []
        text = "".join(e.text for e in events if isinstance(e, ReasoningDelta))
        report: LoopReport | None = self._loop.feed(text) if text else None
        if report is None:
            return []
        self._early_stop = "loop"
        return list(control.early_stop_ids)

    def _logprob_entry(self, event: TokenEvent) -> TokenLogprob:
        def text(tid: int) -> str:
            return self._tokenizer.token_bytes(tid).decode("utf-8", errors="replace")

        top = tuple((text(tid), lp) for tid, lp in event.top_logprobs)
        return TokenLogprob(text(event.token_id), event.token_id, float(event.logprob or 0.0), top)

    def finish(self, reason: FinishReason | None) -> list[Event]:
        """Flush held text; the finish reason becomes ``tool_calls`` when the answer is tool calls."""
        if self._stopped_by_string or reason is None:
            reason = FinishReason.STOP
        tail = self._stops.flush() + self._detok.flush() if not self._stopped_by_string else ""
        events = self._parser.feed(tail) if tail else []
        events.extend(self._parser.finish(reason.value))
        self._events.extend(events)
        return events

    def result(self, timings: Timings) -> ChatResult:
        reasoning = "".join(e.text for e in self._events if isinstance(e, ReasoningDelta))
        content = "".join(e.text for e in self._events if isinstance(e, ContentDelta))
        calls = tuple(e for e in self._events if isinstance(e, ToolCall))
        done = next((e for e in reversed(self._events) if isinstance(e, Done)), None)
        usage = Usage(self._prompt_tokens, self._completion, self._reasoning, timings.cached_prompt_tokens)
        return ChatResult(
            content=content,
            reasoning=reasoning,
            tool_calls=calls,
            finish_reason=done.finish_reason if done else "stop",
            usage=usage,
            time_to_first_token=timings.time_to_first_token,
            decode_tokens_per_second=timings.decode_tokens_per_second,
            warnings=self._warnings,
            logprobs=tuple(self._logprobs) if self._logprobs is not None else None,
            thinking_stopped_early=self._early_stop,
        )
