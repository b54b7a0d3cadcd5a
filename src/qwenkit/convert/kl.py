"""Per-position scores from logits, and KL divergence against a base model's stored top-k.

Storing a base's full distribution costs vocabulary x positions (151,936 x 10,000 floats: 6 GB), so
only its top ``k`` token ids and log-probabilities are kept per scored position, plus the rest of its
probability mass implied by them. The KL divergence KL(base || model) is then estimated over k + 1
outcomes: the base's top-k tokens one by one, and "any other token" as one bucket, whose probability
is 1 - (the top-k's mass) under each model:

    KL ~= sum_{i in top-k} P(i) (log P(i) - log Q(i)) + P_rest (log P_rest - log Q_rest)

Merging outcomes never increases a KL divergence (the log-sum inequality), so this is a lower bound
of the full-vocabulary value; with k = 32 the base's rest mass is small on real text and the bound is
close. Top-1 agreement is whether both models' most likely next token is the same.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from qwenkit.errors import UsageError

DEFAULT_TOP_K = 32
_ROW_BLOCK = 32  # rows converted to float64 at a time (32 x 151,936 x 8 B = 39 MB)
_TINY = 1e-12


@dataclass(frozen=True)
class RowScores:
    """Scores of consecutive positions: NLL of the actual next token and the top-k."""

    nll: np.ndarray  # (n,) float64
    top_ids: np.ndarray  # (n, k) int32, most likely first
    top_logprobs: np.ndarray  # (n, k) float32
    model_logprobs_at_base: np.ndarray | None = None  # (n, k) float64: log Q at the base's top-k


def _block_scores(
    logits: np.ndarray, targets: np.ndarray, k: int, base_ids: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    x = logits.astype(np.float64)
    rows = np.arange(len(x))
    top = x.max(axis=1)
    lse = top + np.log(np.exp(x - top[:, None]).sum(axis=1))
    nll = lse - x[rows, targets]
    ids = np.argpartition(-logits, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(logits, ids, axis=1), axis=1, kind="stable")
    ids = np.take_along_axis(ids, order, axis=1)
    logprobs = np.take_along_axis(x, ids, axis=1) - lse[:, None]
    at_base = None if base_ids is None else np.take_along_axis(x, base_ids, axis=1) - lse[:, None]
    return nll, ids.astype(np.int32), logprobs.astype(np.float32), at_base


def score_rows(
    logits: np.ndarray, targets: np.ndarray, k: int = DEFAULT_TOP_K, base_ids: np.ndarray | None = None
) -> RowScores:
    """Log-softmax in float64 (as llama.cpp sums it in double), in blocks of rows to bound memory."""
    parts = [
        _block_scores(
            logits[i : i + _ROW_BLOCK],
            targets[i : i + _ROW_BLOCK],
            k,
            None if base_ids is None else base_ids[i : i + _ROW_BLOCK],
        )
        for i in range(0, len(logits), _ROW_BLOCK)
    ]
    at_base = None if base_ids is None else np.concatenate([p[3] for p in parts if p[3] is not None])
    return RowScores(
        np.concatenate([p[0] for p in parts]),
        np.concatenate([p[1] for p in parts]),
        np.concatenate([p[2] for p in parts]),
        at_base,
    )


def kl_estimate(base_logprobs: np.ndarray, model_logprobs: np.ndarray) -> np.ndarray:
    """Per-position KL(base || model) over the base's top-k and one bucket for the rest (see module doc)."""
    p_lp = base_logprobs.astype(np.float64)
    p, q = np.exp(p_lp), np.exp(model_logprobs)
    p_rest = np.clip(1.0 - p.sum(axis=1), 0.0, 1.0)
    q_rest = np.clip(1.0 - q.sum(axis=1), _TINY, 1.0)
    head = (p * (p_lp - model_logprobs)).sum(axis=1)
    rest = np.where(p_rest > _TINY, p_rest * (np.log(np.maximum(p_rest, _TINY)) - np.log(q_rest)), 0.0)
    return np.asarray(head + rest)


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class BaseLogprobs:
    """A base model's stored top-k per scored position, with what identifies the evaluation."""

    top_ids: np.ndarray
    top_logprobs: np.ndarray
    targets: np.ndarray
    nll: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

    def save(self, path: Path) -> None:
        with path.open("wb") as handle:
            np.savez_compressed(
                handle,
                top_ids=self.top_ids,
                top_logprobs=self.top_logprobs,
                targets=self.targets,
                nll=self.nll,
                meta=np.array(json.dumps(self.meta)),
            )

    @classmethod
    def load(cls, path: Path) -> BaseLogprobs:
        try:
            with np.load(path, allow_pickle=False) as data:
                return cls(
                    data["top_ids"],
                    data["top_logprobs"],
                    data["targets"],
                    data["nll"],
                    json.loads(str(data["meta"])),
                )
        except (OSError, KeyError, ValueError) as exc:
            raise UsageError(
                f"{path} is not a file of base log-probabilities saved by qwenkit: {exc}"
            ) from None

    def check_matches(self, targets: np.ndarray, context: int) -> None:
        """UsageError unless the model was scored on the same tokens at the same context."""
        if self.meta.get("context") != context or not np.array_equal(self.targets, targets):
            raise UsageError(
                f"the KL base ({self.meta.get('model')}) was scored on other tokens or another context "
                f"({self.meta.get('context')}); use the same text, --context and --chunks, and a model "
                "with the same tokenizer"
            )


@dataclass(frozen=True)
class KLSummary:
    kl_mean: float
    kl_mean_err: float
    kl_median: float
    kl_p99: float
    top1_agreement: float
    base_ppl: float
    ppl_ratio: float

    @classmethod
    def of(
        cls, kl: np.ndarray, top1_same: np.ndarray, base_nll: np.ndarray, model_nll: np.ndarray
    ) -> KLSummary:
        n = len(kl)
        err = float(kl.std(ddof=1) / np.sqrt(n)) if n > 1 else 0.0
        base_ppl = float(np.exp(base_nll.mean()))
        return cls(
            kl_mean=float(kl.mean()),
            kl_mean_err=err,
            kl_median=float(np.median(kl)),
            kl_p99=float(np.percentile(kl, 99)),
            top1_agreement=float(top1_same.mean()),
            base_ppl=base_ppl,
            ppl_ratio=float(np.exp(model_nll.mean()) / base_ppl),
        )
