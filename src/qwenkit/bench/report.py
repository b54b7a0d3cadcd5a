"""The benchmark report: what ran where, every level's figures, the roofline; JSON and a terminal table.

The JSON is ``dataclasses.asdict`` of ``BenchReport``; reading one back goes through pydantic's
``TypeAdapter``, which checks every field, so ``--compare`` never works on a malformed file.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import platform
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from pydantic import TypeAdapter, ValidationError
from rich.console import Console
from rich.table import Table

from qwenkit.bench.contention import CpuLoad, SpeedDiagnosis
from qwenkit.bench.roofline import Bandwidth, ModelBytes, Roofline
from qwenkit.bench.stats import LevelSummary, Percentiles
from qwenkit.bench.target import TargetInfo
from qwenkit.bench.workload import Workload
from qwenkit.catalog.hardware import HardwareInfo
from qwenkit.errors import UsageError
from qwenkit.output_paths import check_output_file

SCHEMA_VERSION = 1
LIBRARIES = ("qwenkit", "llama-cpp-python", "torch", "transformers", "numpy", "httpx", "fastapi")


@dataclass(frozen=True)
class MachineInfo:
    cpu: str
    physical_cores: int | None
    logical_cores: int | None
    ram_bytes: int
    gpus: tuple[str, ...]
    platform: str
    python: str
    libraries: Mapping[str, str] = field(default_factory=dict)


def library_versions(names: tuple[str, ...] = LIBRARIES) -> dict[str, str]:
    """Installed versions from package metadata (nothing is imported)."""
    found = {}
    for name in names:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def describe_machine(hardware: HardwareInfo) -> MachineInfo:
    return MachineInfo(
        cpu=hardware.cpu.model,
        physical_cores=hardware.cpu.physical_cores,
        logical_cores=hardware.cpu.logical_cores,
        ram_bytes=hardware.ram_total,
        gpus=tuple(f"{g.name} ({g.memory_total / 1024**3:.0f} GiB)" for g in hardware.gpus),
        platform=platform.platform(),
        python=platform.python_version(),
        libraries=library_versions(),
    )


@dataclass(frozen=True)
class BenchReport:
    created: str
    machine: MachineInfo
    target: TargetInfo
    workload: Workload
    levels: tuple[LevelSummary, ...]
    bandwidth: Bandwidth | None = None
    model_bytes: ModelBytes | None = None
    roofline: Roofline | None = None
    notes: tuple[str, ...] = ()
    schema_version: int = SCHEMA_VERSION
    cpu_load: CpuLoad | None = None  # what other processes used just before the run
    diagnosis: SpeedDiagnosis | None = None  # when decode is far below the roofline: why, and the fix


def now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def report_dict(report: BenchReport) -> dict[str, object]:
    return dataclasses.asdict(report)


def check_outputs(json_out: str | None, plot: Path | None) -> None:
    """Before a run of minutes, not after it: where the report (``-``: stdout) and the plot will go."""
    check_output_file(plot, "plot", suffix=".png")
    check_output_file(json_out, "json")


def write_json(report: BenchReport, path: Path) -> None:
    path.write_text(json.dumps(report_dict(report), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def read_json(path: Path) -> BenchReport:
    """A report written by ``write_json``; a clear UsageError for anything else."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}", param="compare") from None
    except json.JSONDecodeError as exc:
        raise UsageError(f"{path} is not JSON: {exc}", param="compare") from None
    try:
        return TypeAdapter(BenchReport).validate_python(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        message = f"{path} is not a qwenkit bench report: {where}: {first['msg']}"
        raise UsageError(message, param="compare") from None


# ----- terminal output ---------------------------------------------------------------------


Row = tuple[str, Callable[[LevelSummary], str]]


def _pct(get: Callable[[LevelSummary], Percentiles | None], q: str, scale: float, fmt: str
         ) -> Callable[[LevelSummary], str]:
    def cell(s: LevelSummary) -> str:
        p = get(s)
        return "-" if p is None else format(getattr(p, q) * scale, fmt)

    return cell


def _mib(n: int | None) -> str:
    return "-" if n is None else f"{n / 1024**2:,.0f}"


# One row per figure, one column per level: fits a terminal for up to ~6 levels.
ROWS: tuple[Row, ...] = (
    ("prompt tokens", lambda s: f"{s.prompt_tokens_mean:.0f}"),
    ("requests ok / failed", lambda s: f"{s.ok} / {s.errors}"),
    *((f"TTFT {q} (ms)", _pct(lambda s: s.ttft, q, 1e3, ".0f")) for q in ("p50", "p95", "p99")),
    *((f"ITL {q} (ms)", _pct(lambda s: s.itl, q, 1e3, ".1f")) for q in ("p50", "p95", "p99")),
    ("decode tok/s p50", _pct(lambda s: s.decode_tps, "p50", 1.0, ".1f")),
    ("prefill tok/s p50", _pct(lambda s: s.prefill_tps, "p50", 1.0, ".0f")),
    *((f"E2E {q} (s)", _pct(lambda s: s.e2e, q, 1.0, ".2f")) for q in ("p50", "p95", "p99")),
    ("total output tok/s", lambda s: f"{s.aggregate_output_tps:.1f}"),
    ("peak RSS (MiB)", lambda s: _mib(s.peak_rss_bytes)),
)
GPU_ROW: Row = ("peak GPU (MiB)", lambda s: _mib(s.peak_gpu_bytes))


def levels_table(report: BenchReport) -> Table:
    title = f"qwenkit bench: {report.target.model} ({report.target.kind})"
    table = Table(title=title, title_justify="left")
    table.add_column("prompt x concurrency", justify="left")
    for s in report.levels:
        table.add_column(f"{s.prompt_tokens_target} x {s.concurrency}", justify="right")
    gpu = any(s.peak_gpu_bytes is not None for s in report.levels)
    for name, cell in (*ROWS, GPU_ROW) if gpu else ROWS:
        table.add_row(name, *(cell(s) for s in report.levels))
    return table


def roofline_line(report: BenchReport) -> str:
    bw = report.bandwidth
    if bw is None:
        return "roofline: not computed (no bandwidth figure)"
    bw_text = f"{bw.source} memory bandwidth {bw.bytes_per_s / 1e9:.1f} GB/s"
    r = report.roofline
    if r is None:
        return f"roofline: {bw_text}; the model's bytes per token are unknown (give REF for a --url run)"
    return (
        f"roofline: single-stream decode {r.measured_tps:.1f} tok/s = {r.percent:.0f}% of the "
        f"{r.limit_tps:.1f} tok/s bandwidth limit ({bw_text}; "
        f"{r.bytes_per_token / 1e6:.1f} MB read per token)"
    )


def print_report(report: BenchReport, console: Console) -> None:
    console.print(levels_table(report))
    console.print(roofline_line(report), highlight=False)
    for level in report.levels:
        for sample in level.error_samples:
            where = f"prompt {level.prompt_tokens_target}, x{level.concurrency}"
            console.print(f"[red]error[/] ({where}): {sample}", highlight=False)
    for note in report.notes:
        console.print(f"note: {note}", highlight=False, style="dim")
    if report.diagnosis is not None:
        console.print(f"[yellow]slow:[/] {report.diagnosis.summary}", highlight=False)
        console.print(f"fix: {report.diagnosis.recommendation}", highlight=False)
