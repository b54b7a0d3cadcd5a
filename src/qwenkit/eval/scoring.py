"""Scores and their uncertainty: pass@k, accuracy, 95 % intervals, and a paired test between runs.

pass@k is the unbiased estimator of Chen et al. (2021): with n samples of which c pass,
1 - C(n-c, k) / C(n, k), computed as a product to stay exact for large n. A score over items that
are each right or wrong gets a Wilson interval (good at small n and near 0 or 1); a mean of per-item
estimates (pass@k with k < n) gets a normal interval from their spread. Two runs on the same items
are compared with McNemar's exact test: only the items where they disagree count.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

Z95 = 1.959963984540054


@dataclass(frozen=True)
class Estimate:
    """A score in [0, 1] with its 95 % interval, over ``n`` items."""

    value: float
    low: float
    high: float
    n: int

    def percent(self) -> str:
        return f"{100 * self.value:.1f} [{100 * self.low:.1f}, {100 * self.high:.1f}]"


def pass_at_k(n: int, c: int, k: int) -> float:
    """Probability that at least one of k samples drawn from n (c correct) is correct."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n, got n={n} c={c} k={k}")
    if n - c < k:
        return 1.0
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))


def wilson(successes: int, n: int, z: float = Z95) -> Estimate:
    if n <= 0:
        raise ValueError("an interval needs at least one item")
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return Estimate(p, max(0.0, centre - half), min(1.0, centre + half), n)


def mean_interval(values: Sequence[float], z: float = Z95) -> Estimate:
    """Mean of per-item scores; Wilson when every value is 0 or 1, else a normal interval."""
    n = len(values)
    if n == 0:
        raise ValueError("an interval needs at least one item")
    if all(v in (0.0, 1.0) for v in values):
        return wilson(int(sum(values)), n, z)
    mean = sum(values) / n
    spread = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    half = z * spread / math.sqrt(n)
    return Estimate(mean, max(0.0, mean - half), min(1.0, mean + half), n)


def score_pass_at_k(counts: Sequence[tuple[int, int]], k: int) -> Estimate:
    """pass@k over items given (samples, correct) per item."""
    return mean_interval([pass_at_k(n, c, k) for n, c in counts])


@dataclass(frozen=True)
class McNemar:
    """Paired comparison on shared items: ``a_only`` right only in A, ``b_only`` right only in B."""

    shared: int
    a_only: int
    b_only: int
    p_value: float

    @property
    def difference(self) -> float:
        """B's score minus A's on the shared items (as a fraction)."""
        return (self.b_only - self.a_only) / self.shared if self.shared else 0.0


def mcnemar(a: Sequence[bool], b: Sequence[bool]) -> McNemar:
    """Exact two-sided McNemar test: the discordant pairs against Binomial(b + c, 1/2)."""
    if len(a) != len(b):
        raise ValueError("McNemar needs the same items in both runs")
    a_only = sum(1 for x, y in zip(a, b, strict=True) if x and not y)
    b_only = sum(1 for x, y in zip(a, b, strict=True) if y and not x)
    m = a_only + b_only
    if m == 0:
        return McNemar(len(a), 0, 0, 1.0)
    tail = sum(math.comb(m, i) for i in range(min(a_only, b_only) + 1)) / 2**m
    return McNemar(len(a), a_only, b_only, min(1.0, 2 * tail))
