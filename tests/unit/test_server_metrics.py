"""Metrics: per-app registries, live queue gauges, thread safety; and the admission gate's bookkeeping."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass
from types import SimpleNamespace

import pytest
from prometheus_client import REGISTRY, CollectorRegistry

from qwenkit.errors import OverloadedError, RateLimitError
from qwenkit.server.admission import ServerGate, build_gate, metrics_for, metrics_response
from qwenkit.server.fairqueue import AdmissionController
from qwenkit.server.limits import KeyLimits, RateLimiter
from qwenkit.server.metrics import ServerMetrics

NAMES = (
    "qwenkit:time_to_first_token_seconds",
    "qwenkit:inter_token_latency_seconds",
    "qwenkit:e2e_request_latency_seconds",
    "qwenkit:request_queue_time_seconds",
    "qwenkit:num_requests_running",
    "qwenkit:num_requests_waiting",
    "qwenkit:prompt_tokens_total",
    "qwenkit:generation_tokens_total",
    "qwenkit:reasoning_tokens_total",
    "qwenkit:requests_total",
    "qwenkit:rate_limited_total",
    "qwenkit:process_resident_memory_bytes",
)


def value(metrics: ServerMetrics, name: str, **labels: str) -> float:
    got = metrics.registry.get_sample_value(name, labels)
    assert got is not None, f"no sample {name}{labels}"
    return got


def test_each_server_has_its_own_registry_and_never_touches_the_global_one() -> None:
    first, second = ServerMetrics(), ServerMetrics(registry=CollectorRegistry())
    first.observe_request("ok", prompt_tokens=5, completion_tokens=7)
    assert value(first, "qwenkit:prompt_tokens_total") == 5
    assert value(second, "qwenkit:prompt_tokens_total") == 0
    assert REGISTRY.get_sample_value("qwenkit:prompt_tokens_total") is None


def test_observe_request_records_every_series() -> None:
    m = ServerMetrics()
    m.observe_request(
        "ok", e2e=2.0, queue=0.5, ttft=0.2, prompt_tokens=10, completion_tokens=20, reasoning_tokens=8
    )
    m.observe_request("aborted", e2e=1.0)
    m.observe_inter_token(0.05, count=19)
    m.count_request("rate_limited")
    assert value(m, "qwenkit:requests_total", status="ok") == 1
    assert value(m, "qwenkit:requests_total", status="aborted") == 1
    assert value(m, "qwenkit:requests_total", status="rate_limited") == 1
    assert value(m, "qwenkit:e2e_request_latency_seconds_count") == 2
    assert value(m, "qwenkit:e2e_request_latency_seconds_sum") == pytest.approx(3.0)
    assert value(m, "qwenkit:request_queue_time_seconds_count") == 1
    assert value(m, "qwenkit:time_to_first_token_seconds_bucket", le="0.25") == 1
    assert value(m, "qwenkit:time_to_first_token_seconds_bucket", le="0.1") == 0
    assert value(m, "qwenkit:inter_token_latency_seconds_count") == 19
    assert value(m, "qwenkit:generation_tokens_total") == 20
    assert value(m, "qwenkit:reasoning_tokens_total") == 8
    with pytest.raises(ValueError, match="negative"):
        m.observe_request("ok", prompt_tokens=-1)


def test_render_exposes_every_name_and_the_key_name_only() -> None:
    m = ServerMetrics()
    m.rate_limited("alice")
    m.rate_limited("alice")
    assert value(m, "qwenkit:rate_limited_total", key="alice") == 2
    body, content_type = m.render()
    text = body.decode()
    assert content_type.startswith("text/plain")
    for name in NAMES:
        assert f"# TYPE {name} " in text, name
    assert 'qwenkit:requests_total{status="overloaded"} 0.0' in text
    assert value(m, "qwenkit:process_resident_memory_bytes") > 1_000_000
    om_body, om_type = m.render("application/openmetrics-text; version=1.0.0")
    assert om_type.startswith("application/openmetrics-text") and om_body.rstrip().endswith(b"# EOF")


def test_running_and_waiting_gauges_read_the_queue_at_scrape_time() -> None:
    m = ServerMetrics()
    assert value(m, "qwenkit:num_requests_running") == 0

    async def scenario() -> None:
        ctl = AdmissionController(capacity=2, max_waiting=5)
        m.bind_queue(ctl)
        held = [await ctl.acquire("a"), await ctl.acquire("b")]
        waiter = asyncio.create_task(ctl.acquire("c"))
        await asyncio.sleep(0)
        assert value(m, "qwenkit:num_requests_running") == 2
        assert value(m, "qwenkit:num_requests_waiting") == 1
        waiter.cancel()
        await asyncio.gather(waiter, return_exceptions=True)
        for slot in held:
            slot.release()
        assert value(m, "qwenkit:num_requests_running") == 0
        assert value(m, "qwenkit:num_requests_waiting") == 0

    asyncio.run(scenario())


def test_metrics_are_safe_to_update_from_many_threads() -> None:
    m = ServerMetrics()

    def work() -> None:
        for _ in range(500):
            m.observe_request("ok", e2e=0.1, prompt_tokens=1, completion_tokens=2)
            m.observe_inter_token(0.01)
            m.rate_limited("k")

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert value(m, "qwenkit:requests_total", status="ok") == 4000
    assert value(m, "qwenkit:generation_tokens_total") == 8000
    assert value(m, "qwenkit:inter_token_latency_seconds_count") == 4000
    assert value(m, "qwenkit:rate_limited_total", key="k") == 4000


# -- the admission gate ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Usage:
    prompt_tokens: int
    completion_tokens: int
    reasoning_tokens: int


@dataclass(frozen=True)
class _Result:
    usage: _Usage
    time_to_first_token: float
    decode_tokens_per_second: float


def _request(key_name: str | None) -> SimpleNamespace:
    state = SimpleNamespace() if key_name is None else SimpleNamespace(key_name=key_name)
    return SimpleNamespace(state=state)


def test_gate_admits_settles_releases_and_counts() -> None:
    m = ServerMetrics()
    limiter = RateLimiter(KeyLimits(tokens_per_minute=1000, max_concurrent=1), on_limited=m.rate_limited)
    gate = ServerGate(limiter, AdmissionController(capacity=1, max_waiting=0), m)

    async def scenario() -> None:
        ticket = await gate.admit(_request("alice"), 100, 300)
        assert ticket.key_name == "alice" and value(m, "qwenkit:num_requests_running") == 1
        with pytest.raises(RateLimitError):
            await gate.admit(_request("alice"), 1, 1)  # one at a time for alice
        with pytest.raises(OverloadedError):
            await gate.admit(_request("bob"), 1, 1)  # the only slot is taken, no queue
        assert limiter.usage("bob").concurrent == 0  # bob's lease was given back
        ticket.release(20)
        ticket.release(20)
        assert limiter.usage("alice").tokens_in_window == 120
        anonymous = await gate.admit(_request(None), 1, 1)
        assert anonymous.key_name is None
        anonymous.release(None)

    asyncio.run(scenario())
    assert value(m, "qwenkit:rate_limited_total", key="alice") == 1
    assert value(m, "qwenkit:requests_total", status="ok") == 1
    assert value(m, "qwenkit:requests_total", status="aborted") == 1
    assert value(m, "qwenkit:requests_total", status="rate_limited") == 1
    assert value(m, "qwenkit:requests_total", status="overloaded") == 1
    assert value(m, "qwenkit:generation_tokens_total") == 20
    assert value(m, "qwenkit:prompt_tokens_total") == 101
    assert value(m, "qwenkit:num_requests_running") == 0

    gate.observe("chat", [_Result(_Usage(100, 11, 4), 0.3, 50.0)])
    assert value(m, "qwenkit:time_to_first_token_seconds_count") == 1
    assert value(m, "qwenkit:inter_token_latency_seconds_count") == 10
    assert value(m, "qwenkit:inter_token_latency_seconds_sum") == pytest.approx(0.2)
    assert value(m, "qwenkit:reasoning_tokens_total") == 4


def test_build_gate_reads_the_settings_and_shares_the_apps_metrics() -> None:
    settings = SimpleNamespace(
        rate_limit_rpm=5, rate_limit_tpm=None, max_concurrent_per_key=2, parallel=3, max_queue=7,
        queue_timeout=0.0,
    )
    app_state = SimpleNamespace()
    gate = build_gate(settings, app_state)
    assert metrics_for(app_state) is gate.metrics
    assert gate.queue.capacity == 3 and gate.queue.max_waiting == 7 and gate.queue.wait_timeout is None
    assert gate.limiter.default == KeyLimits(requests_per_minute=5, max_concurrent=2)
    response = metrics_response(app_state)
    assert response.status_code == 200 and b"qwenkit:num_requests_running" in response.body
    assert response.headers["content-type"].startswith("text/plain")
