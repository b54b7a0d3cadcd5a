"""Answer extraction on tricky completions: code blocks, prose, cut answers, boxed numbers."""

from __future__ import annotations

from fractions import Fraction

import pytest

from qwenkit.eval.tasks.code_extract import extract_code, longest_parsing_span
from qwenkit.eval.tasks.gsm8k import final_answer, to_number

SOLUTION = "def add(a, b):\n    return a + b"


def test_several_blocks_pick_the_one_that_defines_the_entry_point() -> None:
    text = (
        "First a helper idea:\n```python\nx = 1\n```\nNow the solution:\n"
        f"```python\n{SOLUTION}\n```\nUsage:\n```python\nprint(add(1, 2))\n```\n"
    )
    assert extract_code(text, "add") == SOLUTION


def test_several_defining_blocks_pick_the_longest() -> None:
    longer = "def add(a, b):\n    total = a\n    total += b\n    return total"
    text = f"```python\n{SOLUTION}\n```\nor, more explicitly:\n```py\n{longer}\n```"
    assert extract_code(text, "add") == longer


def test_no_code_block_takes_the_longest_code_between_prose() -> None:
    text = f"Sure! Here is the function you asked for:\n\n{SOLUTION}\n\nThis adds the two numbers."
    assert extract_code(text, "add") == SOLUTION


def test_prose_around_a_block_and_examples_inside_it_are_dropped() -> None:
    text = (
        "Here you go.\n```python\nimport math\n\n"
        "def helper(x):\n    return math.floor(x)\n\n"
        "def add(a, b):\n    return helper(a) + b\n\n"
        "def unused():\n    return 0\n\n"
        "print(add(1.5, 2))\nassert add(1, 1) == 3\n"
        "if __name__ == '__main__':\n    while True:\n        pass\n```\nDone."
    )
    assert extract_code(text, "add") == (
        "import math\ndef helper(x):\n    return math.floor(x)\ndef add(a, b):\n    return helper(a) + b"
    )


def test_decorators_stay_with_their_function() -> None:
    body = "def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)"
    text = f"```python\nimport functools\n\n@functools.lru_cache(None)\n{body}\n```"
    assert extract_code(text, "fib").startswith("import functools\n@functools.lru_cache(None)\ndef fib(n):")


def test_a_block_cut_off_by_the_token_limit_still_counts() -> None:
    text = f"```python\n{SOLUTION}\n\n# and now some tests\nprint(add("
    assert extract_code(text, "add") == SOLUTION


def test_untagged_and_other_language_blocks() -> None:
    text = f"```bash\npip install nothing\n```\n```\n{SOLUTION}\n```"
    assert extract_code(text, "add") == SOLUTION


def test_nothing_like_code_gives_empty() -> None:
    assert extract_code("I cannot help with that.", "add") == ""
    assert longest_parsing_span("") == ""


@pytest.mark.parametrize(
    ("answer", "value"),
    [
        (r"\frac{3}{4}", Fraction(3, 4)),
        (r"\dfrac{10}{4}", Fraction(5, 2)),
        (r"18 \text{ dollars}", Fraction(18)),
        (r"\$1,080", Fraction(1080)),
        (r"20\%", Fraction(20)),
        ("$70,000", Fraction(70000)),
        ("-3.5", Fraction(-7, 2)),
        (r"45^\circ", Fraction(45)),
        ("7/2", Fraction(7, 2)),
        ("no number", None),
    ],
)
def test_numbers_out_of_boxed_answers(answer: str, value: Fraction | None) -> None:
    assert to_number(answer) == value


def test_the_last_boxed_answer_wins_and_nested_braces_survive() -> None:
    text = r"First guess \boxed{5}. Correction: the total is \boxed{\frac{18}{2}} dollars."
    assert final_answer(text) == r"\frac{18}{2}"
    assert to_number(final_answer(text)) == 9


def test_without_a_box_the_last_number_is_the_answer() -> None:
    assert final_answer("She earns 16 - 3 - 4 = 9 eggs, so 9 * 2 = 18 dollars.") == "18"
    assert final_answer("I do not know.") is None
