"""Per-request derived figures and per-level statistics."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from qwenkit.bench.memory import MemoryPeak
from qwenkit.bench.stats import percentile, summarize, summarize_level
from qwenkit.bench.target import RequestResult
from qwenkit.bench.workload import Level


@given(st.lists(st.floats(min_value=-1e6, max_value=1e6), min_size=1, max_size=50),
       st.sampled_from([0, 1, 50, 95, 99, 100]))
def test_percentile_matches_numpy_linear(values: list[float], q: int) -> None:
    assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)), rel=1e-9, abs=1e-6)


def test_summarize_skips_missing_values_and_is_none_when_empty() -> None:
    assert summarize([None, None]) is None
    p = summarize([1.0, None, 3.0])
    assert p is not None and p.n == 2 and p.mean == 2.0 and p.p50 == 2.0


def _result(start: float, times: list[float], end: float, completion: int, **kw: object) -> RequestResult:
    return RequestResult(start, end, tuple(times), kw.pop("prompt", 100), completion,  # type: ignore[arg-type]
                         requested_tokens=kw.pop("requested", completion), **kw)  # type: ignore[arg-type]


def test_request_figures_follow_their_definitions() -> None:
    r = _result(10.0, [10.5, 10.6, 10.8], 11.5, completion=11, prompt=200)
    assert r.ok and not r.short
    assert r.ttft == pytest.approx(0.5)
    assert r.e2e == pytest.approx(1.5)
    assert r.decode_tps == pytest.approx(10 / 1.0)  # tokens after the first over the time after it
    assert r.prefill_tps == pytest.approx(200 / 0.5)
    assert r.inter_chunk_gaps == pytest.approx([0.1, 0.2])


def test_failed_or_empty_requests_are_not_ok() -> None:
    assert not RequestResult(0.0, 1.0, (0.5,), error="HTTP 500: boom").ok
    empty = RequestResult(0.0, 1.0)
    assert not empty.ok and empty.ttft is None and empty.decode_tps is None
    assert _result(0.0, [0.1], 0.2, completion=1).decode_tps is None


def test_short_answers_are_counted() -> None:
    assert _result(0.0, [0.1, 0.2], 0.3, completion=5, requested=64).short


def test_level_summary_counts_errors_and_aggregate_throughput() -> None:
    good = [_result(0.0, [0.2 + i * 0.01, 0.3 + i * 0.01], 1.0, completion=64) for i in range(3)]
    short = _result(0.0, [0.2, 0.25], 0.5, completion=10, requested=64)
    bad = [RequestResult(0.0, 0.1, requested_tokens=64, error="HTTP 503: overloaded")] * 2
    summary = summarize_level(Level(4, 128, 6), [*good, short, *bad], wall_seconds=2.0,
                              memory=MemoryPeak(123, None))
    assert (summary.requests, summary.ok, summary.errors, summary.short_outputs) == (6, 4, 2, 1)
    assert summary.error_samples == ("HTTP 503: overloaded",)
    assert summary.completion_tokens_total == 3 * 64 + 10
    assert summary.aggregate_output_tps == pytest.approx((3 * 64 + 10) / 2.0)
    assert summary.ttft is not None and summary.ttft.n == 4
    assert summary.itl is not None and summary.itl.n == 4  # one gap per two-chunk request
    assert summary.peak_rss_bytes == 123 and summary.peak_gpu_bytes is None


def test_all_failed_level_has_no_percentiles() -> None:
    bad = [RequestResult(0.0, 0.1, error=f"e{i}") for i in range(5)]
    summary = summarize_level(Level(1, 128, 5), bad, wall_seconds=0.5)
    assert summary.ok == 0 and summary.ttft is None and summary.decode_tps is None
    assert summary.error_samples == ("e0", "e1", "e2")  # a few distinct samples, not all
    assert summary.aggregate_output_tps == 0.0
