"""Prometheus metrics for one server, in a registry of its own (never the process-global default).

``ServerMetrics(registry=None, queue=None)`` creates every metric in ``registry`` (a fresh
``CollectorRegistry`` when None), so tests can build any number of apps. Exposed names::

    qwenkit:time_to_first_token_seconds   histogram
    qwenkit:inter_token_latency_seconds   histogram
    qwenkit:e2e_request_latency_seconds   histogram
    qwenkit:request_queue_time_seconds    histogram
    qwenkit:num_requests_running          gauge   (read from the queue at scrape time)
    qwenkit:num_requests_waiting          gauge   (read from the queue at scrape time)
    qwenkit:prompt_tokens_total           counter
    qwenkit:generation_tokens_total       counter
    qwenkit:reasoning_tokens_total        counter
    qwenkit:requests_total{status}        counter
    qwenkit:rate_limited_total{key}       counter (the key's NAME, never its secret)
    qwenkit:process_resident_memory_bytes gauge   (psutil, at scrape time)
    process_*                             the standard process collector (Linux)

What the server calls: ``observe_request(status, e2e=..., queue=..., ttft=..., prompt_tokens=...,
completion_tokens=..., reasoning_tokens=...)`` once per finished request (None skips a histogram),
``count_request(status)`` for a request refused before it ran, ``observe_first_token(s)``,
``observe_inter_token(s, count=1)``, ``add_reasoning_tokens(n)``, ``rate_limited(key_name)``,
``bind_queue(queue)`` (anything with ``running``/``waiting`` int attributes, e.g. the
``AdmissionController``: the two gauges then derive from its live state and cannot drift) and
``render(accept=None) -> (body, content_type)`` for ``GET /metrics`` (OpenMetrics when the
Accept header asks for it). prometheus-client metrics take their own locks, so every method may
be called from any thread (the engine thread included).
"""

from __future__ import annotations

import os
from types import ModuleType
from typing import TYPE_CHECKING, Protocol

from qwenkit.errors import MissingDependencyError

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5,
                10.0, 20.0, 40.0, 80.0, 160.0, 640.0)
ITL_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5,
               5.0, 10.0, 20.0)
LATENCY_BUCKETS = (0.05, 0.1, 0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0,
                   60.0, 120.0, 240.0, 480.0, 960.0, 1920.0)
# The outcomes the admission gate reports; others may be counted too.
KNOWN_STATUSES = ("ok", "aborted", "rate_limited", "overloaded")
QUEUE_BUCKETS = (0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0)


class QueueState(Protocol):
    """What the running/waiting gauges read: the admission controller's live counts."""

    @property
    def running(self) -> int: ...

    @property
    def waiting(self) -> int: ...


def _prometheus() -> ModuleType:
    try:
        import prometheus_client
    except ImportError as exc:
        raise MissingDependencyError.for_extra("prometheus_client", "serve") from exc
    return prometheus_client


def _resident_bytes() -> float:
    import psutil

    return float(psutil.Process(os.getpid()).memory_info().rss)


