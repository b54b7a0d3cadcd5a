"""The one GenerationHandle every backend returns.

An engine thread produces (``push``, ``finish``, ``fail``); any number of threads or event loops
consume. Sync consumers block on a ``threading.Condition``; async consumers park a future that the
engine resolves with ``loop.call_soon_threadsafe``: no polling, no thread per consumer.

An engine that pushes many tokens in one step passes ``Wakeups`` to ``push`` and wakes the consumers
once the step's tokens are all pushed: one wake per event loop per step instead of one per token.
Woken mid-step, a consumer takes the GIL from the engine thread while it still samples the other
sequences (Python threads share one interpreter lock), which lengthened every step by the consumers'
work: measured with 4 streams in a server, see ``benchmarks/README.md``.
"""

from __future__ import annotations

import asyncio
import contextlib
import operator
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator, Sequence

from qwenkit.engine.reasoning_budget import ReasoningBudget, ReasoningCounter
from qwenkit.engine.types import FinishReason, Timings, TokenEvent
from qwenkit.errors import UsageError


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


def _resolve_all(futures: list[asyncio.Future[None]]) -> None:
    for fut in futures:
        _resolve(fut)


Waiter = tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]


def wake(waiters: list[Waiter]) -> None:
    """Resolve parked consumers' futures: one thread-safe callback per event loop."""
    by_loop: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}
    for loop, fut in waiters:
        by_loop.setdefault(loop, []).append(fut)
    for loop, futures in by_loop.items():
        # A closed loop raises RuntimeError: its consumers are gone, so nobody needs waking.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(_resolve_all, futures)


class Wakeups:
    """The handles an engine step pushed to, woken together by ``flush`` at the end of the step."""

    def __init__(self) -> None:
        self._handles: dict[int, QueuedHandle] = {}

    def add(self, handle: QueuedHandle) -> None:
        self._handles[id(handle)] = handle

    def flush(self) -> None:
        """Wake every consumer of the step's handles: sync ones now, async ones with one callback per
        event loop."""
        handles, self._handles = self._handles, {}
        wake([waiter for handle in handles.values() for waiter in handle.take_waiters()])


