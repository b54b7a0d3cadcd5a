"""Slots and a bounded FIFO of waiting requests: who runs next, and where.

The scheduler knows nothing about models. A backend asks it to ``admit`` waiting requests into free
slots (choosing the slot itself, e.g. by longest cached prefix) and to ``release`` a slot when its
sequence ends. Cancelled requests that are still waiting are dropped on the way.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

from qwenkit.errors import OverloadedError

R = TypeVar("R")


class Scheduler(Generic[R]):
    def __init__(self, n_slots: int, max_queue: int, is_cancelled: Callable[[R], bool]) -> None:
        self.n_slots = n_slots
        self.max_queue = max_queue
        self._is_cancelled = is_cancelled
        self._lock = threading.Lock()
        self._waiting: deque[R] = deque()
        self._running: dict[int, R] = {}

    def submit(self, request: R) -> None:
        """Queue a request; raises OverloadedError when more than ``max_queue`` would wait for a slot."""
        with self._lock:
            self._drop_cancelled()
            beyond_slots = len(self._waiting) - (self.n_slots - len(self._running))
            if beyond_slots >= self.max_queue:
                raise OverloadedError(
                    f"server busy: {len(self._waiting)} requests already waiting for {self.n_slots} slots",
                    retry_after=1.0,
                )
            self._waiting.append(request)

    def admit(
        self, choose_slot: Callable[[R, Sequence[int]], int], limit: int | None = None
    ) -> list[tuple[int, R]]:
        """Move up to ``limit`` waiting requests, oldest first, into free slots; ``choose_slot`` picks
        among the free ones."""
        admitted: list[tuple[int, R]] = []
        with self._lock:
            self._drop_cancelled()
            while self._waiting and len(self._running) < self.n_slots:
                if limit is not None and len(admitted) >= limit:
                    break
                request = self._waiting.popleft()
                free = self.free_slots()
                slot = choose_slot(request, free)
                if slot not in free:
                    raise ValueError(f"choose_slot returned {slot}, not a free slot in {free}")
                self._running[slot] = request
                admitted.append((slot, request))
        return admitted

    def release(self, slot: int) -> R | None:
        with self._lock:
            return self._running.pop(slot, None)

    def free_slots(self) -> list[int]:
        return [i for i in range(self.n_slots) if i not in self._running]

    def running(self) -> dict[int, R]:
        with self._lock:
            return dict(self._running)

    @property
    def n_waiting(self) -> int:
        with self._lock:
            return len(self._waiting)

    @property
    def idle(self) -> bool:
        with self._lock:
            return not self._running and not any(not self._is_cancelled(r) for r in self._waiting)

    def drain(self) -> list[R]:
        """Remove and return every request, waiting or running (used when the backend closes)."""
        with self._lock:
            everything = list(self._running.values()) + list(self._waiting)
            self._running.clear()
            self._waiting.clear()
        return everything

    def _drop_cancelled(self) -> None:
        if any(self._is_cancelled(r) for r in self._waiting):
            self._waiting = deque(r for r in self._waiting if not self._is_cancelled(r))
