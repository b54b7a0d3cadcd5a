"""The evaluation loop over a scripted target: grading, scores, speed fields, and resume."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from _eval_fakes import ScriptedTarget, gsm8k_file

from qwenkit.bench.progress import NullProgress
from qwenkit.errors import UsageError
from qwenkit.eval.report import EvalReport
from qwenkit.eval.results import ResultStore, read_results
from qwenkit.eval.runner import EvalConfig, header, run_task
from qwenkit.eval.sandbox import SandboxLimits
from qwenkit.eval.targets import Answer
from qwenkit.eval.tasks import Task, make_task
from qwenkit.eval.tasks.humaneval import RESPONSE_PREFIX

RIGHT = {"q0": r"\boxed{3}", "q1": r"so \boxed{\frac{8}{2}}", "q2": "It is 7.", "q3": r"\boxed{100}"}


def run(target: ScriptedTarget, task: Task, config: EvalConfig, limit: int | None = None) -> EvalReport:
    items = task.items()[:limit] if limit else task.items()
    store = ResultStore(config.out, header(config, task, target), resume=config.resume)  # type: ignore[arg-type]
    try:
        return asyncio.run(run_task(target, task, items, config, None, store, NullProgress()))  # type: ignore[arg-type]
    finally:
        store.close()


@pytest.fixture
def gsm8k(tmp_path: Path) -> Task:
    return make_task("gsm8k", gsm8k_file(tmp_path, [3, 4, 8, 100]))


def test_scores_and_speed_come_from_the_same_run(gsm8k: Task) -> None:
    target = ScriptedTarget(RIGHT)
    report = run(target, gsm8k, EvalConfig(concurrency=2))
    acc = report.scores["accuracy"]
    assert (acc.value, acc.n) == (0.75, 4)  # q2 answers 7, expected 8
    assert report.items == {"gsm8k/0": 1.0, "gsm8k/1": 1.0, "gsm8k/2": 0.0, "gsm8k/3": 1.0}
    assert report.failures == {"wrong answer": 1}
    assert report.speed.generated_now == 4 and report.speed.decode_tps_mean == 100.0
    sent = target.settings[0]
    assert sent.sampling["temperature"] == 0.0 and sent.sampling["repetition_penalty"] == 1.0
    assert sent.max_tokens == gsm8k.max_tokens


def test_resume_redoes_only_what_is_missing_failed_or_changed(gsm8k: Task, tmp_path: Path) -> None:
    out = tmp_path / "results.jsonl"
    first = ScriptedTarget(RIGHT, fail=["q1"])
    run(first, gsm8k, EvalConfig(out=out), limit=3)  # "interrupted" after three items, one of them failed
    assert first.asked == ["q0", "q1", "q2"]
    with out.open("a", encoding="utf-8") as handle:
        handle.write('{"item": "gsm8k/3", "samp')  # the line being written when the run was killed
    second = ScriptedTarget(RIGHT)
    report = run(second, gsm8k, EvalConfig(out=out, resume=True))
    assert sorted(second.asked) == ["q1", "q3"]  # q0 and q2 were done; q1 had failed
    assert report.scores["accuracy"].value == 0.75 and report.speed.generated_now == 2
    assert report.notes[0].startswith("2 answers reused")
    _, records = read_results(out)
    assert sorted(r.item for r in records if r.error is None) == ["gsm8k/0", "gsm8k/1", "gsm8k/2", "gsm8k/3"]


def test_resume_refuses_a_file_from_another_run(gsm8k: Task, tmp_path: Path) -> None:
    out = tmp_path / "results.jsonl"
    run(ScriptedTarget(RIGHT), gsm8k, EvalConfig(out=out), limit=1)
    with pytest.raises(UsageError, match=r"different run .*temperature"):
        run(ScriptedTarget(RIGHT), gsm8k, EvalConfig(out=out, resume=True, temperature=0.7))
    with pytest.raises(UsageError, match="exists: pass --resume"):
        run(ScriptedTarget(RIGHT), gsm8k, EvalConfig(out=out))


def test_humaneval_answers_run_against_the_problem_tests() -> None:
    task = make_task("humaneval", limits=SandboxLimits(timeout=5, cpu_seconds=3), prefill=False)
    items = task.items()[:2]
    prompts = [str(i.messages[-1]["content"]) for i in items]
    good = (
        "Here is my solution:\n```python\nfrom typing import List\n\n"
        "def has_close_elements(numbers: List[float], threshold: float) -> bool:\n"
        "    return any(abs(a - b) < threshold for i, a in enumerate(numbers) for b in numbers[i + 1:])\n```"
    )
    hostile = (
        "```python\nimport os\ndef separate_paren_groups(s):\n    os.system('rm -rf ~')\n    return []\n```"
    )
    report = run(ScriptedTarget({prompts[0]: good, prompts[1]: hostile}), task, EvalConfig(concurrency=2),
                 limit=2)
    assert report.items == {"HumanEval/0": 1.0, "HumanEval/1": 0.0}
    assert report.scores["pass@1"].value == 0.5
    assert report.failures == {"sandbox refused os.system": 1}
    assert report.sandbox in ("network namespace", "sockets refused (no namespace here)")


def test_a_prefilled_answer_is_continued_and_graded_whole(tmp_path: Path) -> None:
    """EvalPlus's opening is sent for the model to continue; the code after it is what runs."""
    task = make_task("humaneval", limits=SandboxLimits(timeout=5, cpu_seconds=3))
    item = task.items()[0]
    assert item.prefill == RESPONSE_PREFIX
    assert item.prompt_hash != make_task("humaneval", prefill=False).items()[0].prompt_hash
    continuation = (
        "from typing import List\n\n\n"
        "def has_close_elements(numbers: List[float], threshold: float) -> bool:\n"
        "    return any(abs(a - b) < threshold for i, a in enumerate(numbers) for b in numbers[i + 1:])\n"
        "```\n\nIt compares every pair once."
    )
    target = ScriptedTarget({str(item.messages[-1]["content"]): continuation})
    out = tmp_path / "r.jsonl"
    report = run(target, task, EvalConfig(out=out), limit=1)
    assert target.prefills == [RESPONSE_PREFIX]
    assert report.items == {"HumanEval/0": 1.0}
    _, records = read_results(out)
    assert records[0].answer == RESPONSE_PREFIX + continuation
    assert (records[0].extracted or "").startswith("from typing import List")


