"""The thinking-loop detector: catches real loops, leaves ordinary reasoning alone."""

from __future__ import annotations

import pytest

from qwenkit.chat.loop_guard import LoopReport, ThinkingLoopDetector
from qwenkit.errors import UsageError

VARIED_REASONING = """Okay, so I need to count positive integers n below 1000 with n^2 + 1 divisible by 5.
First, let me think about n modulo 5. The square of n modulo 5 can only be 0, 1 or 4.
So n^2 + 1 modulo 5 is 1, 2 or 0 respectively. Wait.
That means n^2 + 1 is divisible by 5 exactly when n^2 is 4 modulo 5.
Hmm. Which residues square to 4? Let me check each one:
- 0 squared is 0
- 1 squared is 1
- 2 squared is 4
- 3 squared is 9, which is 4
- 4 squared is 16, which is 1
So the residues that work are 2 and 3. Wait.
Now I count the integers from 1 to 999 congruent to 2 modulo 5: they are 2, 7, 12, up to 997.
That is (997 - 2) / 5 + 1 = 200 numbers. Hmm.
Similarly, those congruent to 3 modulo 5 run from 3 to 998, which also gives 200 numbers.
So in total there are 400 such integers. Let me verify with a small case.
Below 10 the values are 2, 3, 7 and 8: four numbers, and 10/5 * 2 = 4 agrees.
Let me double-check 7: 49 + 1 = 50, divisible by 5. Good.
And 8: 64 + 1 = 65, also divisible by 5. Good.
Therefore the answer should be 400. Actually, let me reconsider whether 1000 itself is included.
The problem says below 1000, so 1000 is excluded, and 1000 is 0 modulo 5 anyway.
So the final answer is 400.
"""


def _feed_all(detector: ThinkingLoopDetector, text: str, chunk: int) -> LoopReport | None:
    report = None
    for i in range(0, len(text), chunk):
        report = detector.feed(text[i : i + chunk])
    return report or detector.finish()


@pytest.mark.parametrize("chunk", [1, 3, 17, 10_000])
def test_ordinary_varied_reasoning_is_not_a_loop(chunk: int) -> None:
    assert _feed_all(ThinkingLoopDetector(), VARIED_REASONING, chunk) is None


def test_repeated_short_lines_below_the_threshold_are_fine() -> None:
    bullets = "- [ ] check the edge case\n" * 40 + "Wait.\n" * 30 + "Hmm, so x = 3.\n" * 10
    assert _feed_all(ThinkingLoopDetector(min_block_chars=40), bullets, 7) is None
    looped = _feed_all(ThinkingLoopDetector(min_block_chars=20), bullets, 7)
    assert looped is not None and looped.block == "- [ ] check the edge case"


@pytest.mark.parametrize("chunk", [1, 5, 64, 100_000])
def test_same_paragraph_three_times_in_a_row_is_reported(chunk: int) -> None:
    paragraph = (
        "Let me recompute the total. The first part gives 12 and the second part gives 30. "
        "So the sum is 42, but I should double check the second part.\n"
    )
    text = VARIED_REASONING + paragraph * 3 + "never reached"
    detector = ThinkingLoopDetector()
    report = _feed_all(detector, text, chunk)
    assert report is not None
    assert report.kind == "consecutive"
    assert report.repeats == 3
    assert report.block == " ".join(paragraph.split())
    before = len(VARIED_REASONING)
    assert before + 2 * len(paragraph) < report.at_char <= before + 3 * len(paragraph)
    assert detector.feed("anything else") is report
    assert detector.report is report


def test_two_repeats_are_not_yet_a_loop() -> None:
    sentence = "I think the answer might be 17 but I am not completely sure about it.\n"
    assert _feed_all(ThinkingLoopDetector(), VARIED_REASONING + sentence * 2, 9) is None


def test_one_block_dominating_the_window_with_varied_filler_is_reported() -> None:
    anchor = "Wait, I need to go back and re-check the boundary condition at n = 0."
    text = "".join(f"{anchor} Case number {i} gives value {i * i + 3}.\n" for i in range(30))
    report = _feed_all(ThinkingLoopDetector(), text, 11)
    assert report is not None
    assert report.kind == "window"
    assert report.block == anchor
    assert report.repeats >= 12


def test_last_unterminated_block_is_judged_at_finish() -> None:
    line = "the quick brown fox jumps over the lazy dog again and again"
    detector = ThinkingLoopDetector()
    assert detector.feed(f"{line}\n{line}\n{line}") is None
    report = detector.finish()
    assert report is not None and report.block == line


@pytest.mark.parametrize(
    "kwargs",
    [
        {"min_block_chars": 0},
        {"repeats": 1},
        {"max_unit_blocks": 0},
        {"window_blocks": 1},
        {"dominance": 0.0},
    ],
)
def test_bad_settings_are_usage_errors(kwargs: dict[str, float]) -> None:
    with pytest.raises(UsageError):
        ThinkingLoopDetector(**kwargs)  # type: ignore[arg-type]
