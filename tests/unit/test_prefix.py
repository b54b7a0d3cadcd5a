"""Prefix-aware placement: the pure logic behind the llama.cpp backend's slot choice."""

from __future__ import annotations

import pytest

from qwenkit.engine.prefix import Placement, SlotView, common_prefix, place


def test_common_prefix() -> None:
    assert common_prefix([1, 2, 3], [1, 2, 4]) == 2
    assert common_prefix([], [1]) == 0
    assert common_prefix([5, 6], [5, 6, 7]) == 2


def test_place_prefers_the_free_slot_with_the_longest_cached_prefix() -> None:
    slots = [SlotView([9, 9], 1.0, True), SlotView([1, 2, 3], 5.0, True), SlotView([], 0.0, True)]
    assert place([1, 2, 3, 4], slots) == Placement(1, 3)


def test_place_always_leaves_the_last_prompt_token_to_decode() -> None:
    slots = [SlotView([1, 2, 3], 1.0, True)]
    assert place([1, 2, 3], slots) == Placement(0, 2)


def test_place_ties_go_to_the_least_recently_used_slot() -> None:
    slots = [SlotView([7], 3.0, True), SlotView([8], 1.0, True), SlotView([], 2.0, True)]
    assert place([1, 2], slots).slot == 1


def test_place_copies_a_longer_prefix_from_a_busy_slot() -> None:
    slots = [SlotView([1, 2, 3, 4, 5], 9.0, False), SlotView([1], 4.0, True), SlotView([], 2.0, True)]
    assert place([1, 2, 3, 4, 6], slots) == Placement(2, 4, copy_from=0)


def test_place_keeps_its_own_cache_when_no_busy_slot_beats_it() -> None:
    slots = [SlotView([1, 2], 9.0, False), SlotView([1, 2, 3], 4.0, True)]
    assert place([1, 2, 3, 4], slots) == Placement(1, 3)


def test_place_needs_a_free_slot() -> None:
    with pytest.raises(ValueError):
        place([1, 2], [SlotView([1], 0.0, False)])
