"""The admission gate: per-key limits, then a fair slot, then metrics, for every generation request.

The app calls ``build_gate(settings, app_state)`` once (lifespan) and, per request,
``ticket = await gate.admit(request, prompt_tokens, max_tokens)`` after authentication (the
``ApiKeyMiddleware`` put the key's name in ``request.state.key_name``; without keys every client
shares the ``anonymous`` bucket and ``ticket.key_name`` is None). ``admit`` raises
``RateLimitError`` (429, counted in ``rate_limited_total{key}``) or ``OverloadedError`` (503: queue
full or ``queue_timeout`` passed), and on cancellation while queued it gives everything back.
``ticket.release(completion_tokens)`` (idempotent; None when nothing finished) settles the token
charge, frees the concurrency count and the slot, and records ``requests_total{status}`` (``ok`` or
``aborted``; refusals count as ``rate_limited`` / ``overloaded``), e2e and queue time and the token
counters. ``gate.observe(endpoint, results)`` adds time to first token, inter-token latency and
reasoning tokens from the engine's results. ``metrics_response(app_state)`` renders ``/metrics``.

Settings used: ``parallel`` (running slots), ``max_queue``, ``queue_timeout`` (0: wait without
limit), ``rate_limit_rpm``, ``rate_limit_tpm``, ``max_concurrent_per_key``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from qwenkit.errors import OverloadedError, RateLimitError
from qwenkit.server.auth import ANONYMOUS
from qwenkit.server.fairqueue import AdmissionController, Slot
from qwenkit.server.limits import KeyLimits, Lease, RateLimiter
from qwenkit.server.metrics import ServerMetrics

__all__ = ["AdmissionController", "AdmissionTicket", "ServerGate", "build_gate", "metrics_for",
           "metrics_response"]


class AdmissionTicket:
    """One admitted request: its key, rate-limit lease and running slot, released exactly once."""

    def __init__(self, key_name: str | None, lease: Lease, slot: Slot, metrics: ServerMetrics,
                 started: float) -> None:
        self.key_name = key_name
        self.lease = lease
        self.slot = slot
        self._metrics = metrics
        self._started = started
        self.released = False

    def release(self, completion_tokens: int | None) -> None:
        if self.released:
            return
        self.released = True
        try:
            if completion_tokens is not None:
                self.lease.settle(completion_tokens)
        finally:
            self.lease.release()
            self.slot.release()
        self._metrics.observe_request(
            "ok" if completion_tokens is not None else "aborted",
            e2e=time.monotonic() - self._started,
            queue=self.slot.queued_seconds,
            prompt_tokens=self.lease.prompt_tokens,
            completion_tokens=completion_tokens or 0,
        )


class ServerGate:
    """Limits, fair queueing and metrics behind the server's ``Gate`` protocol."""

    def __init__(self, limiter: RateLimiter, queue: AdmissionController, metrics: ServerMetrics) -> None:
        self.limiter = limiter
        self.queue = queue
        self.metrics = metrics
        metrics.bind_queue(queue)

    async def admit(
        self, request: Any, prompt_tokens: int, max_tokens: int, sequences: int = 1
    ) -> AdmissionTicket:
        started = time.monotonic()
        name = getattr(request.state, "key_name", None)
        bucket = name if isinstance(name, str) else ANONYMOUS
        try:
            lease = self.limiter.acquire(bucket, prompt_tokens, max_tokens)
        except RateLimitError:
            self.metrics.count_request("rate_limited")
            raise
        try:
            slot = await self.queue.acquire(bucket, sequences)
        except BaseException as exc:
            lease.release()
            if isinstance(exc, OverloadedError):
                self.metrics.count_request("overloaded")
            raise
        return AdmissionTicket(name if isinstance(name, str) else None, lease, slot, self.metrics, started)

    def observe(self, endpoint: str, results: Sequence[Any]) -> None:
        """Per-generation timings from ChatResults (``time_to_first_token``, decode speed, usage)."""
        for result in results:
            self.metrics.observe_first_token(result.time_to_first_token)
            self.metrics.add_reasoning_tokens(result.usage.reasoning_tokens)
            gaps = result.usage.completion_tokens - 1
            if gaps > 0 and result.decode_tokens_per_second > 0:
                self.metrics.observe_inter_token(1.0 / result.decode_tokens_per_second, gaps)


def metrics_for(app_state: Any) -> ServerMetrics:
    """The app's metrics (one registry per app), created on first use."""
    metrics = getattr(app_state, "metrics", None)
    if not isinstance(metrics, ServerMetrics):
        metrics = ServerMetrics()
        app_state.metrics = metrics
    return metrics


def build_gate(settings: Any, app_state: Any) -> ServerGate:
    """The gate for ``settings``; its metrics live on ``app_state.metrics``."""
    metrics = metrics_for(app_state)
    limits = KeyLimits(
        requests_per_minute=settings.rate_limit_rpm,
        tokens_per_minute=settings.rate_limit_tpm,
        max_concurrent=settings.max_concurrent_per_key,
    )
    queue = AdmissionController(
        capacity=settings.parallel,
        max_waiting=settings.max_queue,
        wait_timeout=settings.queue_timeout or None,
    )
    gate = ServerGate(RateLimiter(limits, on_limited=metrics.rate_limited), queue, metrics)
    app_state.gate = gate
    return gate


def metrics_response(app_state: Any, accept: str | None = None) -> Any:
    """``GET /metrics``: the app's registry in Prometheus text (or OpenMetrics, per ``accept``)."""
    from starlette.responses import Response

    body, content_type = metrics_for(app_state).render(accept)
    return Response(content=body, media_type=None, headers={"content-type": content_type})
