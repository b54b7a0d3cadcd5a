"""QueuedHandle: the producer/consumer contract every backend relies on."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from _wake_counter import WakeCounter
from qwenkit.engine.handle import QueuedHandle, Wakeups
from qwenkit.engine.types import FinishReason, GenerationHandle, TokenEvent
from qwenkit.errors import UsageError


def _produce(
    handle: QueuedHandle, ids: list[int], reason: FinishReason, delay: float = 0.0
) -> threading.Thread:
    def run() -> None:
        for tid in ids:
            if delay:
                time.sleep(delay)
            handle.push(TokenEvent(tid))
        handle.finish(reason)

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_satisfies_protocol() -> None:
    assert isinstance(QueuedHandle(), GenerationHandle)


def test_sync_iteration_blocks_until_events_and_finish() -> None:
    handle = QueuedHandle()
    thread = _produce(handle, [5, 6, 7], FinishReason.STOP, delay=0.01)
    assert [ev.token_id for ev in handle] == [5, 6, 7]
    thread.join()
    assert handle.finish_reason is FinishReason.STOP
    assert handle.timings.completion_tokens == 3
    assert handle.timings.first_token > 0
    assert handle.timings.finished >= handle.timings.first_token


def test_async_iteration_is_woken_by_the_engine_thread() -> None:
    handle = QueuedHandle()

    async def consume() -> list[int]:
        thread = _produce(handle, list(range(20)), FinishReason.LENGTH, delay=0.002)
        out = [ev.token_id async for ev in handle]
        thread.join()
        return out

    assert asyncio.run(consume()) == list(range(20))
    assert handle.finish_reason is FinishReason.LENGTH


def test_async_consumer_does_not_spawn_threads_or_poll() -> None:
    handle = QueuedHandle()
    before = threading.active_count()

    async def consume() -> list[int]:
        task = asyncio.ensure_future(_collect(handle))
        await asyncio.sleep(0.05)
        assert threading.active_count() == before  # parked on a future, no helper thread
        handle.push(TokenEvent(1))
        handle.finish(FinishReason.STOP)
        return await asyncio.wait_for(task, 2.0)

    assert asyncio.run(consume()) == [1]


async def _collect(handle: QueuedHandle) -> list[int]:
    return [ev.token_id async for ev in handle]


def test_engine_error_reaches_the_consumer_after_earlier_events() -> None:
    handle = QueuedHandle()
    handle.push(TokenEvent(3))
    handle.fail(RuntimeError("decode failed"))
    seen: list[int] = []
    with pytest.raises(RuntimeError, match="decode failed"):
        for ev in handle:
            seen.append(ev.token_id)
    assert seen == [3]
    assert handle.error is not None
    assert handle.finish_reason is None


def test_engine_error_reaches_async_consumer() -> None:
    handle = QueuedHandle()
    handle.fail(ValueError("boom"))
    with pytest.raises(ValueError, match="boom"):
        asyncio.run(_collect(handle))


def test_cancel_is_idempotent_ends_stream_and_notifies_engine() -> None:
    calls: list[int] = []
    handle = QueuedHandle(on_cancel=lambda: calls.append(1))
    handle.push(TokenEvent(1))
    handle.cancel()
    handle.cancel()
    assert calls == [1]
    assert handle.cancelled
    assert handle.finish_reason is FinishReason.CANCELLED
    handle.push(TokenEvent(2))  # the engine may still be mid-step: dropped
    handle.finish(FinishReason.STOP)  # and cannot override the reason
    assert [ev.token_id for ev in handle] == [1]
    assert handle.finish_reason is FinishReason.CANCELLED


def test_cancel_wakes_a_blocked_sync_consumer() -> None:
    handle = QueuedHandle()
    result: list[list[int]] = []
    thread = threading.Thread(target=lambda: result.append([ev.token_id for ev in handle]))
    thread.start()
    time.sleep(0.05)
    handle.cancel()
    thread.join(2.0)
    assert not thread.is_alive()
    assert result == [[]]


def test_cancel_after_finish_keeps_the_reason() -> None:
    handle = QueuedHandle()
    handle.finish(FinishReason.LENGTH)
    handle.cancel()
    assert handle.finish_reason is FinishReason.LENGTH


def test_inject_queues_ids_in_order_for_the_engine() -> None:
    handle = QueuedHandle(vocab_size=100)
    handle.inject([1, 2])
    handle.inject([3])
    assert handle.has_injected
    assert handle.take_injected() == [1, 2, 3]
    assert handle.take_injected() == []


@pytest.mark.parametrize("bad", [-1, 100, "7", 1.5])
def test_inject_rejects_ids_outside_the_vocabulary(bad: object) -> None:
    handle = QueuedHandle(vocab_size=100)
    with pytest.raises(UsageError):
        handle.inject([bad])  # type: ignore[list-item]
    assert handle.take_injected() == []


def test_inject_after_finish_is_ignored() -> None:
    handle = QueuedHandle()
    handle.finish(FinishReason.STOP)
    handle.inject([1])
    assert handle.take_injected() == []


async def _first(handle: QueuedHandle) -> int:
    async for event in handle:
        return event.token_id
    raise AssertionError("the stream ended without a token")


def test_a_steps_pushes_wake_each_event_loop_once_when_flushed() -> None:
    """An engine step pushes to many handles, then wakes their consumers: one callback per event loop,
    and none before the step's flush (a consumer woken mid-step takes the GIL from the engine)."""
    handles = [QueuedHandle() for _ in range(4)]

    async def main() -> tuple[list[int], int]:
        wakes = WakeCounter(asyncio.get_running_loop())
        firsts = [asyncio.ensure_future(_first(h)) for h in handles]
        await asyncio.sleep(0.05)  # every consumer parked on its future
        wakeups = Wakeups()

        def step() -> None:
            for i, h in enumerate(handles):
                h.push(TokenEvent(i), wakeups)

        engine = threading.Thread(target=step)
        engine.start()
        engine.join()
        await asyncio.sleep(0.05)
        assert not any(f.done() for f in firsts) and wakes.calls == 0  # pushed, not yet woken
        flusher = threading.Thread(target=wakeups.flush)
        flusher.start()
        flusher.join()
        return list(await asyncio.wait_for(asyncio.gather(*firsts), 2.0)), wakes.calls

    got, calls = asyncio.run(main())
    assert got == [0, 1, 2, 3] and calls == 1


class _ParkSignal(threading.Condition):
    """The handle's condition, telling when a consumer has parked on it (sleeps would race a slow start)."""

    def __init__(self) -> None:
        super().__init__(threading.Lock())
        self.parked = threading.Event()

    def wait(self, timeout: float | None = None) -> bool:
        self.parked.set()
        return super().wait(timeout)


def test_a_sync_consumer_sees_a_deferred_push_once_flushed() -> None:
    handle, wakeups = QueuedHandle(), Wakeups()
    handle._cond = park = _ParkSignal()
    seen: list[int] = []
    consumer = threading.Thread(target=lambda: seen.extend(ev.token_id for ev in handle))
    consumer.start()
    assert park.parked.wait(10)
    park.parked.clear()
    handle.push(TokenEvent(9), wakeups)
    time.sleep(0.05)  # a consumer woken by the push (the bug) has the time to take it
    assert seen == [] and not park.parked.is_set()  # still parked: no wake-up until the flush
    wakeups.flush()
    deadline = time.monotonic() + 10
    while not seen and time.monotonic() < deadline:
        time.sleep(0.01)
    assert seen == [9]
    handle.finish(FinishReason.STOP)
    consumer.join(2.0)
    assert seen == [9] and not consumer.is_alive()
