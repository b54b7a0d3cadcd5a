"""``qwenkit select``: which Qwen model to run for a task on this machine (or a planned one).

Only the task names are imported with the module (for ``--task``'s help); the selection and the
hardware probes (psutil) are imported by the command.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import typer
from rich.table import Table

from qwenkit.catalog.tasks import TASKS
from qwenkit.cli.app import app, console, print_json
from qwenkit.cli.load_options import context_option
from qwenkit.errors import UsageError

if TYPE_CHECKING:
    from qwenkit.catalog import Catalog
    from qwenkit.catalog.select import Recommendation, Selection


def local_pairs(catalog: Catalog) -> frozenset[tuple[str, str]]:
    """(catalog id, quant) of every model on this machine: downloaded, or made with qwenkit quantize."""
    from qwenkit.catalog.quant import get_quant
    from qwenkit.models import list_local

    ids = {v.id for v in catalog.all()}
    pairs = set()
    for entry in list_local(catalog):
        model_id, _, quant = entry.ref.partition(":")
        if model_id not in ids:
            continue
        try:
            pairs.add((model_id, get_quant(quant).name if quant else "bf16"))
        except UsageError:
            continue
    return frozenset(pairs)


def recommendation_to_dict(rank: int, rec: Recommendation) -> dict[str, Any]:
    from qwenkit.catalog.select import format_bytes

    quant = rec.option.quant
    mem = rec.memory
    official = rec.variant.gguf_files.get(quant.name) if quant.is_gguf else rec.variant.hf_repo
    return {
        "rank": rank,
        "id": rec.variant.id,
        "name": rec.variant.display_name,
        "format": quant.container.value,
        "quant": quant.name,
        "backend": rec.option.backend,
        "official_file": official,
        "local": rec.option.local,
        "thinking": rec.thinking,
        "memory": {
            "weights": mem.weights,
            "kv_cache": mem.kv_cache,
            "overhead": mem.overhead,
            "total": mem.total,
            "prefill_scratch": mem.prefill_scratch,
            "peak": mem.peak,
        },
        "memory_human": format_bytes(mem.peak),
        "tokens_per_s": round(rec.tokens_per_s, 1),
        "why": rec.why,
    }


def selection_to_dict(sel: Selection) -> dict[str, Any]:
    req = sel.request
    return {
        "recommendations": [recommendation_to_dict(i, r) for i, r in enumerate(sel.recommendations, 1)],
        "message": sel.message,
        "request": {
            "task": req.task,
            "device": req.device,
            "memory": req.memory,
            "context": req.context,
            "bandwidth_gbps": round(req.bandwidth / 1e9, 1),
        },
    }


def _table(sel: Selection) -> Table:
    from qwenkit.catalog.select import MIN_USABLE_TOKENS_PER_S, format_bytes

    req = sel.request
    table = Table(
        title=f"{req.task} on {req.device}: {format_bytes(req.memory)}, {req.context} tokens of context, "
        f"{req.bandwidth / 1e9:.0f} GB/s",
        header_style="bold",
        caption="memory: peak once a prompt fills the context; tok/s: decode ceiling from memory bandwidth",
    )
    for column in ("#", "model", "format", "backend", "memory", "tok/s"):
        right = column in ("#", "memory", "tok/s")
        table.add_column(column, justify="right" if right else "left", no_wrap=True)
    for i, rec in enumerate(sel.recommendations, 1):
        fast = rec.tokens_per_s >= MIN_USABLE_TOKENS_PER_S
        speed = f"{rec.tokens_per_s:.0f}" if fast else f"{rec.tokens_per_s:.1f}"
        table.add_row(
            str(i), rec.variant.id, rec.option.quant.label + (" (local)" if rec.option.local else ""),
            rec.option.backend,
            format_bytes(rec.memory.peak), speed,
        )
    return table


@app.command("select")
def select_command(
    task: str = typer.Option(..., "--task", help=f"what the model is for: {', '.join(TASKS)}"),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda"),
    memory: str | None = typer.Option(
        None, "--memory", help="memory budget, e.g. 8GB, 512MiB, 1.5G (default: free RAM / GPU memory)"
    ),
    context: int = context_option(8192, "tokens of context to plan for"),
    bandwidth: float | None = typer.Option(
        None, "--bandwidth", help="memory bandwidth in GB/s (default: by device; CPU ~40)"
    ),
    measure: bool = typer.Option(False, "--measure-bandwidth", help="measure RAM bandwidth (CPU, ~1 s)"),
    limit: int = typer.Option(5, "--limit", help="how many recommendations to show"),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
) -> None:
    """Recommend Qwen models for a task that fit the memory, ranked, with format, backend and speed."""
    from qwenkit.catalog import load_catalog
    from qwenkit.catalog.hardware import detect_hardware, measure_memory_bandwidth
    from qwenkit.catalog.select import NothingFitsError, check_device, resolve_request, select

    check_device(device)  # before probing GPUs, which may import torch
    hardware = detect_hardware(gpus=device != "cpu")
    if measure and bandwidth is None and device != "cuda" and not hardware.has_cuda:
        bandwidth = measure_memory_bandwidth() / 1e9
    request = resolve_request(task, device, memory, context, hardware, bandwidth, limit)
    catalog = load_catalog()
    request = dataclasses.replace(request, local=local_pairs(catalog))
    selection = select(catalog.all(), request)
    if as_json:
        print_json(selection_to_dict(selection))
    elif selection.fits:
        console.print(_table(selection))
        for i, rec in enumerate(selection.recommendations, 1):
            console.print(f"{i}. {rec.why}", highlight=False, soft_wrap=True)
    if not selection.fits:
        raise NothingFitsError(selection.message)
