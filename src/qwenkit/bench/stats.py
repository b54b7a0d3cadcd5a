"""Per-level statistics: percentiles of TTFT, inter-token latency, decode/prefill speed and latency.

Percentiles interpolate linearly between order statistics (numpy's default), so p99 of a handful of
requests is a value between the two largest, not the maximum.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from qwenkit.bench.memory import MemoryPeak
from qwenkit.bench.target import RequestResult
from qwenkit.bench.workload import Level

MAX_ERROR_SAMPLES = 3


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) with linear interpolation; ``values`` must not be empty."""
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass(frozen=True)
class Percentiles:
    n: int
    mean: float
    p50: float
    p95: float
    p99: float


def summarize(values: Sequence[float | None]) -> Percentiles | None:
    kept = [float(v) for v in values if v is not None]
    if not kept:
        return None
    return Percentiles(
        n=len(kept),
        mean=sum(kept) / len(kept),
        p50=percentile(kept, 50),
        p95=percentile(kept, 95),
        p99=percentile(kept, 99),
    )


@dataclass(frozen=True)
class LevelSummary:
    """One level's figures. Times in seconds, speeds in tokens per second, memory in bytes."""

    concurrency: int
    prompt_tokens_target: int
    requests: int
    ok: int
    errors: int
    short_outputs: int  # finished before the requested length: EOS was not ignored
    error_samples: tuple[str, ...]
    prompt_tokens_mean: float
    cached_prompt_tokens_mean: float
    completion_tokens_total: int
    wall_seconds: float
    aggregate_output_tps: float
    ttft: Percentiles | None
    itl: Percentiles | None
    e2e: Percentiles | None
    decode_tps: Percentiles | None
    prefill_tps: Percentiles | None
    peak_rss_bytes: int | None = None
    peak_gpu_bytes: int | None = None


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def summarize_level(
    level: Level, results: Sequence[RequestResult], wall_seconds: float, memory: MemoryPeak | None = None
) -> LevelSummary:
    good = [r for r in results if r.ok]
    failed = [r for r in results if not r.ok]
    samples: list[str] = []
    for r in failed:
        text = r.error or "the stream ended without any output"
        if text not in samples and len(samples) < MAX_ERROR_SAMPLES:
            samples.append(text)
    completion = sum(r.completion_tokens for r in good)
    gaps = [gap for r in good for gap in r.inter_chunk_gaps]
    return LevelSummary(
        concurrency=level.concurrency,
        prompt_tokens_target=level.prompt_tokens,
        requests=len(results),
        ok=len(good),
        errors=len(failed),
        short_outputs=sum(1 for r in good if r.short),
        error_samples=tuple(samples),
        prompt_tokens_mean=_mean([r.prompt_tokens for r in good]),
        cached_prompt_tokens_mean=_mean([r.cached_prompt_tokens for r in good]),
        completion_tokens_total=completion,
        wall_seconds=wall_seconds,
        aggregate_output_tps=completion / wall_seconds if wall_seconds > 0 else 0.0,
        ttft=summarize([r.ttft for r in good]),
        itl=summarize(gaps),
        e2e=summarize([r.e2e for r in good]),
        decode_tps=summarize([r.decode_tps for r in good]),
        prefill_tps=summarize([r.prefill_tps for r in good]),
        peak_rss_bytes=memory.rss_bytes if memory else None,
        peak_gpu_bytes=memory.gpu_bytes if memory else None,
    )
