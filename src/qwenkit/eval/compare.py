"""``qwenkit eval --compare``: runs side by side, quality against speed and size, with a paired test.

Each run after the first is tested against the first on the items both answered (McNemar's exact
test), so a gap of a few points comes with how likely it is to be noise. With several samples per
item, an item counts as right when at least half of its samples are.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from qwenkit.bench.plot import pyplot_for
from qwenkit.errors import UsageError
from qwenkit.eval.report import REPORT_KIND
from qwenkit.eval.scoring import Estimate, mcnemar


@dataclass(frozen=True)
class RunSummary:
    label: str
    model: str
    task: str
    score_name: str
    score: Estimate
    published: float | None
    completion_tokens_mean: float
    decode_tps_mean: float | None
    aggregate_tps: float | None
    model_file_bytes: int | None
    peak_rss_bytes: int | None
    thinking_budget: int | None
    items: Mapping[str, float] = field(repr=False, default_factory=dict)


@dataclass(frozen=True)
class PairedTest:
    baseline: str
    other: str
    shared: int
    baseline_only: int  # items right in the baseline only
    other_only: int
    difference_points: float  # other minus baseline on the shared items, in points
    p_value: float


@dataclass(frozen=True)
class Comparison:
    runs: list[RunSummary]
    tests: list[PairedTest]


def summary_of(data: Mapping[str, Any], label: str) -> RunSummary:
    """The parts of an eval report (as read from JSON) that a comparison uses."""
    try:
        scores = data["scores"]
        name = "accuracy" if "accuracy" in scores else "pass@1"
        speed, target, config = data["speed"], data["target"], data["config"]
        published = data.get("published")
        return RunSummary(
            label=label, model=str(target["model"]), task=str(config["task"]), score_name=name,
            score=Estimate(**scores[name]), published=published["score"] if published else None,
            completion_tokens_mean=float(speed["completion_tokens_mean"]),
            decode_tps_mean=speed["decode_tps_mean"],
            aggregate_tps=speed["aggregate_tps"], model_file_bytes=speed["model_file_bytes"],
            peak_rss_bytes=speed["peak_rss_bytes"], thinking_budget=config.get("thinking_budget"),
            items=dict(data["items"]),
        )
    except KeyError as exc:
        raise UsageError(f"{label} is not a qwenkit eval report (missing {exc})", param="compare") from None
    except (TypeError, ValueError, AttributeError) as exc:  # a field of the wrong kind, e.g. edited by hand
        reason = " ".join(str(exc).split())
        raise UsageError(f"{label} is not a qwenkit eval report ({reason})", param="compare") from None


def load_report(path: Path) -> RunSummary:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"no such report: {path}", param="compare") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(f"{path} is not a JSON report: {exc}", param="compare") from None
    if not isinstance(data, dict) or data.get("kind") != REPORT_KIND:
        raise UsageError(f"{path} is not a qwenkit eval report (write one with --json)", param="compare")
    return summary_of(data, path.stem)


def paired(a: RunSummary, b: RunSummary) -> PairedTest:
    shared = sorted(set(a.items) & set(b.items))
    if not shared:
        raise UsageError(f"{a.label} and {b.label} share no items", param="compare")
    test = mcnemar([a.items[i] >= 0.5 for i in shared], [b.items[i] >= 0.5 for i in shared])
    return PairedTest(a.label, b.label, test.shared, test.a_only, test.b_only, 100 * test.difference,
                      test.p_value)


def compare_reports(runs: Sequence[RunSummary]) -> Comparison:
    tasks = {r.task for r in runs}
    if len(tasks) > 1:
        names = ", ".join(sorted(tasks))
        raise UsageError(f"these reports are on different tasks ({names})", param="compare")
    return Comparison(list(runs), [paired(runs[0], r) for r in runs[1:]])


def _fmt(x: float | None, spec: str = ".1f") -> str:
    return "-" if x is None else format(x, spec)


def print_comparison(comparison: Comparison, console: Console) -> None:
    base = comparison.runs[0]
    title = f"{base.task}: {base.score_name} [95 % CI], against {base.label}"
    table = Table(title=title, title_justify="left")
    for col in ("run", "score", "published", "vs first (points)", "McNemar p", "tokens/answer",
                "decode tok/s", "total tok/s", "file MiB", "peak RSS MiB"):
        table.add_column(col)
    tests = {t.other: t for t in comparison.tests}
    for run in comparison.runs:
        test = tests.get(run.label)
        diff, p_value = "-", "-"
        if test is not None:
            diff = f"{test.difference_points:+.1f} ({test.other_only}/{test.baseline_only})"
            p_value = f"{test.p_value:.3g}"
        table.add_row(
            run.label, run.score.percent(), _fmt(run.published), diff, p_value,
            f"{run.completion_tokens_mean:.0f}", _fmt(run.decode_tps_mean), _fmt(run.aggregate_tps),
            _fmt(run.model_file_bytes and run.model_file_bytes / 2**20, ".0f"),
            _fmt(run.peak_rss_bytes and run.peak_rss_bytes / 2**20, ".0f"),
        )
    console.print(table)
    console.print("vs first: points gained (items right only here / only in the first); p < 0.05: unlikely "
                  "to be noise", highlight=False, soft_wrap=True)


def write_comparison_plot(comparison: Comparison, path: Path) -> None:
    """Left: score against total tok/s; right: score against model file size; 95 % intervals as bars."""
    plt = pyplot_for(path, "eval")
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.4))
    xs_of = (lambda r: r.aggregate_tps, lambda r: r.model_file_bytes and r.model_file_bytes / 2**20)
    for ax, x_of, xlabel in zip(axes, xs_of, ("total output tok/s", "model file (MiB)"), strict=True):
        for run in comparison.runs:
            x = x_of(run)
            if x is None:
                continue
            s = run.score
            err = [[100 * (s.value - s.low)], [100 * (s.high - s.value)]]
            line = ax.errorbar([x], [100 * s.value], yerr=err, marker="o", capsize=4, label=run.label)
            if run.published is not None:
                ax.plot([x], [run.published], marker="x", markersize=9, color=line[0].get_color(),
                        linestyle="none", label=f"{run.label}: published")
        ax.set(xlabel=xlabel, ylabel=f"{comparison.runs[0].score_name} (%)")
        ax.grid(True, alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
        else:
            ax.text(0.5, 0.5, "not measured in these runs", ha="center", transform=ax.transAxes)
    fig.suptitle(f"{comparison.runs[0].task}: quality against speed and size (bars: 95 % CI; x: published)",
                 fontsize=9)
    fig.tight_layout()
    try:
        fig.savefig(path, dpi=110)
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}", param="plot") from None
    finally:
        plt.close(fig)