def test_a_thinking_model_gets_no_prefill() -> None:
    """A continued Qwen3 answer follows an empty reasoning block: thinking runs answer from scratch."""
    task = make_task("humaneval", limits=SandboxLimits(timeout=5, cpu_seconds=3))
    item = task.items()[0]
    target = ScriptedTarget({str(item.messages[-1]["content"]): "```python\nx = 1\n```"})
    report = run(target, task, EvalConfig(thinking=True), limit=1)
    assert target.prefills == [] and report.items == {"HumanEval/0": 0.0}


class EvenSeedsRight(ScriptedTarget):
    """Right on even seeds only: 3 of 5 samples per item."""

    async def answer(self, messages, settings):  # type: ignore[no-untyped-def]
        good = settings.sampling["seed"] % 2 == 0
        entry = "def truncate_number(number: float) -> float:\n    return number % 1.0" if good else "x = 1"
        self.settings.append(settings)
        return Answer(content=f"```python\n{entry}\n```", completion_tokens=5, finish_reason="stop")


def test_samples_give_unbiased_pass_at_k() -> None:
    task = make_task("humaneval", limits=SandboxLimits(timeout=5, cpu_seconds=3))
    item = next(i for i in task.items() if i.reference["entry_point"] == "truncate_number")
    target = EvenSeedsRight({})
    config = EvalConfig(samples=5, temperature=0.8)
    store = ResultStore(None, {}, resume=False)
    job = run_task(target, task, [item], config, None, store, NullProgress())  # type: ignore[arg-type]
    report = asyncio.run(job)
    assert sorted(s.sampling["seed"] for s in target.settings) == [0, 1, 2, 3, 4]
    assert {s.sampling["top_p"] for s in target.settings} == {0.95}
    assert set(report.scores) == {"pass@1", "pass@5"}
    assert report.scores["pass@1"].value == pytest.approx(0.6)
    assert report.scores["pass@5"].value == 1.0
    assert report.items == {item.id: pytest.approx(0.6)}


@pytest.mark.parametrize(
    ("thinking", "budget", "expected_thinking", "expected_max"),
    [
        (None, None, None, 1024),
        (True, None, True, 1024 + 4096),  # unbounded thinking gets room for it
        (None, 0, False, 1024),  # budget 0 is Qwen's non-thinking mode
        (None, 256, True, 1024 + 256 + 64),  # a budget turns thinking on, with room for the early stop
        (False, 256, False, 1024 + 256 + 64),  # an explicit --thinking off stays off
    ],
)
def test_generation_settings(thinking: bool | None, budget: int | None, expected_thinking: bool | None,
                             expected_max: int, gsm8k: Task) -> None:
    settings = EvalConfig(thinking=thinking).settings(gsm8k, budget)
    assert (settings.thinking, settings.thinking_budget, settings.max_tokens) == (
        expected_thinking, budget, expected_max)
    assert EvalConfig(max_tokens=77).settings(gsm8k, budget).max_tokens == 77


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("", "is empty"),
        ("\n\n", ":1 is not JSON"),
        ("not json at all\n", "is not a qwenkit eval results file"),  # was "is empty"
    ],
)
def test_a_results_file_without_its_header_says_which(tmp_path: Path, content: str, expected: str) -> None:
    out = tmp_path / "results.jsonl"
    out.write_text(content)
    with pytest.raises(UsageError, match=expected):
        read_results(out)
