"""``qwenkit doctor`` end to end: healthy on the real model, one clear reason for a broken or missing one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import qwenkit.cli.bench_cmds  # noqa: F401  (registers doctor)
from qwenkit.cli import main


def _status_line(out: str) -> str:
    return next(line for line in out.splitlines() if line.startswith("status:"))


@pytest.mark.realmodel
@pytest.mark.slow
def test_doctor_on_the_real_model_exits_0_and_proves_it_generates(
    real_model_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["doctor", str(real_model_path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["verdict"] in ("healthy", "degraded")
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["model"]["status"] == "ok" and "Q4_K_M" in checks["model"]["summary"]
    generation = checks["generation"]
    assert "tok/s" in generation["summary"]
    # ok, or (on a machine busy with other work) a warning that names the cause and the fix
    assert generation["status"] == "ok" or (
        generation["status"] == "warn" and "memory bandwidth allows" in generation["summary"]
        and generation["recommendation"]
    ), generation
    assert checks["memory"]["status"] in ("ok", "warn")
    assert all(c["status"] != "fail" for c in report["checks"])


@pytest.mark.realmodel
def test_doctor_on_a_truncated_copy_exits_1_with_a_clear_reason(
    real_model_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cut = tmp_path / "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
    with real_model_path.open("rb") as src, cut.open("wb") as dst:
        dst.write(src.read(real_model_path.stat().st_size * 6 // 10))
    assert main(["doctor", str(cut)]) == 1
    line = _status_line(capsys.readouterr().out)
    assert "unhealthy" in line and "model:" in line and "truncated or corrupt" in line and str(cut) in line


def test_doctor_on_a_missing_path_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nowhere.gguf"
    assert main(["doctor", str(missing)]) == 1
    line = _status_line(capsys.readouterr().out)
    assert "unhealthy" in line and "model:" in line and "nowhere.gguf" in line
