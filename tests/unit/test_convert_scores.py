"""Perplexity bookkeeping, the top-k KL estimator and llama.cpp's quantizer log, on synthetic numbers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from qwenkit.convert import sources
from qwenkit.convert.kl import BaseLogprobs, KLSummary, kl_estimate, score_rows
from qwenkit.convert.perplexity import _uncertainty, perplexity, plan_chunks
from qwenkit.convert.quantize_worker import parse_line
from qwenkit.errors import FetchError, UsageError


def _log_softmax(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    return x - (
        x.max(axis=1, keepdims=True)
        + np.log(np.exp(x - x.max(axis=1, keepdims=True)).sum(axis=1, keepdims=True))
    )


def test_row_scores_are_the_log_softmax_of_each_row() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, size=(70, 500)).astype(np.float32)
    targets = rng.integers(0, 500, size=70)
    rows = score_rows(logits, targets, k=8)
    ref = _log_softmax(logits)
    np.testing.assert_allclose(rows.nll, -ref[np.arange(70), targets], rtol=1e-12)
    expected_ids = np.argsort(-ref, axis=1)[:, :8]
    np.testing.assert_array_equal(rows.top_ids, expected_ids)
    np.testing.assert_allclose(rows.top_logprobs, np.take_along_axis(ref, expected_ids, axis=1), rtol=1e-6)


def test_kl_estimate_is_exact_with_the_whole_vocabulary_and_a_lower_bound_with_top_k() -> None:
    rng = np.random.default_rng(1)
    base = rng.normal(0, 2, size=(40, 300)).astype(np.float32)
    model = base + rng.normal(0, 0.3, size=base.shape).astype(np.float32)
    p, q = _log_softmax(base), _log_softmax(model)
    exact = (np.exp(p) * (p - q)).sum(axis=1)
    full = score_rows(base, np.zeros(40, dtype=np.int64), k=300)
    at = score_rows(model, np.zeros(40, dtype=np.int64), k=300, base_ids=full.top_ids).model_logprobs_at_base
    assert at is not None
    np.testing.assert_allclose(
        kl_estimate(full.top_logprobs, at), exact, rtol=0, atol=2e-6
    )  # base stored as float32
    top = score_rows(base, np.zeros(40, dtype=np.int64), k=16)
    at16 = score_rows(model, np.zeros(40, dtype=np.int64), k=16, base_ids=top.top_ids).model_logprobs_at_base
    assert at16 is not None
    bound = kl_estimate(top.top_logprobs, at16)
    assert np.all(bound <= exact + 1e-6) and bound.mean() > 0.5 * exact.mean()
    assert np.all(
        kl_estimate(top.top_logprobs, top.top_logprobs.astype(np.float64)) == pytest.approx(0, abs=1e-9)
    )


def test_kl_summary_and_base_file_round_trip(tmp_path: Path) -> None:
    kl = np.array([0.0, 0.1, 0.2, 0.3])
    summary = KLSummary.of(
        kl, np.array([True, True, False, True]), np.log(np.full(4, 10.0)), np.log(np.full(4, 11.0))
    )
    assert summary.kl_mean == pytest.approx(0.15) and summary.top1_agreement == 0.75
    assert (summary.base_ppl, summary.ppl_ratio) == (pytest.approx(10.0), pytest.approx(1.1))
    base = BaseLogprobs(
        np.zeros((4, 2), np.int32),
        np.zeros((4, 2), np.float32),
        np.arange(4),
        np.ones(4),
        {"model": "m", "context": 512},
    )
    base.save(tmp_path / "b.npz")
    again = BaseLogprobs.load(tmp_path / "b.npz")
    assert again.meta == base.meta
    again.check_matches(np.arange(4), 512)
    with pytest.raises(UsageError, match="other tokens"):
        again.check_matches(np.arange(1, 5), 512)
    with pytest.raises(UsageError, match="another context"):
        again.check_matches(np.arange(4), 256)
    (tmp_path / "bad.npz").write_text("nope")
    with pytest.raises(UsageError, match="not a file of base log-probabilities"):
        BaseLogprobs.load(tmp_path / "bad.npz")


def test_chunk_plan_follows_llama_perplexity() -> None:
    assert plan_chunks(5000, 512, None) == 9
    assert plan_chunks(5000, 512, 3) == 3
    assert plan_chunks(5000, 512, 50) == 9
    with pytest.raises(UsageError, match="needs at least 1024"):
        plan_chunks(1000, 512, None)
    with pytest.raises(UsageError, match="even number"):
        plan_chunks(5000, 511, None)
    with pytest.raises(UsageError, match="at least 1"):
        plan_chunks(5000, 512, 0)


@pytest.mark.parametrize(
    ("context", "expected"), [(0, "even number"), (15, "even number"), (99_999_999_998, "needs at least")]
)
def test_a_context_is_checked_before_a_model_is_loaded(context: int, expected: str) -> None:
    """llama.cpp would size a KV cache from a huge --context before the text was found too short."""
    with pytest.raises(UsageError, match=expected):
        perplexity("no-such-model.gguf", "word " * 1000, context=context)


def test_uncertainty_is_llama_cpps_formula() -> None:
    nll = np.array([1.0, 2.0, 3.0, 4.0])
    ppl, err = _uncertainty(nll)
    assert ppl == pytest.approx(np.exp(2.5))
    assert err == pytest.approx(np.exp(2.5) * np.sqrt((7.5 - 6.25) / 3))


def test_the_quantizer_log_gives_progress_and_fallbacks() -> None:
    progress = (
        "[  12/ 291]                   blk.0.attn_q.weight - [  896,   896,     1,     1], type =    f16, "
    )
    assert parse_line(progress + "converting to q4_K .. size = 1.53 MiB ->     0.43 MiB") == {
        "event": "tensor",
        "index": 12,
        "total": 291,
        "name": "blk.0.attn_q.weight",
    }
    warning = (
        "warning: blk.0.ffn_down.weight                - ncols   4864 not divisible by 256 "
        "(required for type    q4_K) -> falling back to    q5_0"
    )
    assert parse_line(warning) == {
        "event": "fallback",
        "name": "blk.0.ffn_down.weight",
        "columns": 4864,
        "block": 256,
        "wanted": "q4_K",
        "used": "q5_0",
    }
    assert parse_line("llama_model_quantize_impl: model size  =   942.43 MiB") is None
    assert parse_line("llama_model_quantize: failed to quantize: bad file")["message"] == "bad file"  # type: ignore[index]


def test_the_sdist_is_checked_against_its_recorded_hash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QWENKIT_SOURCES_CACHE", str(tmp_path))
    archive = tmp_path / "llama-cpp-python-0.3.36" / "llama_cpp_python-0.3.36.tar.gz"
    archive.parent.mkdir()
    archive.write_bytes(b"not the sdist")
    with pytest.raises(FetchError, match="expected 832db069"):
        sources.sdist("0.3.36")
    assert not archive.exists()
    with pytest.raises(FetchError, match="no recorded sha256"):
        sources.sdist("0.0.1")
