"""``qwenkit doctor --ray-address`` against a live Ray cluster: a head node started here (CPU only), read
through Ray's Python API and a task pinned to the node, as on a GPU cluster."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from _ports import free_port

RAY = Path(sys.executable).parent / "ray"


@pytest.fixture(scope="module")
def ray_head(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    env = {**os.environ, "NCCL_SOCKET_IFNAME": "lo", "RAY_USAGE_STATS_ENABLED": "0"}
    temp = tmp_path_factory.mktemp("ray")
    start = [
        str(RAY),
        "start",
        "--head",
        f"--port={port}",
        "--num-cpus=1",
        "--num-gpus=0",
        "--include-dashboard=false",
        f"--temp-dir={temp}",
        "--disable-usage-stats",
    ]
    subprocess.run(start, env=env, check=True, capture_output=True, timeout=180)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run([str(RAY), "stop", "--force"], capture_output=True, timeout=120, check=False)


def doctor(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "qwenkit", "doctor", *args], capture_output=True, text=True, timeout=300
    )


def test_the_probe_reads_the_nodes_and_finds_no_gpu(ray_head: str) -> None:
    done = doctor("qwen3-0.6b", "--ray-address", ray_head, "--json")
    assert done.returncode == 1, done.stderr  # no GPU: no plan
    found = json.loads(done.stdout)
    (node,) = found["inventory"]["nodes"]
    assert node["head"] and node["cpus"] == 1.0 and node["gpus"] == [] and node["ray_gpus"] == 0.0
    assert node["settings"]["NCCL_SOCKET_IFNAME"] == "lo"  # read on the node, from its environment
    assert node["interfaces"]["lo"] == "127.0.0.1"
    assert found["plan"] is None and not found["fits"]
    assert any("no GPU" in p for p in found["problems"])


def test_the_text_report_names_the_node_and_says_why(ray_head: str) -> None:
    done = doctor("qwen3-0.6b", "--ray-address", ray_head)
    assert done.returncode == 1, done.stderr
    assert f"Ray cluster at {ray_head}: 1 node(s)" in done.stdout
    assert "1 CPUs, 0 GPU(s)" in done.stdout and "NCCL_SOCKET_IFNAME=lo" in done.stdout
    assert "no plan: vLLM needs GPUs on every node" in done.stdout


def test_no_cluster_at_the_address_is_a_clear_error() -> None:
    done = doctor("qwen3-0.6b", "--ray-address", f"127.0.0.1:{free_port()}")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "no Ray cluster answered" in done.stderr
