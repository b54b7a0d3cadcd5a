"""``server.sse.drive``: merging choices, and ending them on timeout, disconnect, error or early exit.

The deadline and the client's connection must be enforced while tokens keep flowing, not only when
the stream pauses: the sources here never pause, and stop by themselves only long after the limit.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from qwenkit.chat.events import ContentDelta, Done, Event
from qwenkit.errors import CancelledError
from qwenkit.server.errors import GenerationTimeoutError
from qwenkit.server.sse import POLL_SECONDS, Deadline, drive

MANY = 4000  # events a flowing source gives before it stops by itself (far past every limit below)


class FlowingSource:
    """Yields ``count`` deltas ``gap`` seconds apart; on cancel it ends, after one last Done event
    (as a ChatStream does when its handle is cancelled)."""

    def __init__(self, count: int = MANY, gap: float = 0.005, fail_at: int | None = None) -> None:
        self.count, self.gap, self.fail_at = count, gap, fail_at
        self.cancelled = 0
        self.given = 0

    def cancel(self) -> None:
        self.cancelled += 1

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._events()

    async def _events(self) -> AsyncIterator[Event]:
        for i in range(self.count):
            if self.cancelled:
                yield Done("cancelled")
                return
            if i == self.fail_at:
                raise RuntimeError("engine failed")
            await asyncio.sleep(self.gap)
            self.given += 1
            yield ContentDelta(f"t{i}")


async def _never() -> bool:
    return False


Watch = Callable[[], Awaitable[bool]] | None


async def _collect(
    sources: list[FlowingSource], deadline: Deadline, disconnected: Watch = _never
) -> list[tuple[int, Event]]:
    return [item async for item in drive(sources, deadline, disconnected)]


@pytest.mark.parametrize("watch_client", [True, False])
@pytest.mark.parametrize("n", [1, 3])
def test_every_event_of_every_choice_in_order(n: int, watch_client: bool) -> None:
    sources = [FlowingSource(count=20, gap=0.001) for _ in range(n)]
    items = asyncio.run(_collect(sources, Deadline(0), _never if watch_client else None))
    for index in range(n):
        texts = [e.text for i, e in items if i == index]
        assert texts == [f"t{k}" for k in range(20)]
    assert len(items) == 20 * n
    assert all(s.cancelled for s in sources)  # drive always cancels (a no-op for a finished stream)


@pytest.mark.parametrize("watch_client", [True, False])
@pytest.mark.parametrize("n", [1, 3])
def test_deadline_ends_a_stream_that_never_pauses(n: int, watch_client: bool) -> None:
    sources = [FlowingSource() for _ in range(n)]
    seen: list[tuple[int, Event]] = []

    async def run() -> None:
        async for item in drive(sources, Deadline(0.3), _never if watch_client else None):
            seen.append(item)

    with pytest.raises(GenerationTimeoutError, match=r"longer than 0\.3 seconds"):
        asyncio.run(run())
    assert all(s.cancelled for s in sources)
    assert all(s.given < MANY for s in sources)
    assert not any(isinstance(e, Done) for _, e in seen)  # nothing after the deadline reaches the caller


@pytest.mark.parametrize("n", [1, 2])
def test_disconnect_ends_a_stream_that_never_pauses(n: int) -> None:
    sources = [FlowingSource() for _ in range(n)]
    checks = [0]

    async def disconnected() -> bool:
        checks[0] += 1
        return checks[0] >= 2

    with pytest.raises(CancelledError, match="disconnected"):
        asyncio.run(_collect(sources, Deadline(0), disconnected))
    assert all(s.cancelled for s in sources)
    assert all(s.given < MANY for s in sources)
    assert checks[0] == 2


@pytest.mark.parametrize("n", [1, 3])
def test_a_failing_choice_fails_the_request_and_ends_the_others(n: int) -> None:
    sources = [FlowingSource(count=50, gap=0.001, fail_at=5 if i == 0 else None) for i in range(n)]
    with pytest.raises(RuntimeError, match="engine failed"):
        asyncio.run(_collect(sources, Deadline(0)))
    assert all(s.cancelled for s in sources)


@pytest.mark.parametrize("n", [1, 3])
def test_a_consumer_that_stops_early_cancels_every_choice(n: int) -> None:
    sources = [FlowingSource() for _ in range(n)]

    async def run() -> int:
        got = 0
        stream = drive(sources, Deadline(0), _never)
        async for _ in stream:
            got += 1
            if got == 5:
                break
        await stream.aclose()
        await asyncio.sleep(2 * POLL_SECONDS)  # a leftover watchdog would still be checking by now
        return got

    assert asyncio.run(run()) == 5
    assert all(s.cancelled == 1 for s in sources)  # once, by drive; no watchdog left to cancel again
