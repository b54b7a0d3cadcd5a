"""Prefix-aware placement: the pure logic behind the llama.cpp backend's slot choice."""

from __future__ import annotations

import pytest

from qwenkit.engine.prefix import Placement, SlotView, common_prefix, place, runs


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


# ----- together: busy slots kept in one run of ids (a KV stream per sequence) ---------------------


def test_runs_counts_stretches_of_consecutive_ids() -> None:
    assert runs([]) == 0
    assert runs([2, 3, 4, 5]) == 1
    assert runs([7, 0, 6, 1]) == 2
    assert runs([0, 2, 4]) == 3


def free(cached: list[int], last_used: float) -> SlotView:
    return SlotView(cached, last_used, True)


def busy(cached: list[int]) -> SlotView:
    return SlotView(cached, 9.0, False)


def test_with_nothing_running_together_changes_nothing() -> None:
    slots = [free([7], 3.0), free([8], 1.0), free([], 2.0), free([1, 2, 3], 0.5)]
    for prompt in ([1, 2], [1, 2, 3, 4], [5, 6]):
        assert place(prompt, slots, together=True) == place(prompt, slots)


def test_a_new_request_goes_beside_the_busy_slots_and_the_cache_it_displaces_moves() -> None:
    """The old rule takes empty slot 3 (a second run beside busy slot 0); together, the request takes
    slot 1 and what slot 1 cached moves to slot 3 first: nothing is evicted either way."""
    slots = [busy([1, 2, 50]), free([60, 61, 62], 4.0), free([70, 71, 72], 5.0), free([], 0.0)]
    assert place([1, 2, 80, 81], slots) == Placement(3, 2, copy_from=0)
    assert place([1, 2, 80, 81], slots, together=True) == Placement(1, 2, copy_from=0, park=3)


def test_the_displaced_cache_moves_only_to_a_slot_worth_less() -> None:
    slots = [busy([1, 50]), free([60, 61, 62], 1.0), free([1, 70], 5.0), free([80, 81], 6.0)]
    # Slot 1 (least recently used) is the one an LRU cache evicts: no slot is worth less than it.
    assert place([1, 90, 91], slots, together=True) == Placement(1, 1, copy_from=2)


def test_a_continued_conversation_is_copied_beside_the_busy_slots() -> None:
    turn = [1, 2, 3, 10, 11, 12]
    slots = [busy([1, 2, 50]), free([], 0.0), free([*turn, 13], 5.0), free([9, 9], 1.0)]
    assert place([*turn, 30], slots) == Placement(2, 6)
    assert place([*turn, 30], slots, together=True) == Placement(1, 6, copy_from=2)


def test_a_request_fills_the_gap_between_two_runs() -> None:
    slots = [busy([5]), free([], 0.0), busy([6]), free([], 0.0), free([], 0.0)]
    assert place([1, 2], slots).slot == 1  # the lowest of the empty slots, by chance
    slots[1] = free([7], 1.0)
    assert place([1, 2], slots).slot == 3
    assert place([1, 2], slots, together=True) == Placement(1, 0, park=3)


def test_a_cache_reused_in_the_new_home_moves_out_whole_first() -> None:
    """Slot 1 holds the longest prefix but much more besides: the old rule copies it into empty slot 2;
    together, the request stays in slot 1 and slot 1's whole cache moves to slot 2 first."""
    slots = [busy([9]), free([1, 2, 3, 40, 41, 42, 43, 44], 5.0), free([], 0.0), free([], 0.0)]
    assert place([1, 2, 3, 4], slots) == Placement(2, 3, copy_from=1)
    assert place([1, 2, 3, 4], slots, together=True) == Placement(1, 3, park=2)


def test_the_serve_benchmarks_second_wave_of_four_stays_in_one_run() -> None:
    """bench_serve_vs_llama_server.py's 4-stream level replayed without a model: a warm-up request,
    then two waves of four new prompts sharing the template's system prompt. The cache rule alone
    splits the second wave in two runs of ids (two passes a step); together, it stays in one."""
    system = list(range(24))

    def waves(together: bool) -> list[list[int]]:
        cached: list[list[int]] = [[] for _ in range(8)]
        last_used, busy, clock, seen = [0.0] * 8, [False] * 8, iter(range(1, 100)), []
        for size, base in ((1, 1000), (4, 2000), (4, 3000)):
            wave = []
            for k in range(size):
                prompt = [*system, *range(base + 100 * k, base + 100 * k + 40)]
                views = [SlotView(cached[i], last_used[i], not busy[i]) for i in range(8)]
                p = place(prompt, views, together=together)
                if p.park is not None:
                    cached[p.park], last_used[p.park] = cached[p.slot], last_used[p.slot]
                cached[p.slot], busy[p.slot] = [*prompt, -1], True
                wave.append(p.slot)
            for i in sorted(wave):
                busy[i], last_used[i] = False, float(next(clock))
            seen.append(sorted(wave))
        return seen[1:]

    assert [runs(w) for w in waves(together=False)] == [1, 2]
    assert [runs(w) for w in waves(together=True)] == [1, 1]
