"""Backpressure: ``capacity`` running slots, a bounded waiting queue, fair across API keys.

A slot is one engine sequence: a request asking for ``n`` choices (or several prompts) acquires that many
at once (``acquire(key, weight=n)``), so what is admitted here always fits the engine's real slots.

Use (after the rate limiter, around the generation itself; ``qwenkit.server.admission`` wires it)::

    admission = AdmissionController(capacity=settings.parallel, max_waiting=settings.max_queue,
                                    wait_timeout=settings.queue_timeout or None)
    async with admission.slot(key_name) as slot:    # waits; OverloadedError (503) when refused
        metrics_queue_time = slot.queued_seconds
        ...generate...

``await admission.acquire(key)`` returns the same ``Slot`` for code that must hand it on (then
``slot.release()`` in a ``finally``; release is idempotent). ``running`` and ``waiting`` are the live
counts (``ServerMetrics`` reads them at scrape time).

Refusals (``OverloadedError``, 503, ``retry_after`` seconds): the queue is full (the waiting count
never exceeds ``max_waiting``, so memory is bounded), or a waiter waited ``wait_timeout`` seconds.

Fairness: each key has its own FIFO of waiters. When a slot frees it goes to the waiting key that
holds the FEWEST running slots, ties broken by the key served longest ago; so one key flooding the
server cannot starve another: a key with a single waiting request is served before a key that
already holds slots or was served more recently. When the queue is full, a newcomer whose key has
fewer waiters than the key with the most pushes out that key's NEWEST waiter (it gets the 503),
so a flood cannot lock other keys out of the queue either.

Cancellation: a waiter cancelled while waiting (client disconnect, request timeout) leaves its
queue; if a slot had just been handed to it, the slot passes straight on. All bookkeeping runs
synchronously on the event loop (no ``await`` inside a state change), so it is asyncio-safe; use
one controller per event loop.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType

from qwenkit.errors import OverloadedError, UsageError

Clock = Callable[[], float]


@dataclass(eq=False)
class _Waiter:
    key: str
    future: asyncio.Future[None]
    weight: int = 1
    state: str = "waiting"  # waiting -> granted | removed


@dataclass
class _KeyQueue:
    waiters: deque[_Waiter] = field(default_factory=deque)
    running: int = 0  # slots (sequences) this key holds
    last_served: int = -1  # admission sequence number; -1: never served


class Slot:
    """``weight`` running slots held together; an async context manager whose exit always frees them."""

    def __init__(
        self, controller: AdmissionController, key: str, queued_seconds: float, weight: int = 1
    ) -> None:
        self.key = key
        self.queued_seconds = queued_seconds
        self.weight = weight
        self._controller = controller
        self.released = False

    def release(self) -> None:
        if not self.released:
            self.released = True
            self._controller._free(self.key, self.weight)

    async def __aenter__(self) -> Slot:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


class _SlotContext:
    def __init__(self, controller: AdmissionController, key: str) -> None:
        self._controller = controller
        self._key = key
        self._slot: Slot | None = None

    async def __aenter__(self) -> Slot:
        self._slot = await self._controller.acquire(self._key)
        return self._slot

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._slot is not None:
            self._slot.release()


class AdmissionController:
    """Running slots plus per-key waiting queues (see the module docstring for the policy)."""

    def __init__(
        self,
        capacity: int,
        max_waiting: int,
        wait_timeout: float | None = None,
        *,
        retry_after: float = 1.0,
        clock: Clock = time.monotonic,
    ) -> None:
        if capacity < 1:
            raise UsageError("the number of parallel requests must be at least 1", param="parallel")
        if max_waiting < 0:
            raise UsageError("the waiting queue size cannot be negative", param="max_queue")
        if wait_timeout is not None and wait_timeout <= 0:
            raise UsageError("the queue timeout must be positive (or unset)", param="queue_timeout")
        self.capacity = capacity
        self.max_waiting = max_waiting
        self.wait_timeout = wait_timeout
        self.retry_after = retry_after
        self._clock = clock
        self._keys: dict[str, _KeyQueue] = {}
        self._running = 0
        self._waiting = 0
        self._served = 0

    @property
    def running(self) -> int:
        return self._running

    @property
    def waiting(self) -> int:
        return self._waiting

    def running_for(self, key: str) -> int:
        queue = self._keys.get(key)
        return queue.running if queue else 0

    def waiting_for(self, key: str) -> int:
        queue = self._keys.get(key)
        return len(queue.waiters) if queue else 0

    def slot(self, key: str) -> _SlotContext:  # one sequence
        """``async with controller.slot(key) as slot``: waits fairly; frees the slot on exit."""
        return _SlotContext(self, key)

    async def acquire(self, key: str, weight: int = 1) -> Slot:
        """Wait for ``weight`` running slots for ``key`` (at most all of them: a request with more
        sequences than the engine has slots holds the whole engine, and its other sequences wait in
        the engine's own queue); OverloadedError when the queue refuses or times out."""
        if weight < 1:
            raise UsageError("a request needs at least one sequence", param="n")
        weight = min(weight, self.capacity)
        started = self._clock()
        if self._running + weight <= self.capacity and self._waiting == 0:
            self._grant_now(self._keys.setdefault(key, _KeyQueue()), weight)
            return Slot(self, key, 0.0, weight)
        waiter = self._enqueue(key, weight)
        loop = asyncio.get_running_loop()
        timer = loop.call_later(self.wait_timeout, self._expire, waiter) if self.wait_timeout else None
        try:
            await waiter.future
        except BaseException:
            if waiter.state == "granted":  # handed slots just as we were cancelled: pass them on
                self._free(key, weight)
            else:
                self._remove(waiter)
            raise
        finally:
            if timer is not None:
                timer.cancel()
        return Slot(self, key, max(0.0, self._clock() - started), weight)

    # -- internals (all synchronous: atomic on the event loop) ----------------------------------

    def _grant_now(self, queue: _KeyQueue, weight: int) -> None:
        self._running += weight
        queue.running += weight
        queue.last_served = self._served
        self._served += 1

    def _overloaded(self, why: str) -> OverloadedError:
        return OverloadedError(f"the server is overloaded: {why}; retry later", retry_after=self.retry_after)

    def _enqueue(self, key: str, weight: int) -> _Waiter:
        if self._waiting >= self.max_waiting:
            victim = self._push_out_candidate(key)
            if victim is None:
                self._forget_idle()
                raise self._overloaded(f"{self.max_waiting} requests are already waiting")
            self._remove(victim)
            victim.future.set_exception(self._overloaded("this request was displaced from a full queue"))
        waiter = _Waiter(key, asyncio.get_running_loop().create_future(), weight)
        self._keys.setdefault(key, _KeyQueue()).waiters.append(waiter)
        self._waiting += 1
        return waiter

    def _push_out_candidate(self, key: str) -> _Waiter | None:
        """The newest waiter of the key with the most waiters, if it has more than ``key``."""
        mine = self.waiting_for(key)
        heaviest = max(self._keys.values(), key=lambda q: len(q.waiters), default=None)
        if heaviest is None or len(heaviest.waiters) <= mine + 1:
            return None
        return heaviest.waiters[-1]

    def _remove(self, waiter: _Waiter) -> None:
        if waiter.state != "waiting":
            return
        waiter.state = "removed"
        queue = self._keys.get(waiter.key)
        if queue is not None:
            queue.waiters.remove(waiter)
            self._waiting -= 1
            self._forget_idle()
            self._grant_waiting()  # a wide waiter leaving may let narrower ones in

    def _expire(self, waiter: _Waiter) -> None:
        if waiter.state == "waiting":
            self._remove(waiter)
            if not waiter.future.done():
                waiter.future.set_exception(
                    self._overloaded(f"no slot became free within {self.wait_timeout:g} s")
                )

    def _next_key(self) -> _KeyQueue | None:
        candidates = [q for q in self._keys.values() if q.waiters]
        if not candidates:
            return None
        return min(candidates, key=lambda q: (q.running, q.last_served))

    def _free(self, key: str, weight: int) -> None:
        """Slots held by ``key`` end: hand them to the fairest waiters, or return them to the pool."""
        queue = self._keys.get(key)
        if queue is not None:
            queue.running -= weight
        self._running -= weight
        self._forget_idle()
        self._grant_waiting()

    def _grant_waiting(self) -> None:
        """In fairness order, while the fairest waiter fits: a wide request is never starved by narrow
        ones slipping past it."""
        while (nxt := self._next_key()) is not None:
            if self._running + nxt.waiters[0].weight > self.capacity:
                return
            waiter = nxt.waiters.popleft()
            self._waiting -= 1
            waiter.state = "granted"
            self._grant_now(nxt, waiter.weight)
            if not waiter.future.done():
                waiter.future.set_result(None)

    def _forget_idle(self) -> None:
        """Drop idle keys once nobody waits: their service history only matters while someone does."""
        if self._waiting == 0:
            for key in [k for k, q in self._keys.items() if q.running == 0 and not q.waiters]:
                del self._keys[key]
