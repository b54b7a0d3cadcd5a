"""The thinking-budget sweep (Qwen3): accuracy and tokens per answer against the budget, one curve.

Budget 0 is Qwen's non-thinking mode; a positive budget lets the model think that many tokens before
Qwen's early-stop text and ``</think>`` are forced (``engine.chat_run``), and the answer follows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

from qwenkit.bench.plot import pyplot_for
from qwenkit.errors import UsageError
from qwenkit.eval.report import EvalReport
from qwenkit.eval.scoring import Estimate

SWEEP_KIND = "qwenkit-eval-thinking-sweep"


@dataclass(frozen=True)
class SweepPoint:
    budget: int | None
    score: Estimate
    completion_tokens_mean: float
    reasoning_tokens_mean: float
    seconds_per_answer: float | None


@dataclass(frozen=True)
class Sweep:
    model: str
    task: str
    score_name: str
    points: list[SweepPoint]
    reports: list[EvalReport]
    kind: str = SWEEP_KIND


def sweep_of(reports: Sequence[EvalReport]) -> Sweep:
    first = reports[0]
    points = [
        SweepPoint(r.config.thinking_budget, r.scores[r.headline], r.speed.completion_tokens_mean,
                   r.speed.reasoning_tokens_mean, r.speed.seconds_per_answer)
        for r in reports
    ]
    return Sweep(first.target.model, first.config.task, first.headline, points, list(reports))


def print_sweep(sweep: Sweep, console: Console) -> None:
    table = Table(title=f"{sweep.model} on {sweep.task}: thinking budget sweep", title_justify="left")
    for col in ("budget", f"{sweep.score_name} [95 % CI]", "tokens/answer", "reasoning tokens", "s/answer"):
        table.add_column(col)
    for p in sweep.points:
        seconds = "-" if p.seconds_per_answer is None else f"{p.seconds_per_answer:.2f}"
        table.add_row(str(p.budget), p.score.percent(), f"{p.completion_tokens_mean:.0f}",
                      f"{p.reasoning_tokens_mean:.0f}", seconds)
    console.print(table)


def write_sweep_plot(sweep: Sweep, path: Path) -> None:
    """Score (with its interval) and tokens per answer against the budget, on a symlog axis."""
    plt = pyplot_for(path, "eval")
    xs = [p.budget or 0 for p in sweep.points]
    fig, ax = plt.subplots(figsize=(7, 4.2))
    ys = [100 * p.score.value for p in sweep.points]
    err = [[100 * (p.score.value - p.score.low) for p in sweep.points],
           [100 * (p.score.high - p.score.value) for p in sweep.points]]
    ax.errorbar(xs, ys, yerr=err, marker="o", capsize=4, color="tab:blue", label=sweep.score_name)
    ax.set(xlabel="thinking budget (tokens)", ylabel=f"{sweep.score_name} (%)")
    ax.set_xscale("symlog", linthresh=64)
    tokens = ax.twinx()
    tokens.plot(xs, [p.completion_tokens_mean for p in sweep.points], marker="s", linestyle="--",
                color="tab:orange", label="tokens per answer")
    tokens.set_ylabel("tokens per answer")
    ax.grid(True, alpha=0.3)
    fig.legend(loc="upper left", fontsize=7)
    fig.suptitle(f"{sweep.model} on {sweep.task}: is thinking worth its tokens?", fontsize=9)
    fig.tight_layout()
    try:
        fig.savefig(path, dpi=110)
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}", param="plot") from None
    finally:
        plt.close(fig)
