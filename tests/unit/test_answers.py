"""Boxed final-answer extraction."""

from __future__ import annotations

import pytest

from qwenkit.chat.answers import boxed_answers, extract_boxed_answer


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("So the answer is $\\boxed{\\frac{1}{2}}$.", "\\frac{1}{2}"),
        ("First \\boxed{3}, no wait, \\boxed{4}.", "4"),
        ("Final: \\fbox{x^{2}+1}", "x^{2}+1"),
        ("Nothing boxed here {at all}.", None),
        ("\\boxed{\\{a, b\\}} is the set", "\\{a, b\\}"),
        ("\\boxed 42$ done", "42"),
        ("\\boxed {  7 }", "7"),
        ("\\boxed{3} and then \\boxed{\\frac{1}{2}", "3"),
        ("\\boxed{\\boxed{7}}", "\\boxed{7}"),
        ("}} stray closers \\boxed{ok} {", "ok"),
    ],
)
def test_extract_boxed_answer(text: str, expected: str | None) -> None:
    assert extract_boxed_answer(text) == expected


def test_all_boxed_answers_in_order() -> None:
    assert boxed_answers("\\boxed{a} mid \\fbox{b{c}} end \\boxed{d}") == ["a", "b{c}", "d"]
    assert boxed_answers("") == []
