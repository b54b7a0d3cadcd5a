"""``qwenkit convert | quantize | perplexity``: thin commands over ``qwenkit.convert``.

``qwenkit.convert`` is imported by the commands (it pulls in the chat layer, ~0.4 s); ``--outtype``
parses into ``OutType``, which lives in the light ``qwenkit.defaults``.
"""

from __future__ import annotations

import shlex
import sys
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.table import Table

from qwenkit.cli.app import app, console, err_console, print_json, warn
from qwenkit.defaults import OutType
from qwenkit.errors import UsageError
from qwenkit.output_paths import check_output_file

if TYPE_CHECKING:
    from rich.progress import Progress

_JSON_HELP = "machine-readable JSON on stdout"
_TYPES = "Q8_0, Q6_K, Q5_K_M, Q4_K_M, Q4_0"
_MODEL_ID_HELP = "catalog id the output is a version of (then `ID:TYPE` names it; default: the source's)"


def _catalog_id(model_id: str | None) -> str | None:
    """--model-id checked before any work starts."""
    from qwenkit.catalog import load_catalog

    return load_catalog().get(model_id).id if model_id else None


def _remember(path: Path, source: Path, quant: str, model_id: str | None) -> str | None:
    """Record a made file so that list, select and ID:TYPE references find it; the ID:TYPE, if any."""
    from qwenkit.models.made import record_made, variant_of

    variant = model_id or variant_of(source)
    record_made(path, variant=variant, quant=quant, made_from=source)
    return f"{variant}:{quant.lower()}" if variant else None


