"""``qwenkit quantize --report``: one source model, several types, what each costs and saves.

The source (an f16/bf16/f32 GGUF) is scored first and is the KL base; every type is quantized from it
and scored on the same chunks, so the perplexity ratio, the KL divergence and top-1 agreement compare
like with like. Other files (e.g. a publisher's own quantization) can join the table as extra rows.
Perplexity's chunk-to-chunk noise (its +/- is a few percent on 40 chunks) hides most quantization
differences; KL divergence, computed per position against the same base, sees them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from qwenkit.convert.kl import BaseLogprobs, KLSummary
from qwenkit.convert.perplexity import DECODE_STEPS, PerplexityResult, perplexity
from qwenkit.convert.quantize import QuantType, default_output, quantize
from qwenkit.models.gguf_reader import read_gguf_metadata


@dataclass(frozen=True)
class ReportRow:
    label: str
    path: str
    size: int
    ppl: float
    ppl_err: float
    kl: KLSummary | None
    decode_tokens_per_s: float | None
    eval_tokens_per_s: float
    rss_bytes: int
    quantize_seconds: float | None = None
    fallbacks: int | None = None
    tensor_types: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class QuantReport:
    source: str
    source_type: str
    text: str
    context: int
    chunks: int
    tokens: int
    rows: tuple[ReportRow, ...]
    command: str = ""
    created: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def write_json(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")


@dataclass(frozen=True)
class ReportRequest:
    source: Path
    types: Sequence[QuantType]
    text: str
    text_name: str
    out_dir: Path
    context: int = 512
    chunks: int | None = None
    extra: Sequence[Path] = ()
    threads: int | None = None


Note = Callable[[str], None]


def _row(label: str, path: Path, result: PerplexityResult, **extra: Any) -> ReportRow:
    meta = read_gguf_metadata(path)
    return ReportRow(
        label=label,
        path=str(path),
        size=path.stat().st_size,
        ppl=result.ppl,
        ppl_err=result.ppl_err,
        kl=result.kl,
        decode_tokens_per_s=result.decode_tokens_per_s,
        eval_tokens_per_s=result.eval_tokens_per_s,
        rss_bytes=result.rss_bytes,
        tensor_types=meta.tensor_type_histogram(),
        **extra,
    )


def _score(
    req: ReportRequest, path: Path, base: BaseLogprobs | None, note: Note
) -> tuple[PerplexityResult, BaseLogprobs]:
    note(f"scoring {path.name} on {req.chunks or 'all'} chunks of {req.context} tokens")
    return perplexity(
        path,
        req.text,
        context=req.context,
        chunks=req.chunks,
        base=base,
        decode_steps=DECODE_STEPS,
        threads=req.threads,
    )


def build_report(req: ReportRequest, note: Note = lambda _: None) -> QuantReport:
    """Quantize ``req.source`` to every type and score each against it; files go to ``req.out_dir``."""
    source_meta = read_gguf_metadata(req.source)
    base_result, base = _score(req, req.source, None, note)
    rows = [_row(f"{source_meta.file_type_name or 'source'} (source)", req.source, base_result)]
    for qtype in req.types:
        note(f"quantizing to {qtype.value}")
        out = req.out_dir / default_output(req.source, qtype).name
        done = quantize(req.source, qtype, out)
        result, _ = _score(req, out, base, note)
        rows.append(
            _row(qtype.value, out, result, quantize_seconds=done.seconds, fallbacks=len(done.fallbacks))
        )
    for path in req.extra:
        result, _ = _score(req, path, base, note)
        meta = read_gguf_metadata(path)
        rows.append(_row(f"{meta.file_type_name or path.name} ({path.name})", path, result))
    return QuantReport(
        source=str(req.source),
        source_type=source_meta.file_type_name or "unknown",
        text=req.text_name,
        context=req.context,
        chunks=base_result.chunks,
        tokens=base_result.tokens,
        rows=tuple(rows),
        created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    )


def table_rows(report: QuantReport) -> list[list[str]]:
    """Header and cells of the human table (also the README's)."""
    rows = [
        ["type", "size MB", "ppl", "ppl ratio", "KL mean", "KL p99", "top-1 agree", "decode tok/s", "RSS MB"]
    ]
    for r in report.rows:
        kl = r.kl
        rows.append(
            [
                r.label,
                f"{r.size / 1e6:.0f}",
                f"{r.ppl:.3f} ± {r.ppl_err:.3f}",
                f"{kl.ppl_ratio:.4f}" if kl else "1 (base)",
                f"{kl.kl_mean:.5f}" if kl else "-",
                f"{kl.kl_p99:.4f}" if kl else "-",
                f"{kl.top1_agreement * 100:.2f} %" if kl else "-",
                f"{r.decode_tokens_per_s:.1f}" if r.decode_tokens_per_s else "-",
                f"{r.rss_bytes / 1e6:.0f}",
            ]
        )
    return rows


def write_plot(report: QuantReport, path: Path) -> None:
    """Size against perplexity and KL divergence, and decode speed per type."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    sizes = [r.size / 1e6 for r in report.rows]
    labels = [r.label for r in report.rows]
    axes[0].errorbar(sizes, [r.ppl for r in report.rows], yerr=[r.ppl_err for r in report.rows], fmt="o")
    axes[0].set(
        xlabel="file size (MB)", ylabel="perplexity", title=f"perplexity ({report.text}, c={report.context})"
    )
    kl_rows = [r for r in report.rows if r.kl is not None]
    axes[1].plot([r.size / 1e6 for r in kl_rows], [r.kl.kl_mean for r in kl_rows if r.kl], "o")
    axes[1].set(
        xlabel="file size (MB)", ylabel="mean KL(source || type), nats", title="KL divergence vs source"
    )
    axes[1].set_yscale("log")
    axes[2].bar(labels, [r.decode_tokens_per_s or 0 for r in report.rows])
    axes[2].set(ylabel="tokens/s", title="decode speed (one stream)")
    axes[2].tick_params(axis="x", rotation=30)
    for ax, xs, ys in (
        (axes[0], sizes, [r.ppl for r in report.rows]),
        (axes[1], [r.size / 1e6 for r in kl_rows], [r.kl.kl_mean for r in kl_rows if r.kl]),
    ):
        for x, y, label in zip(xs, ys, labels if ax is axes[0] else [r.label for r in kl_rows], strict=False):
            ax.annotate(label, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
    fig.suptitle(f"{Path(report.source).name}: quantizations compared")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
