"""A scripted Backend for testing the engine API without a model.

It emits a fixed reasoning stream until ``</think>`` appears in what it has emitted (sampled or
injected), then a fixed answer. Tokens are produced on demand, when the consumer asks for the next
one, so an ``inject`` made while handling token k is always what token k+1 is: positions are exact.
A thinking budget in the params is counted as ``QueuedHandle`` counts it, with the same counter.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field

from qwenkit.chat.tokenizer import Tokenizer
from qwenkit.engine.reasoning_budget import ReasoningCounter
from qwenkit.engine.types import BackendKind, Capability, FinishReason, SamplingParams, Timings, TokenEvent


@dataclass
class ScriptedHandle:
    reasoning: list[int]
    answer: list[int]
    think_close: int
    params: SamplingParams
    timings: Timings = field(default_factory=lambda: Timings(submitted=time.perf_counter()))
    emitted: list[int] = field(default_factory=list)
    forced_positions: list[int] = field(default_factory=list)
    _injected: deque[int] = field(default_factory=deque)
    _finish: FinishReason | None = None
    _cancelled: bool = False
    _reasoning_pos: int = 0
    _answer_pos: int = 0
    _budget: ReasoningCounter | None = None

    def __post_init__(self) -> None:
        if self.params.reasoning_budget is not None:
            self._budget = ReasoningCounter(self.params.reasoning_budget)
            self._injected.extend(self._budget.start())

    @property
    def finish_reason(self) -> FinishReason | None:
        return self._finish

    def cancel(self) -> None:
        self._cancelled = True
        if self._finish is None:
            self._finish = FinishReason.CANCELLED

    def inject(self, token_ids: Sequence[int]) -> bool:
        if self._finish is not None or (self._budget is not None and not self._budget.accept_injection()):
            return False
        self._injected.extend(token_ids)
        return True

    def _next(self) -> TokenEvent | None:
        if self._cancelled or self._finish is not None:
            return None
        if len(self.emitted) >= self.params.max_tokens:
            self._finish = FinishReason.LENGTH
            return None
        if self._injected:
            token, forced = self._injected.popleft(), True
            self.forced_positions.append(len(self.emitted))
        else:
            in_answer = self.think_close in self.emitted or not self.reasoning
            source = self.answer if in_answer else self.reasoning
            position = self._answer_pos if in_answer else self._reasoning_pos
            if position >= len(source):
                self._finish = FinishReason.STOP
                return None
            token, forced = source[position], False
            if in_answer:
                self._answer_pos += 1
            else:
                self._reasoning_pos += 1
        self.emitted.append(token)
        if self._budget is not None:
            self._injected.extend(self._budget.feed(token))
        if not self.timings.first_token:
            self.timings.first_token = time.perf_counter()
        self.timings.completion_tokens += 1
        self.timings.finished = time.perf_counter()
        return TokenEvent(token_id=token, forced=forced)

    def __iter__(self) -> Iterator[TokenEvent]:
        while (event := self._next()) is not None:
            yield event

    async def _aiter(self) -> AsyncIterator[TokenEvent]:
        while (event := self._next()) is not None:
            yield event

    def __aiter__(self) -> AsyncIterator[TokenEvent]:
        return self._aiter()


class ScriptedBackend:
    """Reasoning ids until ``</think>`` has been emitted, then answer ids; records every submit."""

    kind = BackendKind.TRANSFORMERS  # a stand-in: what /v1/models and bench report
    capabilities = Capability.LOGPROBS

    def __init__(self, tokenizer: Tokenizer, reasoning: str, answer: str, context_length: int = 4096) -> None:
        self.tokenizer = tokenizer
        self.context_length = context_length
        self.think_close = tokenizer.special_tokens["</think>"]
        self.reasoning = self._encode(reasoning)
        self.answer = tokenizer.encode_text(answer)
        self.submitted: list[tuple[list[int], SamplingParams]] = []
        self.handles: list[ScriptedHandle] = []

    def _encode(self, text: str) -> list[int]:
        """Plain text, except that ``</think>`` becomes its special id, as a model would emit it."""
        ids: list[int] = []
        for i, piece in enumerate(text.split("</think>")):
            if i:
                ids.append(self.think_close)
            ids.extend(self.tokenizer.encode_text(piece))
        return ids

    def submit(self, prompt_ids: Sequence[int], params: SamplingParams) -> ScriptedHandle:
        self.submitted.append((list(prompt_ids), params))
        handle = ScriptedHandle(list(self.reasoning), list(self.answer), self.think_close, params)
        handle.timings.prompt_tokens = len(prompt_ids)
        self.handles.append(handle)
        return handle

    def close(self) -> None:
        pass
