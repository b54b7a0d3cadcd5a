"""pass@k, intervals and McNemar against values computed by hand."""

from __future__ import annotations

import math

import pytest

from qwenkit.eval.scoring import mcnemar, mean_interval, pass_at_k, score_pass_at_k, wilson


@pytest.mark.parametrize(
    ("n", "c", "k", "expected"),
    [
        (5, 1, 1, 1 / 5),
        (5, 2, 2, 1 - 3 / 10),  # 1 - C(3,2)/C(5,2)
        (10, 3, 5, 1 - 21 / 252),  # 1 - C(7,5)/C(10,5)
        (20, 5, 10, 1 - 3003 / 184756),  # 1 - C(15,10)/C(20,10)
        (4, 0, 2, 0.0),
        (3, 3, 2, 1.0),
        (6, 4, 3, 1.0),  # n - c < k: every draw of 3 holds a correct one
    ],
)
def test_pass_at_k_matches_hand_computed_values(n: int, c: int, k: int, expected: float) -> None:
    assert pass_at_k(n, c, k) == pytest.approx(expected, abs=1e-12)


def test_pass_at_k_equals_the_combinatorial_formula_for_large_n() -> None:
    n, c, k = 200, 37, 10
    assert pass_at_k(n, c, k) == pytest.approx(1 - math.comb(n - c, k) / math.comb(n, k), rel=1e-9)


@pytest.mark.parametrize(("n", "c", "k"), [(3, 4, 1), (3, 1, 0), (3, 1, 4)])
def test_pass_at_k_refuses_impossible_counts(n: int, c: int, k: int) -> None:
    with pytest.raises(ValueError):
        pass_at_k(n, c, k)


def test_wilson_interval_by_hand() -> None:
    est = wilson(90, 164)  # 0.549: centre 0.5477, half-width 0.0753
    assert est.value == pytest.approx(90 / 164)
    assert (est.low, est.high) == (pytest.approx(0.4724, abs=1e-4), pytest.approx(0.6230, abs=1e-4))
    zero = wilson(0, 10)
    assert zero.low == 0.0 and zero.high == pytest.approx(0.2775, abs=1e-4)


def test_mean_interval_uses_wilson_for_binary_and_normal_otherwise() -> None:
    assert mean_interval([1.0, 0.0, 1.0, 1.0]) == wilson(3, 4)
    est = mean_interval([0.2, 0.4, 0.6, 0.8])
    half = 1.959963984540054 * math.sqrt(((0.3**2 + 0.1**2) * 2) / 3) / 2
    assert est.value == pytest.approx(0.5) and est.high - est.value == pytest.approx(half)


def test_score_pass_at_k_averages_items() -> None:
    est = score_pass_at_k([(5, 1), (5, 5), (5, 0)], 1)
    assert est.value == pytest.approx((0.2 + 1 + 0) / 3) and est.n == 3


def test_mcnemar_exact_by_hand() -> None:
    a = [True] * 1 + [False] * 9 + [True] * 5 + [False] * 5
    b = [False] * 1 + [True] * 9 + [True] * 5 + [False] * 5
    test = mcnemar(a, b)
    assert (test.shared, test.a_only, test.b_only) == (20, 1, 9)
    assert test.p_value == pytest.approx(2 * (1 + 10) / 2**10)  # 0.0215
    assert test.difference == pytest.approx(8 / 20)


def test_mcnemar_balanced_disagreement_is_noise() -> None:
    test = mcnemar([True, True, True, False, False, False], [False, False, False, True, True, True])
    assert test.p_value == 1.0
    assert mcnemar([True, False], [True, False]).p_value == 1.0
