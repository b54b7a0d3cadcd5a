"""``qwenkit bench`` (speed, in-process or against any OpenAI-compatible server) and ``qwenkit doctor``."""

from __future__ import annotations

import datetime as dt
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.table import Table

from qwenkit.cli.app import app, console, err_console, print_json
from qwenkit.cli.load_options import REF_HELP, BackendOption, ThreadsOption, context_option
from qwenkit.errors import MissingDependencyError, UsageError

if TYPE_CHECKING:
    from qwenkit.bench.report import BenchReport

_CLUSTER = "Cluster plan (--cluster)"
STATUS_STYLE = {"ok": "green", "warn": "yellow", "fail": "red", "skip": "dim"}
VERDICT_STYLE = {"healthy": "bold green", "degraded": "bold yellow", "unhealthy": "bold red"}


def _default_outputs(
    json_out: str | None, plot: Path | None, save: bool
) -> tuple[str | None, Path | None, bool]:
    """Without --json/--plot a run is still kept: qwenkit-bench-<time>.json and .png in the cwd."""
    if json_out is not None or plot is not None or not save:
        return json_out, plot, False
    stem = "qwenkit-bench-" + dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return f"{stem}.json", Path(f"{stem}.png"), True


def _compare(files: tuple[Path, Path]) -> None:
    from qwenkit.bench.compare import print_comparison
    from qwenkit.bench.report import read_json

    a, b = (read_json(f) for f in files)
    print_comparison(a, b, console, (str(files[0]), str(files[1])))


@app.command()
def bench(
    ref: str | None = typer.Argument(
        None,
        help=f"model to load in-process: {REF_HELP}; with --url: "
        "the served model's file, for the roofline only",
    ),
    url: str | None = typer.Option(None, "--url", help="benchmark this OpenAI-compatible server instead"),
    api_key: str | None = typer.Option(None, "--api-key", envvar="QWENKIT_BENCH_API_KEY", help="server key"),
    served_model: str | None = typer.Option(None, "--model", help="model name to send (default: the first)"),
    concurrency: str = typer.Option("1,2,4", "--concurrency", help="requests in flight, per level"),
    prompt_tokens: str = typer.Option("128", "--prompt-tokens", help="prompt lengths in tokens"),
    output_tokens: int = typer.Option(64, "--output-tokens", help="tokens generated per request"),
    requests: int | None = typer.Option(None, "--requests", help="per level (default: its concurrency)"),
    warmup: int = typer.Option(1, "--warmup", help="unmeasured requests first"),
    temperature: float = typer.Option(0.0, "--temperature"),
    seed: int = typer.Option(0, "--seed", help="seed of the random prompts"),
    json_out: str | None = typer.Option(None, "--json", help="write the report here ('-': stdout)"),
    plot: Path | None = typer.Option(None, "--plot", help="write a PNG of tok/s and TTFT vs concurrency"),
    save: bool = typer.Option(True, "--save/--no-save", help="without --json/--plot, save both in the cwd"),
    roofline: bool = typer.Option(True, "--roofline/--no-roofline", help="measure memory bandwidth"),
    compare: tuple[Path, Path] | None = typer.Option(None, "--compare", help="print b/a of two reports"),
    backend: str = BackendOption,
    context: int | None = context_option(None, "per sequence (default: what it needs)"),
    threads: int | None = ThreadsOption,
) -> None:
    """Measure TTFT, inter-token latency, decode/prefill speed and latency percentiles, per concurrency."""
    if compare is not None:
        _compare(compare)
        return
    import asyncio

    from qwenkit.bench.progress import NullProgress, RichProgress
    from qwenkit.bench.report import check_outputs, print_report, write_json
    from qwenkit.bench.run import BenchConfig, run_bench
    from qwenkit.bench.workload import Workload, parse_int_list

    if url is None and ref is None:
        raise UsageError("name a model to load (REF) or a server to measure (--url)")
    workload = Workload(
        concurrency=parse_int_list(concurrency, "concurrency"),
        prompt_tokens=parse_int_list(prompt_tokens, "prompt_tokens"),
        output_tokens=output_tokens,
        requests=requests,
        warmup=warmup,
        temperature=temperature,
        seed=seed,
    )
    config = BenchConfig(
        workload,
        ref=ref,
        url=url,
        api_key=api_key,
        served_model=served_model,
        backend=backend,
        context=context,
        threads=threads,
        bandwidth=roofline,
    )
    json_out, plot, implicit = _default_outputs(json_out, plot, save)
    check_outputs(json_out, plot)
    to_stdout = json_out == "-"
    progress = NullProgress() if to_stdout else RichProgress(err_console)
    try:
        report = asyncio.run(run_bench(config, progress, show_progress=not to_stdout))
    finally:
        if isinstance(progress, RichProgress):
            progress.close()
    if to_stdout:
        print_json(asdict(report))
    else:
        print_report(report, console)
    if json_out is not None and not to_stdout:
        write_json(report, Path(json_out))
        err_console.print(f"report: {json_out}", highlight=False)
    if plot is not None:
        _write_plot(report, plot, implicit)


def _write_plot(report: BenchReport, plot: Path, implicit: bool) -> None:
    from qwenkit.bench.plot import write_plot

    try:
        write_plot(report, plot)
    except MissingDependencyError as exc:
        if not implicit:
            raise
        err_console.print(f"no plot: {exc.message}", highlight=False)
        return
    err_console.print(f"plot: {plot}", highlight=False)