class QueuedHandle:
    """A generation's event queue, shared by the engine (producer) and its caller (consumer).

    Events are consumed once: two consumers iterating the same handle split the stream.
    ``cancel`` ends the stream for the consumer at once; the engine notices ``cancelled`` on its
    next step and frees the slot (``on_cancel`` lets it wake up for that). With ``reasoning_budget``
    the handle counts reasoning tokens as they are pushed and queues the early stop at the budget.
    """

    def __init__(
        self,
        *,
        vocab_size: int | None = None,
        on_cancel: Callable[[], None] | None = None,
        timings: Timings | None = None,
        reasoning_budget: ReasoningBudget | None = None,
    ) -> None:
        self.timings = timings if timings is not None else Timings(submitted=time.perf_counter())
        self._vocab_size = vocab_size
        self._on_cancel = on_cancel
        self._cond = threading.Condition(threading.Lock())
        self._events: deque[TokenEvent] = deque()
        self._injected: deque[int] = deque()
        self._budget = ReasoningCounter(reasoning_budget) if reasoning_budget is not None else None
        if self._budget is not None:
            self._injected.extend(self._budget.start())
        self._waiters: list[Waiter] = []
        self._finish_reason: FinishReason | None = None
        self._error: BaseException | None = None
        self._done = False
        self._cancelled = False

    # ----- consumer side -------------------------------------------------------------------

    @property
    def finish_reason(self) -> FinishReason | None:
        return self._finish_reason

    @property
    def error(self) -> BaseException | None:
        return self._error

    @property
    def done(self) -> bool:
        return self._done

    @property
    def cancelled(self) -> bool:
        return self._cancelled

    def cancel(self) -> None:
        """Idempotent. The consumer's stream ends now; the engine frees the slot within one step."""
        with self._cond:
            if self._cancelled:
                return
            self._cancelled = True
            finished_now = not self._done
        if finished_now:
            self._close(FinishReason.CANCELLED, None)
        if self._on_cancel is not None:
            self._on_cancel()

    def inject(self, token_ids: Sequence[int]) -> bool:
        """Queue tokens the engine feeds next as if sampled; True if queued. Refused once the generation
        is over and, with a reasoning budget, once the thinking is over or its early stop is queued:
        the loop guard reads behind the engine, and its early stop would land in the answer or end the
        thinking twice. An accepted injection turns the budget off."""
        ids: list[int] = []
        for tid in token_ids:
            try:
                value = operator.index(tid)
            except TypeError:
                value = -1
            if value < 0 or (self._vocab_size is not None and value >= self._vocab_size):
                raise UsageError(f"cannot inject token id {tid!r}: not in the vocabulary", param="token_ids")
            ids.append(value)
        with self._cond:
            if self._done or (self._budget is not None and not self._budget.accept_injection()):
                return False
            self._injected.extend(ids)
            return True

    def __iter__(self) -> Iterator[TokenEvent]:
        while True:
            with self._cond:
                while not self._events and not self._done:
                    self._cond.wait()
                if self._events:
                    event = self._events.popleft()
                else:
                    self._raise_if_failed()
                    return
            yield event

    def __aiter__(self) -> AsyncIterator[TokenEvent]:
        return self._aiter()

    async def _aiter(self) -> AsyncIterator[TokenEvent]:
        loop = asyncio.get_running_loop()
        while True:
            batch: list[TokenEvent] = []
            fut: asyncio.Future[None] | None = None
            with self._cond:
                if self._events:
                    batch = list(self._events)
                    self._events.clear()
                elif self._done:
                    self._raise_if_failed()
                    return
                else:
                    fut = loop.create_future()
                    self._waiters.append((loop, fut))
            if fut is not None:
                try:
                    await fut
                finally:
                    with self._cond:
                        self._waiters = [w for w in self._waiters if w[1] is not fut]
                continue
            for event in batch:
                yield event

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise self._error

    # ----- engine side ---------------------------------------------------------------------

    def take_injected(self) -> list[int]:
        """Engine: every token injected since the last call, in order."""
        with self._cond:
            ids = list(self._injected)
            self._injected.clear()
        return ids

    @property
    def has_injected(self) -> bool:
        return bool(self._injected)

    def push(self, event: TokenEvent, wakeups: Wakeups | None = None) -> None:
        """Engine: one more output token. Dropped silently once the stream is over (e.g. cancelled).
        With ``wakeups`` the consumer is woken by ``wakeups.flush()``, else now."""
        with self._cond:
            if self._done:
                return
            if not self.timings.first_token:
                self.timings.first_token = time.perf_counter()
            self.timings.completion_tokens += 1
            self._events.append(event)
            if self._budget is not None:
                self._injected.extend(self._budget.feed(event.token_id))
            if wakeups is not None:
                wakeups.add(self)
                return
            self._cond.notify_all()
            waiters, self._waiters = self._waiters, []
        wake(waiters)

    def take_waiters(self) -> list[Waiter]:
        """Engine (``Wakeups.flush``): notify sync consumers; the async ones, for the caller to wake."""
        with self._cond:
            self._cond.notify_all()
            waiters, self._waiters = self._waiters, []
        return waiters

    def finish(self, reason: FinishReason) -> None:
        """Engine: the generation ended normally. A no-op if it already ended."""
        self._close(reason, None)

    def fail(self, error: BaseException) -> None:
        """Engine: the generation died; the consumer gets ``error`` raised after the events so far."""
        self._close(None, error)

    def _close(self, reason: FinishReason | None, error: BaseException | None) -> None:
        with self._cond:
            if self._done:
                return
            self._done = True
            self._finish_reason = reason
            self._error = error
            self._injected.clear()
            self.timings.finished = time.perf_counter()
            self._cond.notify_all()
            waiters, self._waiters = self._waiters, []
        wake(waiters)
