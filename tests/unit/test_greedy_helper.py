"""The near-tie rule that cross-batch greedy comparisons use (tests/_greedy.py) catches real differences."""

from __future__ import annotations

import pytest

from _greedy import GreedyReference, divergence

EOS = 99
REF = GreedyReference(
    tokens=(1, 2, 3, EOS),
    top=(
        {1: -0.1, 7: -3.0},
        {2: -0.70, 8: -0.75},  # a near-tie: 0.05 nats
        {3: -0.2, 9: -2.5},
        {EOS: -0.1, 4: -4.0},
    ),
)


def test_identical_runs_have_no_divergence() -> None:
    assert divergence([1, 2, 3], REF, ended_with={EOS}) is None


def test_a_flip_to_the_runner_up_at_a_near_tie_is_accepted() -> None:
    assert divergence([1, 8, 5, 5], REF, ended_with={EOS}) == 1


def test_a_flip_where_the_reference_was_sure_fails() -> None:
    with pytest.raises(AssertionError, match="no near-tie"):
        divergence([1, 2, 9], REF, ended_with={EOS})


def test_a_token_outside_the_references_candidates_fails() -> None:
    with pytest.raises(AssertionError):
        divergence([1, 6], REF, ended_with={EOS})


def test_stopping_early_is_a_choice_of_end_of_text() -> None:
    with pytest.raises(AssertionError):  # the reference gave EOS -4.0 at position 0: no tie
        divergence([], REF, ended_with={EOS})
    near = GreedyReference(tokens=(5, EOS), top=({5: -0.6, EOS: -0.8}, {EOS: -0.1}))
    assert divergence([], near, ended_with={EOS}) == 0


def test_going_on_where_the_reference_stopped_is_checked_too() -> None:
    with pytest.raises(AssertionError):
        divergence([1, 2, 3, 4], REF, ended_with={EOS})  # EOS was -0.1 against -4.0
