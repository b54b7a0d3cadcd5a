"""GSM8K: grade-school word problems whose answer is one number.

The prompt is Qwen's for math (``chat.builders.math_boxed``: step by step, the final answer in
``\\boxed{}``). The answer is the last ``\\boxed{}`` (``chat.answers.extract_boxed_answer``), else the
last number in the text; both sides are read as exact numbers (commas, currency, units, percent signs
and LaTeX fractions removed) and compared exactly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from qwenkit.chat.answers import extract_boxed_answer
from qwenkit.chat.builders import math_boxed
from qwenkit.errors import UsageError
from qwenkit.eval.tasks.base import Grade, Item, Metric, Published, TaskName
from qwenkit.eval.tasks.data import read_jsonl

_FRAC = re.compile(r"\\[dt]?frac\s*\{([^{}]*)\}\s*\{([^{}]*)\}")
_TEXT = re.compile(r"\\(?:text|mathrm|textbf|mbox)\s*\{[^{}]*\}")
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:/\d+)?|-?\.\d+")


def reference_answer(answer: str) -> str:
    """GSM8K's answer field ends in ``#### N``."""
    if "####" not in answer:
        raise UsageError("a GSM8K answer must end in '#### <number>'", param="data")
    return answer.rsplit("####", 1)[1].strip()


def to_number(text: str | None) -> Fraction | None:
    """An exact number from an answer such as ``\\$1,080``, ``18 \\text{ dollars}``, ``\\frac{3}{4}``."""
    if text is None:
        return None
    cleaned = _FRAC.sub(lambda m: f"{m.group(1).strip()}/{m.group(2).strip()}", text)
    cleaned = _TEXT.sub(" ", cleaned)
    cleaned = re.sub(r"\\[%$,! ]|\\(?:left|right|cdot|times)|[$%(){}]|\^\\circ", " ", cleaned)
    numbers = _NUMBER.findall(cleaned)
    if not numbers:
        return None
    try:
        return Fraction(numbers[-1].replace(",", "")) if "/" not in numbers[-1] else _fraction(numbers[-1])
    except (ValueError, ZeroDivisionError):
        return None


def _fraction(text: str) -> Fraction:
    num, den = text.replace(",", "").split("/")
    return Fraction(num) / Fraction(den)


def final_answer(text: str) -> str | None:
    """The boxed answer, else the last number written."""
    boxed = extract_boxed_answer(text)
    if boxed is not None:
        return boxed
    numbers = _NUMBER.findall(text)
    return numbers[-1] if numbers else None


@dataclass
class GSM8K:
    data: Path | None = None
    name: TaskName = TaskName.GSM8K
    metric: Metric = Metric.ACCURACY
    max_tokens: int = 1024

    def items(self) -> list[Item]:
        if self.data is None:
            message = "gsm8k needs --data PATH: a JSON Lines file with question and answer"
            raise UsageError(message, param="data")
        rows = read_jsonl(self.data, ("question", "answer"))
        items = []
        for n, row in enumerate(rows):
            messages = tuple({"role": m.role, "content": str(m.content)} for m in math_boxed(row["question"]))
            items.append(Item(id=str(row.get("id", f"gsm8k/{n}")), messages=messages,
                              reference={"answer": reference_answer(row["answer"])}))
        return items

    def grade(self, item: Item, answer: str) -> Grade:
        expected = item.reference["answer"]
        got = final_answer(answer)
        value, want = to_number(got), to_number(expected)
        if got is None:
            return Grade(False, "no final answer", None)
        if value is not None and value == want:
            return Grade(True, "correct", got)
        return Grade(False, f"wrong answer {got!r} (expected {expected})", got)

    def published(self, model: str) -> Published | None:
        return None
