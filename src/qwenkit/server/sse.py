"""Server-sent events, and the one loop that drives a request's generations.

``drive`` merges the events of all choices of one request (``n`` > 1 runs them side by side), and
ends them all when the client disconnects, when the request times out, or when its consumer stops
early: a generation never outlives the request that asked for it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence
from typing import Protocol

from qwenkit.chat.events import Event
from qwenkit.errors import CancelledError
from qwenkit.server.errors import GenerationTimeoutError

DONE = "data: [DONE]\n\n"
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
POLL_SECONDS = 0.25


def sse_data(payload: str) -> str:
    return f"data: {payload}\n\n"


class EventSource(Protocol):
    def __aiter__(self) -> AsyncIterator[Event]: ...

    def cancel(self) -> None: ...


class Deadline:
    """A request's time limit; ``seconds <= 0`` means none."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._at = time.monotonic() + seconds if seconds > 0 else None

    def remaining(self) -> float | None:
        return None if self._at is None else self._at - time.monotonic()

    def expired(self) -> bool:
        left = self.remaining()
        return left is not None and left <= 0


class _End:
    """Marks that choice ``index`` has no more events."""

    def __init__(self, index: int, error: Exception | None = None) -> None:
        self.index = index
        self.error = error


class _Watchdog:
    """Enforces the deadline, and checks the client's connection every POLL_SECONDS when asked to, off
    the token path: when either fails it keeps the reason and cancels the sources, which ends their
    iteration. (A timer per token, ``asyncio.wait_for``, cost the event loop a task and a timer handle
    for every chunk, and saw a disconnect only when the tokens paused.)"""

    def __init__(
        self,
        sources: Sequence[EventSource],
        deadline: Deadline,
        disconnected: Callable[[], Awaitable[bool]] | None,
    ) -> None:
        self.reason: Exception | None = None
        self._sources = sources
        self._deadline = deadline
        self._disconnected = disconnected
        watching = disconnected is not None or deadline.remaining() is not None
        self._task = asyncio.create_task(self._watch()) if watching else None

    async def _watch(self) -> None:
        while self.reason is None:
            left = self._deadline.remaining()
            if self._disconnected is None:
                assert left is not None
                wait = max(0.0, left)
            else:
                wait = POLL_SECONDS if left is None else max(0.0, min(POLL_SECONDS, left))
            await asyncio.sleep(wait)
            if self._deadline.expired():
                seconds = self._deadline.seconds
                self.reason = GenerationTimeoutError(f"the request took longer than {seconds:g} seconds")
            elif self._disconnected is not None and await self._disconnected():
                self.reason = CancelledError("the client disconnected")
        for source in self._sources:
            source.cancel()

    def check(self) -> None:
        if self.reason is not None:
            raise self.reason

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()


async def _pump(index: int, source: EventSource, queue: asyncio.Queue[tuple[int, Event] | _End]) -> None:
    try:
        async for event in source:
            queue.put_nowait((index, event))
    except Exception as exc:  # the engine failed this generation: the request fails with it
        queue.put_nowait(_End(index, exc))
        return
    queue.put_nowait(_End(index))


async def _one(source: EventSource) -> AsyncGenerator[tuple[int, Event], None]:
    """A single choice (the common case): its events as they come, with no merging hop."""
    async for event in source:
        yield 0, event


async def _merged(sources: Sequence[EventSource]) -> AsyncGenerator[tuple[int, Event], None]:
    """Several choices side by side, each pumped by its own task into one queue."""
    queue: asyncio.Queue[tuple[int, Event] | _End] = asyncio.Queue()
    tasks = [asyncio.create_task(_pump(i, s, queue)) for i, s in enumerate(sources)]
    live = len(sources)
    try:
        while live:
            item = await queue.get()
            if isinstance(item, _End):
                if item.error is not None:
                    raise item.error
                live -= 1
                continue
            yield item
    finally:
        for task in tasks:
            task.cancel()


async def drive(
    sources: Sequence[EventSource],
    deadline: Deadline,
    disconnected: Callable[[], Awaitable[bool]] | None,
) -> AsyncIterator[tuple[int, Event]]:
    """Yield ``(choice index, event)`` from every source until all have ended; cancel them on exit.

    Raises GenerationTimeoutError past the deadline and CancelledError once ``disconnected`` says the
    client has gone (None: the caller watches the connection itself, as a streaming response does):
    no event produced after either reaches the caller."""
    watchdog = _Watchdog(sources, deadline, disconnected)
    events = _one(sources[0]) if len(sources) == 1 else _merged(sources)
    try:
        async for item in events:
            watchdog.check()
            yield item
        watchdog.check()
    finally:
        watchdog.stop()
        for source in sources:
            source.cancel()
        await events.aclose()