@app.command()
def doctor(
    ref: str | None = typer.Argument(None, help=f"model to check (default: the default model): {REF_HELP}"),
    backend: str = BackendOption,
    context: int = context_option(4096, "context to check the memory for"),
    generate: bool = typer.Option(True, "--generate/--no-generate", help="try a short generation"),
    json_out: bool = typer.Option(False, "--json", help="one JSON object on stdout"),
    cluster: bool = typer.Option(
        False,
        "--cluster",
        help="plan a vLLM deployment over --nodes x --gpus-per-node GPUs instead",
        rich_help_panel=_CLUSTER,
    ),
    nodes: int = typer.Option(1, min=1, help="nodes in the cluster", rich_help_panel=_CLUSTER),
    gpus_per_node: int = typer.Option(8, min=1, help="GPUs in each node", rich_help_panel=_CLUSTER),
    gpu_memory: str = typer.Option("80GB", help="memory of one GPU", rich_help_panel=_CLUSTER),
    quant: str = typer.Option("bf16", help="weight format (bf16, fp8, awq, gptq)", rich_help_panel=_CLUSTER),
    head: str = typer.Option(
        "HEAD_IP", help="the head node's address, for the worker commands", rich_help_panel=_CLUSTER
    ),
    interface: str | None = typer.Option(
        None, help="network interface for NCCL and Gloo (e.g. ib0)", rich_help_panel=_CLUSTER
    ),
    ray_address: str | None = typer.Option(
        None,
        "--ray-address",
        help="read the nodes, GPUs, free memory and NCCL settings from this running Ray cluster "
        "(e.g. auto or HEAD:6379) instead of --nodes, --gpus-per-node and --gpu-memory",
        rich_help_panel=_CLUSTER,
    ),
) -> int:
    """Check the environment, hardware, disk and model, and say whether qwenkit will work well here."""
    if cluster or ray_address is not None:
        args = ClusterArgs(nodes, gpus_per_node, gpu_memory, quant, head, interface, ray_address)
        return _plan_cluster(ref, context, json_out, args)
    from qwenkit.bench.doctor import DoctorState, run_doctor
    from qwenkit.bench.doctor_checks import CHECKS, cpu_flags
    from qwenkit.catalog.hardware import detect_hardware

    state = DoctorState(
        ref=ref,
        explicit_ref=ref is not None,
        context=context,
        backend=backend,
        generate=generate,
        hardware=detect_hardware(),
        cpu_flags=cpu_flags(),
    )
    report = run_doctor(state, CHECKS)
    if json_out:
        sys.stdout.write(json.dumps(asdict(report), indent=2, default=str) + "\n")
        return report.exit_code
    table = Table(show_header=True, title="qwenkit doctor", title_justify="left")
    for col in ("check", "status", "finding"):
        table.add_column(col, overflow="fold")
    for r in report.checks:
        style = STATUS_STYLE[r.status.value]
        finding = r.summary + (f"\n[cyan]-> {r.recommendation}[/]" if r.recommendation else "")
        table.add_row(r.name, f"[{style}]{r.status.value}[/]", finding)
    console.print(table)
    verdict = report.verdict.value
    line = f"status: [{VERDICT_STYLE[verdict]}]{verdict}[/]"
    console.print(line + (f" - {report.reason}" if report.reason else ""), highlight=False, soft_wrap=True)
    return report.exit_code


@dataclass(frozen=True)
class ClusterArgs:
    nodes: int
    gpus_per_node: int
    gpu_memory: str
    quant: str
    head: str
    interface: str | None
    ray_address: str | None = None


def _plan_cluster(ref: str | None, context: int, json_out: bool, args: ClusterArgs) -> int:
    """``doctor --cluster``: a catalog variant's TP x PP over the GPUs (described, or found in a running
    Ray cluster); exit 1 when it does not fit."""
    from qwenkit.bench.cluster import ClusterRequest, plan_cluster, plan_lines
    from qwenkit.bench.cluster_probe import inventory_lines, plan_for_inventory, probe_ray
    from qwenkit.catalog import load_catalog
    from qwenkit.catalog.quant import get_quant
    from qwenkit.catalog.select import parse_memory

    if ref is None:
        raise UsageError("a cluster plan is for a catalog model: name one (e.g. qwen2.5-72b-instruct)",
                         param="ref")
    variant, quant = load_catalog().get(ref), get_quant(args.quant)  # bad names fail before Ray is asked
    if args.ray_address is None:
        request = ClusterRequest(
            args.nodes,
            args.gpus_per_node,
            parse_memory(args.gpu_memory),
            context=context,
            head_address=args.head,
            interface=args.interface,
        )
        plan = plan_cluster(variant, quant, request)
        if json_out:
            print_json(asdict(plan))
        else:
            _print_lines(plan_lines(plan))
        return 0 if plan.fits else 1
    inventory = probe_ray(args.ray_address)
    found = plan_for_inventory(variant, quant, inventory, context, args.interface)
    if json_out:
        print_json({"inventory": asdict(inventory), "plan": asdict(found.plan) if found.plan else None,
                    "fits": found.fits, "problems": found.problems})  # fmt: skip
    else:
        _print_lines([*inventory_lines(inventory), "", *found.lines()])
    return 0 if found.fits else 1


def _print_lines(lines: list[str]) -> None:
    for line in lines:
        console.print(line, highlight=False, soft_wrap=True, markup=False)
