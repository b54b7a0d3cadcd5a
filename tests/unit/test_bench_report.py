"""Report JSON round trip, --compare ratios, the terminal table, the PNG plot and the bench CLI."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from pathlib import Path

import pytest
from _bench_fakes import FakeTarget
from rich.console import Console

import qwenkit.cli.bench_cmds  # noqa: F401  (registers bench and doctor)
from qwenkit.bench.compare import compare
from qwenkit.bench.driver import run_workload
from qwenkit.bench.report import BenchReport, describe_machine, now_iso, print_report, read_json, write_json
from qwenkit.bench.roofline import Bandwidth, ModelBytes
from qwenkit.bench.run import compute_roofline
from qwenkit.bench.workload import COMMON_WORDS, Workload
from qwenkit.catalog.hardware import detect_hardware
from qwenkit.cli import main
from qwenkit.errors import UsageError


def make_report(per_token: float = 0.001, concurrency: tuple[int, ...] = (1, 2)) -> BenchReport:
    target = FakeTarget(per_token=per_token)
    workload = Workload(concurrency=concurrency, prompt_tokens=(40,), output_tokens=6, warmup=0)
    result = asyncio.run(run_workload(target, workload, COMMON_WORDS))
    bandwidth = Bandwidth(20e9, "measured", "test")
    model = ModelBytes(weights_per_token=4e8, weights_total=5 * 10**8, kv_per_token=12288.0, source="t")
    return BenchReport(
        created=now_iso(), machine=describe_machine(detect_hardware(gpus=False)), target=target.info,
        workload=workload, levels=result.levels, bandwidth=bandwidth, model_bytes=model,
        roofline=compute_roofline(result.levels, model, bandwidth, 6), notes=result.notes,
    )


def test_json_round_trip_is_exact(tmp_path: Path) -> None:
    report = make_report()
    path = tmp_path / "r.json"
    write_json(report, path)
    data = json.loads(path.read_text())
    assert data["machine"]["cpu"] and data["machine"]["ram_bytes"] > 0
    assert "numpy" in data["machine"]["libraries"]
    assert data["levels"][0]["ttft"]["p50"] > 0 and data["roofline"]["percent"] > 0
    assert read_json(path) == report


@pytest.mark.parametrize("content", ["not json", '{"created": "x"}', '{"levels": "many"}'])
def test_reading_something_else_is_a_usage_error(tmp_path: Path, content: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(UsageError):
        read_json(path)
    with pytest.raises(UsageError, match="cannot read"):
        read_json(tmp_path / "missing.json")


def test_compare_gives_b_over_a_per_level_and_metric() -> None:
    slow = make_report(per_token=0.004, concurrency=(1, 2))
    fast = make_report(per_token=0.001, concurrency=(1, 4))
    ratios, unmatched = compare(slow, fast)
    assert sorted(unmatched) == [(40, 2), (40, 4)]
    by_metric = {r.metric: r for r in ratios if r.concurrency == 1}
    decode = by_metric["decode tok/s p50"]
    assert decode.ratio == pytest.approx(decode.b / decode.a)  # type: ignore[operator]
    assert decode.ratio is not None and decode.ratio > 1.5 and decode.b_better
    itl = by_metric["ITL p50"]
    assert itl.ratio is not None and itl.ratio < 1 and itl.b_better  # lower latency is better


def test_terminal_report_shows_levels_and_the_roofline() -> None:
    console = Console(record=True, width=200)
    print_report(make_report(), console)
    text = console.export_text()
    assert "TTFT" in text and "decode tok/s" in text
    assert "roofline: single-stream decode" in text and "GB/s" in text and "% of the" in text


def test_plot_writes_a_png(tmp_path: Path) -> None:
    import matplotlib  # noqa: F401

    from qwenkit.bench.plot import write_plot

    path = tmp_path / "p.png"
    write_plot(make_report(concurrency=(1, 2, 4)), path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000
    with pytest.raises(UsageError, match="png"):
        write_plot(make_report(), tmp_path / "p.jpg")


def test_cli_compare_prints_ratios(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    write_json(make_report(per_token=0.002), a)
    write_json(make_report(per_token=0.001), b)
    assert main(["bench", "--compare", str(a), str(b)]) == 0
    out = capsys.readouterr().out
    assert "b / a" in out and "decode tok/s p50" in out and "x" in out


def test_cli_bench_needs_a_model_or_a_url(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench"]) == 2
    assert "REF" in capsys.readouterr().err
    assert main(["bench", "--url", "http://127.0.0.1:9", "--concurrency", "1,x"]) == 2


def test_cli_bench_url_without_a_server_fails_clearly(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["bench", "--url", "http://127.0.0.1:9", "--no-save", "--no-roofline"])
    assert code == 2
    assert "no OpenAI-compatible server answers at http://127.0.0.1:9" in capsys.readouterr().err


def test_report_dataclasses_serialise_without_custom_encoders() -> None:
    json.dumps(dataclasses.asdict(make_report()))
