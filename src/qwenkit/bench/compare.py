"""``qwenkit bench --compare a.json b.json``: the ratio b / a of every figure, level by level.

Levels are matched on (prompt length asked for, concurrency). Each metric says whether higher is
better, so the table can mark which side won.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from rich.console import Console
from rich.table import Table

from qwenkit.bench.report import BenchReport
from qwenkit.bench.stats import LevelSummary


@dataclass(frozen=True)
class Metric:
    name: str
    get: Callable[[LevelSummary], float | None]
    higher_is_better: bool


METRICS: tuple[Metric, ...] = (
    Metric("decode tok/s p50", lambda s: s.decode_tps.p50 if s.decode_tps else None, True),
    Metric("total tok/s", lambda s: s.aggregate_output_tps or None, True),
    Metric("prefill tok/s p50", lambda s: s.prefill_tps.p50 if s.prefill_tps else None, True),
    Metric("TTFT p50", lambda s: s.ttft.p50 if s.ttft else None, False),
    Metric("ITL p50", lambda s: s.itl.p50 if s.itl else None, False),
    Metric("E2E p50", lambda s: s.e2e.p50 if s.e2e else None, False),
)


@dataclass(frozen=True)
class Ratio:
    prompt_tokens: int
    concurrency: int
    metric: str
    a: float | None
    b: float | None
    higher_is_better: bool

    @property
    def ratio(self) -> float | None:
        if self.a is None or self.b is None or self.a == 0:
            return None
        return self.b / self.a

    @property
    def b_better(self) -> bool | None:
        r = self.ratio
        if r is None or r == 1.0:
            return None
        return (r > 1.0) == self.higher_is_better


def compare(a: BenchReport, b: BenchReport) -> tuple[list[Ratio], list[tuple[int, int]]]:
    """Ratios for every level both reports have, and the (prompt, concurrency) keys only one has."""
    by_key = {(s.prompt_tokens_target, s.concurrency): s for s in b.levels}
    ratios: list[Ratio] = []
    unmatched: list[tuple[int, int]] = []
    for sa in a.levels:
        key = (sa.prompt_tokens_target, sa.concurrency)
        sb = by_key.pop(key, None)
        if sb is None:
            unmatched.append(key)
            continue
        ratios.extend(
            Ratio(key[0], key[1], m.name, m.get(sa), m.get(sb), m.higher_is_better) for m in METRICS
        )
    unmatched.extend(by_key)
    return ratios, unmatched


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.4g}"


def print_comparison(a: BenchReport, b: BenchReport, console: Console, names: tuple[str, str]) -> None:
    ratios, unmatched = compare(a, b)
    table = Table(title=f"b / a   (a = {names[0]}, b = {names[1]})", title_justify="left")
    for col in ("prompt", "conc", "metric", "a", "b", "b / a"):
        table.add_column(col, justify="right" if col != "metric" else "left")
    for r in ratios:
        ratio = "-" if r.ratio is None else f"{r.ratio:.2f}x"
        style = {True: "green", False: "red", None: ""}[r.b_better]
        table.add_row(str(r.prompt_tokens), str(r.concurrency), r.metric, _fmt(r.a), _fmt(r.b),
                      f"[{style}]{ratio}[/]" if style else ratio)
    console.print(table)
    for prompt, conc in unmatched:
        console.print(f"note: level prompt {prompt} x{conc} is in only one report", style="dim",
                      highlight=False)
