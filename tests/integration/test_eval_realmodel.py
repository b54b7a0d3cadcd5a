"""Acceptance smoke: ten HumanEval problems on the real 0.5B in-process, two of them over ``qwenkit serve``.

Greedy decoding, one answer at a time on both sides (the same batch shapes), so the two runs must
reach the same verdict on each problem both run. The full 164-problem runs are in benchmarks/results/eval/.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _serve_process import serve_process

from qwenkit.cli import main

# Two model loads, a server and twelve answers: a few minutes on 2 quiet cores, more on a busy machine.
pytestmark = [pytest.mark.realmodel, pytest.mark.slow, pytest.mark.timeout(2400)]

COMMON = ["--task", "humaneval", "--concurrency", "1"]


def test_ten_humaneval_problems_in_process_and_over_http_agree(real_model_path: Path, tmp_path: Path) -> None:
    local, remote = tmp_path / "in-process.json", tmp_path / "http.json"
    out = tmp_path / "in-process.jsonl"
    args = ["eval", str(real_model_path), *COMMON, "--limit", "10", "--threads", "2", "--context", "2048"]
    assert main([*args, "--out", str(out), "--json", str(local)]) == 0
    report = json.loads(local.read_text())
    assert report["scores"]["pass@1"]["n"] == 10
    assert sum(report["items"].values()) >= 4  # 61.6 % published over all 164; these ten are easier
    speed = report["speed"]
    assert speed["completion_tokens_mean"] > 20 and speed["decode_tps_mean"] > 0
    assert speed["model_file_bytes"] == real_model_path.stat().st_size
    assert report["sandbox"] in ("network namespace", "sockets refused (no namespace here)")
    assert len(out.read_text().splitlines()) == 11  # the header and one line per answer

    assert main([*args, "--out", str(out), "--resume", "--json", str(local)]) == 0
    assert json.loads(local.read_text())["speed"]["generated_now"] == 0  # all ten reused

    # Over HTTP, the first two of them (all 164 agree in benchmarks/results/eval/): the same verdicts.
    with serve_process(real_model_path, "--context", "2048", "--parallel", "1", backend="llamacpp") as server:
        assert main(["eval", "--url", server.url, *COMMON, "--limit", "2", "--json", str(remote)]) == 0
    over_http = json.loads(remote.read_text())
    assert len(over_http["items"]) == 2
    assert over_http["items"] == {task: report["items"][task] for task in over_http["items"]}
    assert over_http["target"]["kind"] == "http"
