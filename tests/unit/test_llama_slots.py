"""What a llama.cpp slot keeps for the prefix cache: its tokens, positions and kept logits rows."""

from __future__ import annotations

import numpy as np

from qwenkit.engine.llama_slots import KEPT_ROWS, SlotCache


def row(value: float) -> np.ndarray:
    return np.full(4, value, dtype=np.float32)


def test_a_kept_row_serves_exactly_the_prompt_it_followed() -> None:
    cache = SlotCache()
    cache.add_text([5, 6, 7], 0)
    cache.remember(row(1.0))
    cache.add_text([8, 9], 3)  # the answer decoded after it
    got = cache.row_for([5, 6, 7])
    assert got is not None and got[0] == 1.0
    assert cache.row_for([5, 6, 8]) is None  # same length, other tokens
    assert cache.row_for([5, 6]) is None  # no row kept after two cells
    assert cache.row_for([5, 6, 7, 8]) is None


def test_keeping_a_shorter_prefix_drops_the_rows_past_it() -> None:
    cache = SlotCache()
    cache.add_text([1, 2], 0)
    cache.remember(row(2.0))
    cache.add_text([3, 4], 2)
    cache.remember(row(4.0))
    cache.keep([1, 2, 3], cache.after[:3], cache.rows)
    assert cache.row_for([1, 2]) is not None
    assert 4 not in cache.rows
    cache.keep([], [])
    assert cache.rows == {}


def test_only_the_newest_rows_are_kept() -> None:
    cache = SlotCache()
    for token in range(KEPT_ROWS + 2):
        cache.add_text([token], token)
        cache.remember(row(float(token)))
    assert sorted(cache.rows) == list(range(3, KEPT_ROWS + 3))
