"""Server-sent events, and the one loop that drives a request's generations.

``drive`` merges the events of all choices of one request (``n`` > 1 runs them side by side), and
ends them all when the client disconnects, when the request times out, or when its consumer stops
early: a generation never outlives the request that asked for it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
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


async def _pump(index: int, source: EventSource, queue: asyncio.Queue[tuple[int, Event] | _End]) -> None:
    try:
        async for event in source:
            await queue.put((index, event))
    except Exception as exc:  # the engine failed this generation: the request fails with it
        await queue.put(_End(index, exc))
        return
    await queue.put(_End(index))


async def _next_item(
    queue: asyncio.Queue[tuple[int, Event] | _End],
    deadline: Deadline,
    disconnected: Callable[[], Awaitable[bool]],
) -> tuple[int, Event] | _End:
    while True:
        left = deadline.remaining()
        wait = POLL_SECONDS if left is None else max(0.0, min(POLL_SECONDS, left))
        try:
            return await asyncio.wait_for(queue.get(), wait)
        except asyncio.TimeoutError:
            pass
        if deadline.expired():
            raise GenerationTimeoutError(f"the request took longer than {deadline.seconds:g} seconds")
        if await disconnected():
            raise CancelledError("the client disconnected")


async def drive(
    sources: Sequence[EventSource],
    deadline: Deadline,
    disconnected: Callable[[], Awaitable[bool]],
) -> AsyncIterator[tuple[int, Event]]:
    """Yield ``(choice index, event)`` from every source until all have ended; cancel them on exit."""
    queue: asyncio.Queue[tuple[int, Event] | _End] = asyncio.Queue()
    tasks = [asyncio.create_task(_pump(i, s, queue)) for i, s in enumerate(sources)]
    live = len(sources)
    try:
        while live:
            item = await _next_item(queue, deadline, disconnected)
            if isinstance(item, _End):
                if item.error is not None:
                    raise item.error
                live -= 1
                continue
            yield item
    finally:
        for source in sources:
            source.cancel()
        for task in tasks:
            task.cancel()