class _Bar:
    """A progress bar on stderr that appears with the first update (so an early error prints alone)."""

    def __init__(self, show: bool) -> None:
        self.show = show
        self.progress: Progress | None = None
        self.tasks: dict[str, Any] = {}

    def update(self, label: str, done: int, total: int | None, description: str | None = None) -> None:
        if not self.show:
            return
        if self.progress is None:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=err_console,
                transient=True,
            )
            self.progress.start()
        if label not in self.tasks:
            self.tasks[label] = self.progress.add_task(label, total=total)
        self.progress.update(self.tasks[label], completed=done, total=total, description=description or label)

    def __enter__(self) -> _Bar:
        return self

    def __exit__(self, *_exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()


@app.command()
def convert(
    src: Path = typer.Argument(
        ..., help="Hugging Face checkpoint directory (config.json, safetensors, tokenizer)"
    ),
    output: Path | None = typer.Option(
        None, "--output", "-o", help="GGUF file to write (default: inside SRC)"
    ),
    outtype: OutType = typer.Option(OutType.F16, "--outtype", help="tensor type of the weights"),
    mmproj: Path | None = typer.Option(
        None, "--mmproj", help="vision models: the projector GGUF (default: mmproj-NAME beside the output)"
    ),
    model_id: str | None = typer.Option(None, "--model-id", help=_MODEL_ID_HELP),
    json_out: bool = typer.Option(False, "--json", help=_JSON_HELP),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress"),
) -> None:
    """Convert a Qwen2/Qwen3 (MoE too) or Qwen2-VL/Qwen2.5-VL checkpoint to GGUF with llama.cpp's own
    converter; a vision model gives two files, the text GGUF and its vision projector (mmproj)."""
    from qwenkit.convert import convert as run_convert
    model_id = _catalog_id(model_id)
    counted = [0]
    with _Bar(not (quiet or json_out)) as bar:

        def progress(line: str) -> None:
            if "-->" in line:  # the converter logs one "name, dtype --> type, shape" line per tensor
                counted[0] += 1
                bar.update("converting", counted[0], None, f"converting: {counted[0]} tensors")

        result = run_convert(src, output, outtype, mmproj_output=mmproj, progress=progress)
    ref = _remember(result.path, src, outtype.value, model_id)
    if json_out:
        print_json({
            **asdict(result), "path": str(result.path), "outtype": result.outtype.value, "ref": ref,
            "mmproj": str(result.mmproj) if result.mmproj else None,
        })
        return
    console.print(
        f"{result.architecture} ({result.parameters / 1e9:.2f} B parameters) -> {result.outtype.value} "
        f"in {result.seconds:.1f} s, {result.size / 1e6:.0f} MB:",
        highlight=False,
    )
    console.print(str(result.path), highlight=False, soft_wrap=True)
    if result.mmproj is not None:
        size = result.mmproj_size / 1e6
        console.print(f"vision projector, {size:.1f} MB: {result.mmproj}", highlight=False, soft_wrap=True)
    if ref:
        console.print(f"known as {ref}", highlight=False)


def _quantize_one(src: Path, qtype: str, output: Path | None, allow: bool, show: bool) -> Any:
    from qwenkit.convert import quantize as run_quantize

    with _Bar(show) as bar:
        label = f"quantizing to {qtype.upper()}"
        return run_quantize(
            src,
            qtype,
            output,
            allow_requantize=allow,
            progress=lambda done, total, _name: bar.update(label, done, total),
        )


def _print_quantized(result: Any) -> None:
    console.print(
        f"{result.source_type} -> {result.type.value}: {result.source_size / 1e6:.0f} MB -> "
        f"{result.size / 1e6:.0f} MB in {result.seconds:.1f} s",
        highlight=False,
    )
    if result.fallbacks:
        used = sorted({f.used for f in result.fallbacks})
        console.print(
            f"{len(result.fallbacks)} of {result.tensors} tensors fell back to {', '.join(used)} "
            f"(their width is not a multiple of the block size), e.g. {result.fallbacks[0].tensor}",
            highlight=False,
        )
    types = ", ".join(f"{name} {count}" for name, count in result.tensor_types.items())
    console.print(f"tensor types: {types}", highlight=False)
    console.print(str(result.path), highlight=False, soft_wrap=True)


@app.command()
def quantize(
    src: Path = typer.Argument(..., help="GGUF file to quantize (f16, bf16 or f32)"),
    types: list[str] = typer.Option(
        ..., "--type", "-t", help=f"target type: {_TYPES}; several with --report"
    ),
    output: Path | None = typer.Option(None, "--output", "-o", help="file to write (default: beside SRC)"),
    allow_requantize: bool = typer.Option(
        False, "--allow-requantize", help="quantize an already-quantized file"
    ),
    model_id: str | None = typer.Option(None, "--model-id", help=_MODEL_ID_HELP),
    report: bool = typer.Option(False, "--report", help="score every type against SRC: table, JSON, plot"),
    text: Path | None = typer.Option(None, "--text", help="with --report: the text to score on"),
    context: int = typer.Option(512, "--context", "-c", help="with --report: tokens per chunk"),
    chunks: int | None = typer.Option(None, "--chunks", help="with --report: at most this many chunks"),
    also: list[Path] = typer.Option(
        [], "--also", help="with --report: another GGUF to score as an extra row"
    ),
    out_dir: Path | None = typer.Option(
        None, "--out-dir", help="with --report: folder for the files (default: SRC's)"
    ),
    report_json: Path | None = typer.Option(None, "--report-json", help="with --report: write the JSON here"),
    plot: Path | None = typer.Option(None, "--plot", help="with --report: write a PNG here"),
    json_out: bool = typer.Option(False, "--json", help=_JSON_HELP),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress"),
) -> None:
    """Quantize a GGUF with llama.cpp's quantizer; --report compares several types by quality and speed."""
    if report:
        _report(src, types, text, context, chunks, also, out_dir, report_json, plot, json_out, quiet)
        return
    if len(types) != 1:
        raise UsageError("give one --type (several only with --report)", param="type")
    model_id = _catalog_id(model_id)
    if allow_requantize:
        warn(
            "requantizing: the new rounding stacks on the old one; quality drops more than from an f16 source"
        )
    result = _quantize_one(src, types[0], output, allow_requantize, show=not (quiet or json_out))
    ref = _remember(result.path, src, result.type.value, model_id)
    if json_out:
        print_json({**asdict(result), "path": str(result.path), "type": result.type.value, "ref": ref})
        return
    _print_quantized(result)
    if ref:
        console.print(f"known as {ref}", highlight=False)


def _report(
    src: Path,
    types: list[str],
    text: Path | None,
    context: int,
    chunks: int | None,
    also: list[Path],
    out_dir: Path | None,
    report_json: Path | None,
    plot: Path | None,
    json_out: bool,
    quiet: bool,
) -> None:
    from qwenkit.convert.perplexity import read_text
    from qwenkit.convert.quantize import QuantType
    from qwenkit.convert.report import ReportRequest, build_report, table_rows, write_plot

    if text is None:
        raise UsageError("--report needs --text FILE to score the models on", param="text")
    check_output_file(report_json, "report-json")
    check_output_file(plot, "plot", suffix=".png")
    if not src.is_file():
        raise UsageError(f"{src} is not a file", param="src")
    qtypes = [QuantType.parse(t) for t in types]
    for extra in also:
        if not extra.is_file():
            raise UsageError(f"{extra} is not a file", param="also")
    req = ReportRequest(
        src, qtypes, read_text(text), text.name, out_dir or src.parent, context, chunks, tuple(also)
    )
    note = (lambda _m: None) if quiet or json_out else (lambda m: err_console.print(m, highlight=False))
    result = replace(build_report(req, note), command=shlex.join(["qwenkit", *sys.argv[1:]]))
    if report_json is not None:
        result.write_json(report_json)
    if plot is not None:
        write_plot(result, plot)
    if json_out:
        print_json(result.to_dict())
        return
    rows = table_rows(result)
    table = Table(title=f"{src.name} on {result.text}: {result.chunks} chunks of {result.context} tokens")
    for name in rows[0]:
        table.add_column(name, justify="left" if name == "type" else "right", no_wrap=True)
    for row in rows[1:]:
        table.add_row(*row)
    console.print(table)


@app.command()
def perplexity(
    model: str = typer.Argument(..., help="GGUF file or catalog id[:quant]"),
    text: Path = typer.Option(..., "--text", help="UTF-8 text file to score"),
    context: int = typer.Option(512, "--context", "-c", help="tokens per chunk (llama-perplexity's -c)"),
    chunks: int | None = typer.Option(None, "--chunks", help="at most this many chunks (default: all)"),
    kl_base: str | None = typer.Option(None, "--kl-base", help="base model (GGUF) or a --save-base file"),
    save_base: Path | None = typer.Option(None, "--save-base", help="keep this model's top-k log-probs here"),
    json_out: bool = typer.Option(False, "--json", help=_JSON_HELP),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress"),
) -> None:
    """Perplexity as llama-perplexity computes it; --kl-base adds KL divergence and top-1 agreement."""
    from qwenkit.convert.kl import BaseLogprobs
    from qwenkit.convert.perplexity import perplexity as run_perplexity
    from qwenkit.convert.perplexity import read_text

    check_output_file(save_base, "save-base", suffix=".npz")
    body = read_text(text)
    path = _gguf_path(model)
    show = not (quiet or json_out)
    base = None
    with _Bar(show) as bar:
        if kl_base is not None:
            if kl_base.endswith(".npz"):
                base = BaseLogprobs.load(Path(kl_base))
            else:
                _, base = run_perplexity(
                    _gguf_path(kl_base),
                    body,
                    context=context,
                    chunks=chunks,
                    progress=_chunk_progress(bar, "base"),
                )
        result, own = run_perplexity(
            path, body, context=context, chunks=chunks, base=base, progress=_chunk_progress(bar, path.name)
        )
    if save_base is not None:
        own.save(save_base)
    if json_out:
        print_json(asdict(result))
        return
    console.print(
        f"perplexity {result.ppl:.4f} +/- {result.ppl_err:.5f} ({result.tokens} tokens in "
        f"{result.chunks} chunks of {result.context}; {result.eval_tokens_per_s:.0f} tok/s)",
        highlight=False,
    )
    if result.kl is not None:
        kl = result.kl
        console.print(
            f"KL divergence {kl.kl_mean:.6f} +/- {kl.kl_mean_err:.6f} (median {kl.kl_median:.6f}, "
            f"p99 {kl.kl_p99:.5f}); top-1 agreement {kl.top1_agreement * 100:.2f} %; "
            f"perplexity ratio {kl.ppl_ratio:.4f} (base {kl.base_ppl:.4f})",
            highlight=False,
        )


def _gguf_path(ref: str) -> Path:
    from qwenkit.models import ensure_local, resolve
    from qwenkit.models.ref import ModelFormat

    local = ensure_local(resolve(ref), progress=False)
    if local.format is not ModelFormat.GGUF:
        raise UsageError(f"{ref} is not a GGUF model; perplexity runs on GGUF files (convert it first)")
    return local.path


def _chunk_progress(bar: _Bar, label: str) -> Any:
    def progress(done: int, total: int, ppl: float) -> None:
        bar.update(label, done, total, f"{label}: ppl {ppl:.3f}")

    return progress
