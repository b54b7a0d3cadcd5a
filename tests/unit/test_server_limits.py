"""Per-key limits (injectable clock, no sleeping) and the fair admission queue."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qwenkit.errors import OverloadedError, RateLimitError, UsageError
from qwenkit.server.fairqueue import AdmissionController, Slot
from qwenkit.server.limits import KeyLimits, RateLimiter


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(coro)


# -- requests per minute ---------------------------------------------------------------------

# Whole seconds too, so that arrivals land exactly on window edges.
_GAP = st.one_of(st.integers(min_value=0, max_value=40).map(float), st.floats(min_value=0.0, max_value=40.0))


def test_rpm_refuses_the_extra_request_with_retry_after_until_the_window_moves() -> None:
    clock, limited = FakeClock(), list[str]()
    limiter = RateLimiter(KeyLimits(requests_per_minute=2), clock=clock, on_limited=limited.append)
    limiter.acquire("a", 1, 1).release()
    clock.now += 10
    limiter.acquire("a", 1, 1).release()
    clock.now += 5
    with pytest.raises(RateLimitError) as info:
        limiter.acquire("a", 1, 1)
    assert info.value.http_status == 429
    assert info.value.to_openai()["error"]["type"] == "rate_limit_error"
    assert info.value.retry_after == pytest.approx(45.0, abs=1e-3)  # the first one leaves at +60
    assert limited == ["a"]
    limiter.acquire("b", 1, 1).release()  # other keys have their own window
    clock.now += 45.0  # exactly at the edge: still inside the closed window
    with pytest.raises(RateLimitError):
        limiter.acquire("a", 1, 1)
    clock.now += 0.01
    limiter.acquire("a", 1, 1).release()


@settings(max_examples=200, deadline=None)
@given(
    limit=st.integers(min_value=1, max_value=6),
    gaps=st.lists(_GAP, min_size=1, max_size=80),
)
def test_no_60_second_window_ever_admits_more_than_the_limit(limit: int, gaps: list[float]) -> None:
    clock = FakeClock(0.0)
    limiter = RateLimiter(KeyLimits(requests_per_minute=limit), clock=clock)
    admitted: list[float] = []
    for gap in gaps:
        clock.now += gap
        try:
            limiter.acquire("k", 0, 0).release()
            admitted.append(clock.now)
        except RateLimitError as exc:
            # Refused only when the closed window [now - 60, now] already holds `limit` admissions...
            assert sum(1 for t in admitted if t + 60.0 >= clock.now) >= limit
            # ...and retry_after points at the moment the oldest of them leaves it.
            assert 0 < exc.retry_after <= 60.0 + 1e-3
    for start in admitted:
        assert sum(1 for t in admitted if start <= t <= start + 60.0) <= limit


@settings(max_examples=100, deadline=None)
@given(
    limit=st.integers(min_value=1, max_value=5),
    gaps=st.lists(st.floats(0.0, 30.0), min_size=1, max_size=40),
)
def test_retrying_after_retry_after_succeeds(limit: int, gaps: list[float]) -> None:
    clock = FakeClock(0.0)
    limiter = RateLimiter(KeyLimits(requests_per_minute=limit), clock=clock)
    for gap in gaps:
        clock.now += gap
        try:
            limiter.acquire("k", 0, 0).release()
        except RateLimitError as exc:
            clock.now += exc.retry_after
            limiter.acquire("k", 0, 0).release()


# -- tokens per minute -------------------------------------------------------------------------


def test_tpm_reserves_prompt_plus_max_tokens_and_refunds_the_unused_part() -> None:
    clock = FakeClock()
    limiter = RateLimiter(KeyLimits(tokens_per_minute=1000), clock=clock)
    first = limiter.acquire("a", 100, 500)
    assert limiter.usage("a").tokens_in_window == 600
    with pytest.raises(RateLimitError) as info:
        limiter.acquire("a", 100, 400)  # 600 + 500 > 1000
    assert "tokens per" in info.value.message
    assert info.value.retry_after == pytest.approx(60.0, abs=1e-3)
    first.settle(50)  # used 100 prompt + 50 generated: 450 come back
    first.release()
    assert limiter.usage("a").tokens_in_window == 150
    second = limiter.acquire("a", 100, 400)
    assert limiter.usage("a").tokens_in_window == 650
    second.release()  # never settled: the full reservation stays charged
    assert limiter.usage("a").tokens_in_window == 650
    clock.now += 60.001
    assert limiter.usage("a") == limiter.usage("nobody")  # all expired, nothing held


def test_a_request_larger_than_the_token_limit_is_refused_outright() -> None:
    limiter = RateLimiter(KeyLimits(tokens_per_minute=100), clock=FakeClock())
    with pytest.raises(RateLimitError, match="request too large"):
        limiter.acquire("a", 60, 50)
    assert limiter.usage("a").tokens_in_window == 0


def test_tpm_retry_after_waits_for_enough_tokens_to_expire() -> None:
    clock = FakeClock(0.0)
    limiter = RateLimiter(KeyLimits(tokens_per_minute=100), clock=clock)
    limiter.acquire("a", 40, 0).release()  # at t=0
    clock.now = 20.0
    limiter.acquire("a", 40, 0).release()  # at t=20
    clock.now = 30.0
    with pytest.raises(RateLimitError) as info:
        limiter.acquire("a", 50, 0)  # needs the t=0 charge gone: at t=60+
    assert info.value.retry_after == pytest.approx(30.0, abs=1e-3)


# -- concurrency and leases --------------------------------------------------------------------


def test_concurrency_limit_and_lease_release_on_every_exit_path() -> None:
    limiter = RateLimiter(KeyLimits(max_concurrent=1), clock=FakeClock())

    async def scenario() -> None:
        async with limiter.admit("a", 1, 1):
            with pytest.raises(RateLimitError, match="concurrent"):
                async with limiter.admit("a", 1, 1):
                    pass
            async with limiter.admit("b", 1, 1):
                assert limiter.concurrent_total == 2
        assert limiter.usage("a").concurrent == 0
        with pytest.raises(ValueError, match="boom"):
            async with limiter.admit("a", 1, 1):
                raise ValueError("boom")
        assert limiter.usage("a").concurrent == 0

        entered = asyncio.Event()

        async def hold() -> None:
            async with limiter.admit("a", 1, 1):
                entered.set()
                await asyncio.sleep(3600)

        task = asyncio.create_task(hold())
        await entered.wait()
        assert limiter.usage("a").concurrent == 1
        task.cancel()  # a client disconnect
        with pytest.raises(asyncio.CancelledError):
            await task
        assert limiter.concurrent_total == 0

        with pytest.raises(asyncio.TimeoutError):  # a request timeout
            await asyncio.wait_for(hold(), timeout=0.01)
        assert limiter.concurrent_total == 0

    run(scenario())


def test_release_is_idempotent_and_overrides_apply_per_key() -> None:
    limiter = RateLimiter(
        KeyLimits(max_concurrent=1), overrides={"vip": KeyLimits(max_concurrent=3)}, clock=FakeClock()
    )
    leases = [limiter.acquire("vip", 0, 0) for _ in range(3)]
    lease = leases[0]
    lease.release()
    lease.release()
    assert limiter.usage("vip").concurrent == 2
    limiter.acquire("a", 0, 0)
    with pytest.raises(RateLimitError):
        limiter.acquire("a", 0, 0)


def test_invalid_limits_are_usage_errors() -> None:
    with pytest.raises(UsageError):
        KeyLimits(requests_per_minute=0)
    with pytest.raises(UsageError):
        AdmissionController(capacity=0, max_waiting=1)


# -- fair admission queue ----------------------------------------------------------------------


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def test_a_flooding_key_cannot_starve_another_key() -> None:
    async def scenario() -> list[str]:
        ctl = AdmissionController(capacity=1, max_waiting=100)
        order: list[str] = []
        gates: dict[str, asyncio.Event] = {}

        async def request(key: str, name: str) -> None:
            async with ctl.slot(key):
                order.append(name)
                gates[name] = asyncio.Event()
                await gates[name].wait()

        tasks = [asyncio.create_task(request("A", f"A{i}")) for i in range(10)]
        await _settle()
        tasks.append(asyncio.create_task(request("B", "B0")))
        await _settle()
        assert (ctl.running, ctl.waiting) == (1, 10)
        while len(order) < 11:
            gates[order[-1]].set()
            await _settle()
        gates[order[-1]].set()
        await asyncio.gather(*tasks)
        assert (ctl.running, ctl.waiting) == (0, 0)
        return order

    order = run(scenario())
    assert order[:2] == ["A0", "B0"]  # B's single request is admitted as soon as a slot frees
    assert order[2:] == [f"A{i}" for i in range(1, 10)]  # A's own requests stay FIFO


def test_slots_go_to_the_key_holding_the_fewest() -> None:
    async def scenario() -> None:
        ctl = AdmissionController(capacity=3, max_waiting=10)
        a = [await ctl.acquire("A") for _ in range(3)]
        waiters = [asyncio.create_task(ctl.acquire(k)) for k in ("A", "A", "B", "C")]
        await _settle()
        a[0].release()
        await _settle()
        assert ctl.running_for("B") == 1
        a[1].release()
        await _settle()
        assert ctl.running_for("C") == 1 and ctl.waiting == 2
        slots: list[Slot] = [*a[2:], *[t.result() for t in waiters if t.done()]]
        for slot in slots:
            slot.release()
        await _settle()
        for task in waiters:
            (await task).release()
        assert (ctl.running, ctl.waiting) == (0, 0)

    run(scenario())


def test_full_queue_is_503_and_a_flood_is_pushed_out_for_a_newcomer() -> None:
    async def scenario() -> None:
        ctl = AdmissionController(capacity=1, max_waiting=3, retry_after=2.5)
        held = await ctl.acquire("A")
        a_waiters = [asyncio.create_task(ctl.acquire("A")) for _ in range(3)]
        await _settle()
        with pytest.raises(OverloadedError) as info:
            await ctl.acquire("A")  # A cannot displace itself
        assert info.value.http_status == 503 and info.value.retry_after == 2.5
        b = asyncio.create_task(ctl.acquire("B"))
        await _settle()
        assert ctl.waiting == 3 and ctl.waiting_for("B") == 1
        with pytest.raises(OverloadedError, match="displaced"):
            await a_waiters[-1]  # A's newest waiter made room
        held.release()
        await _settle()
        assert b.done()  # and B goes next
        b.result().release()
        for task in a_waiters[:2]:
            (await task).release()
        assert (ctl.running, ctl.waiting) == (0, 0)

    run(scenario())


def test_cancelled_and_timed_out_waiters_leave_the_queue_and_leak_nothing() -> None:
    async def scenario() -> None:
        ctl = AdmissionController(capacity=1, max_waiting=5, wait_timeout=0.05)
        held = await ctl.acquire("A")
        cancelled = asyncio.create_task(ctl.acquire("B"))
        await _settle()
        assert ctl.waiting == 1
        cancelled.cancel()
        with pytest.raises(asyncio.CancelledError):
            await cancelled
        assert ctl.waiting == 0
        with pytest.raises(OverloadedError, match="within"):
            await ctl.acquire("C")  # the queue timeout: no slot within 0.05 s
        assert (ctl.running, ctl.waiting) == (1, 0)
        held.release()
        # A waiter handed the slot in the same instant it is cancelled passes the slot on (a controller
        # without a queue timeout: a stall of 0.05 s on a loaded machine must not expire D and E).
        ctl = AdmissionController(capacity=1, max_waiting=5)
        held = await ctl.acquire("A")
        racer = asyncio.create_task(ctl.acquire("D"))
        nxt = asyncio.create_task(ctl.acquire("E"))
        await _settle()
        held.release()  # grants D...
        racer.cancel()  # ...which is cancelled before it runs
        with pytest.raises(asyncio.CancelledError):
            await racer
        slot = await nxt
        assert slot.key == "E" and ctl.running == 1
        slot.release()
        assert (ctl.running, ctl.waiting) == (0, 0)

    run(scenario())


def test_queue_time_is_measured_with_the_injected_clock() -> None:
    clock = FakeClock(0.0)

    async def scenario() -> float:
        ctl = AdmissionController(capacity=1, max_waiting=1, clock=clock)
        held = await ctl.acquire("A")
        waiter = asyncio.create_task(ctl.acquire("B"))
        await _settle()
        clock.now = 7.5
        held.release()
        slot = await waiter
        slot.release()
        return slot.queued_seconds

    assert run(scenario()) == 7.5


def test_admission_counts_sequences_not_requests() -> None:
    """A request with n choices takes n engine slots; the fairest waiter goes first even if wide."""
    from qwenkit.server.fairqueue import AdmissionController

    async def scenario() -> list[str]:
        queue = AdmissionController(capacity=4, max_waiting=8)
        first = await queue.acquire("a", 3)
        assert queue.running == 3
        order: list[str] = []

        async def wait(key: str, weight: int) -> None:
            slot = await queue.acquire(key, weight)
            order.append(f"{key}{weight}")
            slot.release()

        wide = asyncio.ensure_future(wait("b", 2))  # does not fit beside 3
        await asyncio.sleep(0)
        narrow = asyncio.ensure_future(wait("c", 1))  # would fit, but must not slip past b
        await asyncio.sleep(0)
        assert queue.waiting == 2 and order == []
        first.release()
        await asyncio.gather(wide, narrow)
        huge = await queue.acquire("d", 50)  # more than the engine has: holds all of it
        assert huge.weight == 4 and queue.running == 4
        huge.release()
        return order

    assert asyncio.run(scenario())[0] == "b2"
