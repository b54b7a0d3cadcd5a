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


def test_place_prefers_an_empty_slot_to_evicting_a_cache() -> None:
    slots = [SlotView([7], 3.0, True), SlotView([8], 1.0, True), SlotView([], 2.0, True)]
    assert place([1, 2], slots) == Placement(2, 0)


def test_place_evicts_the_least_recently_used_slot_when_none_is_empty() -> None:
    slots = [SlotView([7], 3.0, True), SlotView([8], 1.0, True), SlotView([9], 2.0, True)]
    assert place([1, 2], slots) == Placement(1, 0)


def test_a_new_conversation_copies_the_shared_system_prompt_instead_of_evicting_a_cached_one() -> None:
    system, old_turn = [1, 2, 3], [10, 11, 12, 13, 14, 15]
    slots = [SlotView([*system, *old_turn], 5.0, True), SlotView([], 0.0, True)]
    assert place([*system, 20, 21], slots) == Placement(1, 3, copy_from=0)


def test_the_next_turn_of_a_conversation_continues_in_its_slot() -> None:
    turn = [1, 2, 3, 10, 11, 12]
    slots = [SlotView([], 0.0, True), SlotView([*turn, 13], 5.0, True), SlotView([1, 2, 3], 6.0, True)]
    # The slot held one token more than the new prompt repeats (the answer's last one, re-tokenized).
    assert place([*turn, 30, 31], slots) == Placement(1, 6)


def test_asking_the_same_prompt_again_keeps_the_earlier_answer_cached() -> None:
    prompt, answer = [1, 2, 3, 4], [50, 51, 52, 53, 54]
    slots = [SlotView([*prompt, *answer], 5.0, True), SlotView([], 0.0, True)]
    assert place(prompt, slots) == Placement(1, 3, copy_from=0)


def test_a_full_machine_reuses_in_place_when_the_oldest_slot_is_also_the_best() -> None:
    slots = [SlotView([1, 2, 9, 9, 9], 1.0, True), SlotView([1, 7, 7], 2.0, True)]
    assert place([1, 2, 3], slots) == Placement(0, 2)


def test_a_cache_under_another_adapter_counts_as_held_not_empty() -> None:
    slots = [SlotView([], 1.0, True, held=40), SlotView([], 2.0, True)]
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
