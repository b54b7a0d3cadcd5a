"""One ``qwenkit eval`` invocation: build the task, run it (at each thinking budget), write and show it."""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from rich.console import Console

from qwenkit.bench.progress import NullProgress, RichProgress
from qwenkit.errors import UsageError
from qwenkit.eval.report import EvalReport, print_report, write_json
from qwenkit.eval.results import check_out
from qwenkit.eval.runner import EvalConfig, TargetSpec, evaluate
from qwenkit.eval.sandbox import SandboxLimits
from qwenkit.eval.sweep import print_sweep, sweep_of, write_sweep_plot
from qwenkit.eval.tasks import make_task


@dataclass(frozen=True)
class EvalRequest:
    ref: str | None
    url: str | None
    api_key: str | None
    served_model: str | None
    task: str
    data: Path | None
    limit: int | None
    samples: int
    temperature: float
    max_tokens: int | None
    concurrency: int
    thinking: bool | None
    budgets: tuple[int | None, ...]
    prefill: bool
    timeout: float
    seed: int
    out: Path | None
    resume: bool
    json_out: str | None
    plot: Path | None
    backend: str
    context: int | None
    threads: int | None


def _run(request: EvalRequest, show_progress: bool, err_console: Console) -> list[EvalReport]:
    limits = SandboxLimits(timeout=request.timeout, cpu_seconds=max(1, int(request.timeout)))
    task = make_task(request.task, request.data, limits, prefill=request.prefill)
    task.items()  # a bad --data fails here, before a model is loaded
    check_out(request.out, request.resume)
    if request.ref is None and request.url is None:
        raise UsageError("name a model to evaluate (REF) or a server (--url)")
    spec = TargetSpec(request.ref, request.url, request.api_key, request.served_model, request.backend,
                      request.context, request.threads)
    config = EvalConfig(request.samples, request.temperature, request.max_tokens, request.concurrency,
                        request.limit, request.thinking, request.out, request.resume, request.seed)
    progress = RichProgress(err_console) if show_progress else NullProgress()
    try:
        run = evaluate(spec, task, config, request.budgets, progress, show_progress=show_progress)
        return asyncio.run(run)
    finally:
        if isinstance(progress, RichProgress):
            progress.close()


def run_eval_command(request: EvalRequest, console: Console, err_console: Console) -> None:
    to_stdout = request.json_out == "-"
    reports = _run(request, not to_stdout, err_console)
    sweep = sweep_of(reports) if len(reports) > 1 else None
    data = asdict(sweep) if sweep is not None else asdict(reports[0])
    if to_stdout:
        sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    else:
        for report in reports:
            print_report(report, console)
        if sweep is not None:
            print_sweep(sweep, console)
    if request.json_out is not None and not to_stdout:
        write_json(data, Path(request.json_out))
        err_console.print(f"report: {request.json_out}", highlight=False)
    if request.plot is not None:
        if sweep is not None:
            write_sweep_plot(sweep, request.plot)
        else:
            from qwenkit.eval.compare import compare_reports, summary_of, write_comparison_plot

            write_comparison_plot(compare_reports([summary_of(asdict(reports[0]), "this run")]), request.plot)
        err_console.print(f"plot: {request.plot}", highlight=False)