class ServerMetrics:
    """Every metric of one server; see the module docstring for names and methods."""

    def __init__(self, registry: CollectorRegistry | None = None, queue: QueueState | None = None,
                 *, process_collector: bool = True) -> None:
        prom = _prometheus()
        self.registry: CollectorRegistry = registry if registry is not None else prom.CollectorRegistry()
        self._queue = queue
        reg = self.registry
        hist, counter, gauge = prom.Histogram, prom.Counter, prom.Gauge
        self.ttft = hist("qwenkit:time_to_first_token_seconds", "Time to first token.",
                         buckets=TTFT_BUCKETS, registry=reg)
        self.itl = hist("qwenkit:inter_token_latency_seconds", "Time between consecutive tokens.",
                        buckets=ITL_BUCKETS, registry=reg)
        self.e2e = hist("qwenkit:e2e_request_latency_seconds", "Request latency, admission to end.",
                        buckets=LATENCY_BUCKETS, registry=reg)
        self.queue_time = hist("qwenkit:request_queue_time_seconds", "Time spent waiting for a slot.",
                               buckets=QUEUE_BUCKETS, registry=reg)
        self.running = gauge("qwenkit:num_requests_running", "Requests holding a slot.", registry=reg)
        self.waiting = gauge("qwenkit:num_requests_waiting", "Requests waiting for a slot.", registry=reg)
        self.prompt_tokens = counter("qwenkit:prompt_tokens", "Prompt tokens processed.", registry=reg)
        self.generation_tokens = counter("qwenkit:generation_tokens", "Tokens generated.", registry=reg)
        self.reasoning_tokens = counter("qwenkit:reasoning_tokens", "Generated tokens inside <think>.",
                                        registry=reg)
        self.requests = counter("qwenkit:requests", "Requests by outcome.", ["status"], registry=reg)
        for status in KNOWN_STATUSES:  # present (at 0) from the first scrape on
            self.requests.labels(status=status)
        self.limited = counter("qwenkit:rate_limited", "Requests refused by a per-key limit.", ["key"],
                               registry=reg)
        self.memory = gauge("qwenkit:process_resident_memory_bytes", "Resident memory of the server.",
                            registry=reg)
        self.memory.set_function(_resident_bytes)
        self.running.set_function(lambda: float(self._queue.running) if self._queue is not None else 0.0)
        self.waiting.set_function(lambda: float(self._queue.waiting) if self._queue is not None else 0.0)
        if process_collector:
            prom.ProcessCollector(registry=reg)

    def bind_queue(self, queue: QueueState) -> None:
        """Read the running/waiting gauges from ``queue`` from now on."""
        self._queue = queue

    def observe_request(self, status: str | int, *, e2e: float | None = None, queue: float | None = None,
                        ttft: float | None = None, prompt_tokens: int = 0, completion_tokens: int = 0,
                        reasoning_tokens: int = 0) -> None:
        """One finished request: its outcome, timings (None: not measured) and token counts."""
        self.requests.labels(status=str(status)).inc()
        for histogram, value in ((self.e2e, e2e), (self.queue_time, queue), (self.ttft, ttft)):
            if value is not None:
                histogram.observe(max(0.0, value))
        self.prompt_tokens.inc(_count(prompt_tokens, "prompt_tokens"))
        self.generation_tokens.inc(_count(completion_tokens, "completion_tokens"))
        self.reasoning_tokens.inc(_count(reasoning_tokens, "reasoning_tokens"))

    def count_request(self, status: str | int) -> None:
        """A request that ended before running (refused, failed validation)."""
        self.requests.labels(status=str(status)).inc()

    def observe_first_token(self, seconds: float) -> None:
        self.ttft.observe(max(0.0, seconds))

    def observe_inter_token(self, seconds: float, count: int = 1) -> None:
        """``count`` gaps of ``seconds`` each (a whole generation's mean gap, observed per gap)."""
        for _ in range(_count(count, "count")):
            self.itl.observe(max(0.0, seconds))

    def add_reasoning_tokens(self, tokens: int) -> None:
        self.reasoning_tokens.inc(_count(tokens, "reasoning_tokens"))

    def rate_limited(self, key_name: str) -> None:
        """A per-key limit refused a request from the key named ``key_name``."""
        self.limited.labels(key=key_name).inc()

    def render(self, accept: str | None = None) -> tuple[bytes, str]:
        """The exposition body and its content type (OpenMetrics if ``accept`` asks for it)."""
        from prometheus_client.exposition import choose_encoder

        encoder, content_type = choose_encoder(accept or "")
        return encoder(self.registry), content_type


def _count(value: int, what: str) -> int:
    if value < 0:
        raise ValueError(f"{what} cannot be negative (got {value})")
    return value
