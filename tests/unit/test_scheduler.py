"""Scheduler: bounded queue, FIFO admission into free slots, cancelled requests dropped."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pytest

from qwenkit.engine.scheduler import Scheduler
from qwenkit.errors import OverloadedError


@dataclass
class Req:
    name: str
    cancelled: bool = False


def _sched(slots: int = 2, queue: int = 2) -> Scheduler[Req]:
    return Scheduler(slots, queue, lambda r: r.cancelled)


def _first(_req: Req, free: Sequence[int]) -> int:
    return free[0]


def test_admits_fifo_into_free_slots() -> None:
    s = _sched(slots=2, queue=4)
    for name in "abc":
        s.submit(Req(name))
    admitted = s.admit(_first)
    assert [(slot, r.name) for slot, r in admitted] == [(0, "a"), (1, "b")]
    assert s.n_waiting == 1
    assert s.admit(_first) == []  # no slot free
    s.release(0)
    assert [(slot, r.name) for slot, r in s.admit(_first)] == [(0, "c")]


def test_queue_bound_counts_only_requests_beyond_the_slots() -> None:
    s = _sched(slots=2, queue=1)
    s.submit(Req("a"))
    s.submit(Req("b"))  # both will get a slot
    s.submit(Req("c"))  # the one allowed to wait
    with pytest.raises(OverloadedError) as info:
        s.submit(Req("d"))
    assert info.value.http_status == 503
    s.admit(_first)  # a and b run, c still waits: the queue is full
    with pytest.raises(OverloadedError):
        s.submit(Req("d"))
    s.release(0)  # a slot frees up for c
    s.submit(Req("d"))
    assert [r.name for _, r in s.admit(_first)] == ["c"]
    assert s.n_waiting == 1


def test_cancelled_waiting_requests_are_dropped_and_free_queue_room() -> None:
    s = _sched(slots=1, queue=1)
    a, b, c = Req("a"), Req("b"), Req("c")
    s.submit(a)
    s.submit(b)
    b.cancelled = True
    s.submit(c)  # b no longer counts
    assert [r.name for _, r in s.admit(_first)] == ["a"]
    s.release(0)
    assert [r.name for _, r in s.admit(_first)] == ["c"]


def test_choose_slot_decides_placement() -> None:
    s = _sched(slots=3, queue=3)
    s.submit(Req("a"))
    admitted = s.admit(lambda _r, free: free[-1])
    assert admitted[0][0] == 2
    assert s.free_slots() == [0, 1]
    assert set(s.running()) == {2}


def test_choose_slot_must_return_a_free_slot() -> None:
    s = _sched()
    s.submit(Req("a"))
    with pytest.raises(ValueError):
        s.admit(lambda _r, _free: 7)


def test_idle_and_drain() -> None:
    s = _sched()
    assert s.idle
    s.submit(Req("a"))
    assert not s.idle
    s.admit(_first)
    s.submit(Req("b"))
    assert sorted(r.name for r in s.drain()) == ["a", "b"]
    assert s.idle
    assert s.release(0) is None

