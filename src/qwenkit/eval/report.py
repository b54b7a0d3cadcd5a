"""An evaluation's report: the score with its interval, next to the speed and size of the same run."""

from __future__ import annotations

import dataclasses
import json
import re
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from qwenkit.bench.report import MachineInfo
from qwenkit.bench.target import TargetInfo
from qwenkit.errors import UsageError
from qwenkit.eval.results import ItemRecord
from qwenkit.eval.scoring import Estimate, score_pass_at_k
from qwenkit.eval.tasks import Metric, Published

REPORT_KIND = "qwenkit-eval-report"
_QUOTED = re.compile(r"\s*'.*$")  # "wrong answer '7'" -> "wrong answer"
PASS_KS = (1, 5, 10, 100)


@dataclass(frozen=True)
class RunConfig:
    task: str
    samples: int
    temperature: float
    max_tokens: int
    concurrency: int
    limit: int | None
    thinking: bool | None
    thinking_budget: int | None


@dataclass(frozen=True)
class Speed:
    """From the same run: tokens per answer, per-answer decode speed, throughput, time, memory, size."""

    completion_tokens_mean: float
    reasoning_tokens_mean: float
    decode_tps_mean: float | None
    aggregate_tps: float | None  # completion tokens of the answers generated now / wall time
    seconds_per_answer: float | None  # wall time / answers generated now (concurrency included)
    wall_seconds: float
    generated_now: int
    peak_rss_bytes: int | None
    model_file_bytes: int | None


@dataclass(frozen=True)
class EvalReport:
    created: str
    machine: MachineInfo
    target: TargetInfo
    config: RunConfig
    metric: str
    scores: Mapping[str, Estimate]
    speed: Speed
    items: Mapping[str, float]  # fraction of samples right, per item
    failures: Mapping[str, int]  # failure reasons (their first words) and how often
    errors: int  # answers whose generation failed
    published: Published | None = None
    sandbox: str | None = None
    results_file: str | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)
    kind: str = REPORT_KIND

    @property
    def headline(self) -> str:
        return "accuracy" if self.metric == Metric.ACCURACY.value else "pass@1"


def score_records(records: Sequence[ItemRecord], metric: Metric, samples: int) -> dict[str, Estimate]:
    per_item: dict[str, list[bool]] = defaultdict(list)
    for r in records:
        per_item[r.item].append(r.correct)
    counts = [(len(v), sum(v)) for v in per_item.values()]
    if metric is Metric.ACCURACY:
        return {"accuracy": score_pass_at_k(counts, 1)}
    ks = sorted({k for k in (*PASS_KS, samples) if k <= min(n for n, _ in counts)})
    return {f"pass@{k}": score_pass_at_k(counts, k) for k in ks}


def failure_reasons(records: Sequence[ItemRecord], top: int = 8) -> dict[str, int]:
    """The most common failure reasons, cut to their kind (``AssertionError``, ``timeout`` ...)."""
    heads = (r.reason.split(":")[0].split(" (")[0] for r in records if not r.correct)
    kinds = Counter(_QUOTED.sub("", head)[:60] for head in heads)
    return dict(kinds.most_common(top))


def per_item(records: Sequence[ItemRecord]) -> dict[str, float]:
    groups: dict[str, list[bool]] = defaultdict(list)
    for r in records:
        groups[r.item].append(r.correct)
    return {item: sum(v) / len(v) for item, v in groups.items()}


def report_dict(report: EvalReport) -> dict[str, Any]:
    return dataclasses.asdict(report)


def write_json(report: EvalReport | Mapping[str, Any], path: Path) -> None:
    data = report if isinstance(report, Mapping) else report_dict(report)
    try:
        path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}", param="json") from None


def _mib(n: int | None) -> str:
    return "-" if n is None else f"{n / 2**20:,.0f} MiB"


def _num(x: float | None, fmt: str = ".1f") -> str:
    return "-" if x is None else format(x, fmt)


def print_report(report: EvalReport, console: Console) -> None:
    t = report.target
    title = f"{t.model} ({t.kind}{', ' + t.backend if t.backend else ''}) on {report.config.task}"
    table = Table(title=title, title_justify="left", show_header=True)
    for col in ("score", "value [95 % CI]", "items"):
        table.add_column(col)
    for name, est in report.scores.items():
        table.add_row(name, est.percent(), str(est.n))
    if report.published is not None:
        table.add_row("published", f"{report.published.score:.1f}", report.published.source)
    console.print(table)
    s = report.speed
    console.print(
        f"tokens/answer {s.completion_tokens_mean:.0f} (reasoning {s.reasoning_tokens_mean:.0f}) | "
        f"decode {_num(s.decode_tps_mean)} tok/s per answer, {_num(s.aggregate_tps)} tok/s total | "
        f"{_num(s.seconds_per_answer, '.2f')} s/answer | peak RSS {_mib(s.peak_rss_bytes)} | "
        f"model file {_mib(s.model_file_bytes)}", highlight=False, soft_wrap=True)
    if report.failures:
        console.print("failures: " + ", ".join(f"{k} x{v}" for k, v in report.failures.items()),
                      highlight=False, soft_wrap=True)
    for note in report.notes:
        console.print(f"note: {note}", highlight=False, soft_wrap=True)
