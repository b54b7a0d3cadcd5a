"""``--compare``: runs side by side with McNemar on shared items, a table and a PNG."""

from __future__ import annotations

import asyncio
import json
from dataclasses import asdict
from pathlib import Path

import pytest
from _eval_fakes import ScriptedTarget, gsm8k_file
from rich.console import Console

from qwenkit.bench.progress import NullProgress
from qwenkit.errors import UsageError
from qwenkit.eval.compare import compare_reports, load_report, print_comparison, write_comparison_plot
from qwenkit.eval.report import write_json
from qwenkit.eval.results import ResultStore
from qwenkit.eval.runner import EvalConfig, run_task
from qwenkit.eval.tasks import make_task

ANSWERS = [7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7]


def report_file(folder: Path, name: str, right: set[int], task_name: str = "gsm8k") -> Path:
    task = make_task(task_name, gsm8k_file(folder, ANSWERS))
    answers = {f"q{n}": r"\boxed{7}" if n in right else r"\boxed{0}" for n in range(len(ANSWERS))}
    store = ResultStore(None, {}, resume=False)
    job = run_task(ScriptedTarget(answers), task, task.items(), EvalConfig(), None, store, NullProgress())
    path = folder / f"{name}.json"
    write_json(asdict(asyncio.run(job)), path)  # type: ignore[arg-type]
    return path


def test_paired_test_counts_only_disagreements(tmp_path: Path) -> None:
    a = report_file(tmp_path, "q8_0", set(range(10)))  # 10 of 12
    b = report_file(tmp_path, "q4_k_m", {0, 1, 2, 10})  # 4 of 12: 7 lost, 1 gained
    comparison = compare_reports([load_report(a), load_report(b)])
    test = comparison.tests[0]
    assert (test.baseline, test.other, test.shared) == ("q8_0", "q4_k_m", 12)
    assert (test.baseline_only, test.other_only) == (7, 1)
    assert test.p_value == pytest.approx(2 * (1 + 8) / 2**8)  # exact binomial, 8 discordant pairs
    assert test.difference_points == pytest.approx(-50.0)
    console = Console(record=True, width=200)
    print_comparison(comparison, console)
    text = console.export_text()
    assert "q4_k_m" in text and "-50.0 (1/7)" in text and "0.0703" in text
    png = tmp_path / "cmp.png"
    write_comparison_plot(comparison, png)
    assert png.read_bytes().startswith(b"\x89PNG")


def test_compare_refuses_what_is_not_an_eval_report(tmp_path: Path) -> None:
    bogus = tmp_path / "bench.json"
    bogus.write_text('{"levels": []}')
    with pytest.raises(UsageError, match="not a qwenkit eval report"):
        load_report(bogus)
    with pytest.raises(UsageError, match="no such report"):
        load_report(tmp_path / "missing.json")


def test_a_report_with_a_field_of_the_wrong_kind_is_named(tmp_path: Path) -> None:
    path = report_file(tmp_path, "edited", {0, 1})
    data = json.loads(path.read_text())
    data["speed"]["completion_tokens_mean"] = "abc"  # edited by hand
    path.write_text(json.dumps(data))
    with pytest.raises(UsageError, match=r"not a qwenkit eval report \(could not convert"):
        load_report(path)
