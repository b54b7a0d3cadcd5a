"""What the benchmark driver needs from whatever it measures, and what one request yields.

Both targets (the in-process ``LLM`` and an OpenAI-compatible server) time the same things the same
way: ``start`` before the request is sent, one timestamp per streamed chunk carrying output text,
``end`` when the stream closed. Token counts come from the target's own usage report.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from qwenkit.bench.workload import Messages


@dataclass(frozen=True)
class RequestResult:
    """One request's timeline (``time.perf_counter`` seconds) and usage."""

    start: float
    end: float
    chunk_times: tuple[float, ...] = ()
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_prompt_tokens: int = 0
    requested_tokens: int = 0
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and bool(self.chunk_times)

    @property
    def ttft(self) -> float | None:
        return self.chunk_times[0] - self.start if self.chunk_times else None

    @property
    def e2e(self) -> float:
        return self.end - self.start

    @property
    def decode_seconds(self) -> float:
        return self.end - self.chunk_times[0] if self.chunk_times else 0.0

    @property
    def decode_tps(self) -> float | None:
        """Tokens after the first, over the time after the first (vLLM's 1 / TPOT)."""
        span = self.decode_seconds
        if self.completion_tokens < 2 or span <= 0:
            return None
        return (self.completion_tokens - 1) / span

    @property
    def prefill_tps(self) -> float | None:
        """Prompt tokens over the time to the first token (queueing included, as a client sees it)."""
        ttft = self.ttft
        if ttft is None or ttft <= 0 or self.prompt_tokens <= 0:
            return None
        return self.prompt_tokens / ttft

    @property
    def inter_chunk_gaps(self) -> list[float]:
        times = self.chunk_times
        return [b - a for a, b in itertools.pairwise(times)]

    @property
    def short(self) -> bool:
        """Fewer tokens than asked for: the target stopped at EOS (it ignored ``ignore_eos``)."""
        return self.ok and self.completion_tokens < self.requested_tokens


@dataclass(frozen=True)
class TargetInfo:
    """What is measured, for the report."""

    kind: str  # "in-process" or "http"
    model: str
    backend: str | None = None
    url: str | None = None
    model_path: str | None = None
    sha256: str | None = None
    context: int | None = None
    parallel: int | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)


class Target(Protocol):
    """Something that runs chat requests: the in-process runner or the HTTP runner."""

    info: TargetInfo

    async def count_prompt(self, messages: Messages) -> int | None:
        """Exact prompt tokens after the chat template, or None when the target cannot say."""

    async def probe_prompt_tokens(self, messages: Messages) -> int | None:
        """Prompt tokens by running a one-token request (its usage), or None without usage."""

    async def generate(self, messages: Messages, output_tokens: int, temperature: float) -> RequestResult:
        """Run one request to ``output_tokens`` tokens (ignoring EOS where allowed); never raises
        for a failed request: the error is in the result."""

    def server_pids(self) -> Sequence[int]:
        """Processes whose memory is the target's (this one, or a local server's)."""

    async def aclose(self) -> None: ...
