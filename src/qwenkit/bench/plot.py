"""A PNG of throughput and time to first token against concurrency, one line per prompt length.

matplotlib is imported lazily with the Agg backend (no display needed); it is an optional extra.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

from qwenkit.bench.report import BenchReport
from qwenkit.bench.stats import LevelSummary
from qwenkit.errors import MissingDependencyError, UsageError


def _series(report: BenchReport) -> dict[int, list[LevelSummary]]:
    by_prompt: dict[int, list[LevelSummary]] = defaultdict(list)
    for s in report.levels:
        by_prompt[s.prompt_tokens_target].append(s)
    return {p: sorted(levels, key=lambda s: s.concurrency) for p, levels in by_prompt.items()}


def pyplot_for(path: Path, extra: str) -> Any:
    """matplotlib's pyplot on the file-only backend, once ``path`` is known to name a PNG; a missing
    matplotlib names the extra (``bench``, ``eval``) that installs it."""
    if path.suffix.lower() != ".png":
        raise UsageError(f"--plot must name a .png file, got {path}", param="plot")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise MissingDependencyError.for_extra("matplotlib", extra) from None
    return plt


def write_plot(report: BenchReport, path: Path) -> None:
    """Left: total output tok/s (solid) and per-request decode tok/s (dashed); right: TTFT p50/p95."""
    plt = pyplot_for(path, "bench")
    fig, (speed, ttft) = plt.subplots(1, 2, figsize=(11, 4.2))
    for prompt, levels in _series(report).items():
        xs = [s.concurrency for s in levels]
        totals = [s.aggregate_output_tps for s in levels]
        line = speed.plot(xs, totals, marker="o", label=f"total, prompt {prompt}")
        color = line[0].get_color()
        speed.plot(xs, [s.decode_tps.p50 if s.decode_tps else float("nan") for s in levels], marker=".",
                   linestyle="--", color=color, label=f"per request p50, prompt {prompt}")
        ttft.plot(xs, [s.ttft.p50 * 1e3 if s.ttft else float("nan") for s in levels], marker="o", color=color,
                  label=f"p50, prompt {prompt}")
        ttft.plot(xs, [s.ttft.p95 * 1e3 if s.ttft else float("nan") for s in levels], marker=".",
                  linestyle=":", color=color, label=f"p95, prompt {prompt}")
    speed.set(xlabel="concurrency", ylabel="output tokens / s", title="Decode throughput")
    ttft.set(xlabel="concurrency", ylabel="ms", title="Time to first token")
    ticks = sorted({s.concurrency for s in report.levels})
    for ax in (speed, ttft):
        ax.set_xscale("log", base=2)
        ax.set_xticks(ticks, [str(c) for c in ticks])
        ax.minorticks_off()
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(f"{report.target.model} ({report.target.kind}) on {report.machine.cpu}", fontsize=9)
    fig.tight_layout()
    try:
        fig.savefig(path, dpi=110)
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}", param="plot") from None
    finally:
        plt.close(fig)
