"""``qwenkit eval``: quality (HumanEval, GSM8K) next to speed and size, in-process or over ``--url``."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path

import typer

from qwenkit.cli.app import app, console, err_console
from qwenkit.cli.load_options import REF_HELP, BackendOption, ThreadsOption, context_option
from qwenkit.errors import UsageError
from qwenkit.output_paths import check_output_file

THINKING = {"on": True, "off": False}
PREFILL_HELP = (
    "humaneval: pre-fill the answer's opening, as EvalPlus does (a server must continue a final assistant "
    "message: qwenkit, vLLM, llama.cpp and Ollama do)"
)


def _thinking(value: str | None) -> bool | None:
    if value is None:
        return None
    if value.lower() not in THINKING:
        raise UsageError(f"--thinking must be on or off, got {value!r}", param="thinking")
    return THINKING[value.lower()]


def _budgets(text: str | None) -> tuple[int | None, ...]:
    if text is None:
        return (None,)
    from qwenkit.bench.workload import parse_int_list

    return parse_int_list(text, "thinking_budget", minimum=0)


def _compare(files: list[str], json_out: str | None, plot: Path | None) -> None:
    from qwenkit.eval.compare import compare_reports, load_report, print_comparison, write_comparison_plot

    if len(files) < 2:
        raise UsageError("--compare needs two or more eval report files (written with --json)")
    check_output_file(json_out, "json")
    check_output_file(plot, "plot", suffix=".png")
    comparison = compare_reports([load_report(Path(f)) for f in files])
    if json_out == "-":
        sys.stdout.write(json.dumps(asdict(comparison), indent=2) + "\n")
    else:
        print_comparison(comparison, console)
        if json_out is not None:
            Path(json_out).write_text(json.dumps(asdict(comparison), indent=2) + "\n", encoding="utf-8")
    if plot is not None:
        write_comparison_plot(comparison, plot)
        err_console.print(f"plot: {plot}", highlight=False)


@app.command("eval")
def eval_command(
    refs: list[str] | None = typer.Argument(None, help=f"model to evaluate in-process: {REF_HELP}; "
                                                       "with --compare: eval report files"),
    task: str = typer.Option("humaneval", "--task", help="humaneval or gsm8k"),
    data: Path | None = typer.Option(None, "--data", help="the task's JSON Lines (gsm8k: required)"),
    url: str | None = typer.Option(None, "--url", help="evaluate this OpenAI-compatible server instead"),
    api_key: str | None = typer.Option(None, "--api-key", envvar="QWENKIT_EVAL_API_KEY", help="server key"),
    served_model: str | None = typer.Option(None, "--model", help="model name to send (default: the first)"),
    limit: int | None = typer.Option(None, "--limit", min=1, help="only the first N problems"),
    samples: int = typer.Option(1, "--samples", min=1, help="answers per problem (pass@k needs k of them)"),
    temperature: float = typer.Option(0.0, "--temperature", min=0.0, max=2.0, help="0: greedy"),
    max_tokens: int | None = typer.Option(None, "--max-tokens", min=1, help="per answer (default: by task)"),
    concurrency: int = typer.Option(1, "--concurrency", min=1, max=256, help="answers generated at once"),
    thinking: str | None = typer.Option(None, "--thinking", help="on or off (Qwen3)"),
    thinking_budget: str | None = typer.Option(None, "--thinking-budget",
                                               help="reasoning tokens; a list (0,256,1024) sweeps them"),
    prefill: bool = typer.Option(True, "--prefill/--no-prefill", help=PREFILL_HELP),
    timeout: float = typer.Option(10.0, "--timeout", min=0.5, max=600.0, help="seconds per program run"),
    seed: int = typer.Option(0, "--seed", help="sampling seed of the first sample"),
    out: Path | None = typer.Option(None, "--out", help="per-item results (JSON Lines)"),
    resume: bool = typer.Option(False, "--resume", help="continue --out, redoing only what is missing"),
    json_out: str | None = typer.Option(None, "--json", help="write the report here ('-': stdout)"),
    plot: Path | None = typer.Option(None, "--plot", help="PNG: quality against speed and size (or budget)"),
    compare: bool = typer.Option(False, "--compare", help="compare eval reports given as arguments"),
    backend: str = BackendOption,
    context: int | None = context_option(None, "per sequence (default: what the answers need)"),
    threads: int | None = ThreadsOption,
) -> None:
    """Score a model on HumanEval (code run in a sandbox) or GSM8K, with its speed from the same run."""
    names = list(refs or [])
    if compare:
        _compare(names, json_out, plot)
        return
    if len(names) > 1:
        raise UsageError("name one model (REF); several report files go with --compare")
    check_output_file(plot, "plot", suffix=".png")
    check_output_file(json_out, "json")
    if samples > 1 and temperature == 0:
        raise UsageError("--samples above 1 needs --temperature above 0 (greedy answers are all the same)")
    from qwenkit.eval.session import EvalRequest, run_eval_command

    request = EvalRequest(
        ref=names[0] if names else None, url=url, api_key=api_key, served_model=served_model, task=task,
        data=data, limit=limit, samples=samples, temperature=temperature, max_tokens=max_tokens,
        concurrency=concurrency, thinking=_thinking(thinking), budgets=_budgets(thinking_budget),
        prefill=prefill, timeout=timeout, seed=seed, out=out, resume=resume, json_out=json_out, plot=plot,
        backend=backend, context=context, threads=threads,
    )
    run_eval_command(request, console, err_console)
