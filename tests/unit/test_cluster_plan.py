"""``qwenkit doctor --cluster``: TP within a node, PP across nodes, per-GPU memory, and the commands."""

from __future__ import annotations

import json

import pytest

from qwenkit.bench.cluster import RESERVE_BYTES, ClusterRequest, plan_cluster, served_format
from qwenkit.catalog import load_catalog
from qwenkit.catalog.estimate import kv_cache_bytes, weight_bytes
from qwenkit.catalog.quant import get_quant
from qwenkit.cli import main
from qwenkit.errors import UsageError

GIB = 1024**3
CATALOG = load_catalog()


def test_two_nodes_of_four_gpus_split_72b_as_tp4_pp2() -> None:
    variant = CATALOG.get("qwen2.5-72b-instruct")
    bf16 = get_quant("bf16")
    plan = plan_cluster(variant, bf16, ClusterRequest(2, 4, 80 * GIB, context=8192, head_address="10.0.0.1"))
    assert (plan.tensor_parallel_size, plan.pipeline_parallel_size, plan.idle_gpus_per_node) == (4, 2, 0)
    assert plan.weights_per_gpu == -(-weight_bytes(variant.arch, bf16).total // 8)
    assert plan.kv_per_gpu == -(-kv_cache_bytes(variant.arch, 8192) // 8)
    assert plan.needed_per_gpu == plan.weights_per_gpu + plan.kv_per_gpu + RESERVE_BYTES
    assert plan.fits and plan.problems == []
    assert plan.commands[0].endswith("ray start --head --port=6379")
    assert plan.commands[1].endswith("ray start --address=10.0.0.1:6379")
    serve = plan.commands[2].splitlines()[-1]
    assert serve.startswith("qwenkit serve Qwen/Qwen2.5-72B-Instruct --backend vllm")
    assert "--tensor-parallel-size 4 --pipeline-parallel-size 2 --distributed-executor ray" in serve


def test_one_gpu_too_small_does_not_fit_and_says_by_how_much() -> None:
    plan = plan_cluster(
        CATALOG.get("qwen2.5-72b-instruct"), get_quant("bf16"), ClusterRequest(1, 1, 80 * GIB)
    )
    assert not plan.fits
    assert "add GPUs or nodes" in plan.problems[0]
    assert plan.commands == [plan.commands[-1]] and "--distributed-executor mp" in plan.commands[0]


def test_heads_limit_tensor_parallelism_and_idle_gpus_are_reported() -> None:
    # Qwen2.5-7B: 28 heads, 4 KV heads: within 8 GPUs only TP 1, 2 or 4.
    plan = plan_cluster(CATALOG.get("qwen2.5-7b-instruct"), get_quant("bf16"), ClusterRequest(1, 8, 80 * GIB))
    assert plan.tensor_parallel_size == 4 and plan.idle_gpus_per_node == 4
    assert plan.fits and "4 GPU(s) per node stay idle" in plan.problems[0]


def test_quantized_checkpoints_name_qwens_repo_and_vllms_flag() -> None:
    plan = plan_cluster(CATALOG.get("qwen2.5-72b-instruct"), get_quant("awq"), ClusterRequest(1, 2, 80 * GIB))
    assert "qwenkit serve Qwen/Qwen2.5-72B-Instruct-AWQ" in plan.commands[-1]
    assert plan.commands[-1].endswith("--quantization awq")
    with pytest.raises(UsageError, match="not q4_k_m"):
        served_format(get_quant("q4_k_m"))


def test_the_network_interface_goes_to_nccl_and_gloo() -> None:
    request = ClusterRequest(2, 8, 80 * GIB, interface="ib0")
    plan = plan_cluster(CATALOG.get("qwen2.5-72b-instruct"), get_quant("bf16"), request)
    assert all("NCCL_SOCKET_IFNAME=ib0 GLOO_SOCKET_IFNAME=ib0 " in c for c in plan.commands)


def test_doctor_cluster_exit_codes_and_json(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["doctor", "qwen2.5-72b-instruct", "--cluster", "--nodes", "2", "--gpus-per-node", "4"]
    assert main([*args, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["fits"] and out["tensor_parallel_size"] == 4 and out["pipeline_parallel_size"] == 2
    assert main(["doctor", "qwen2.5-72b-instruct", "--cluster", "--gpus-per-node", "1"]) == 1
    assert "does NOT fit" in capsys.readouterr().out
    assert main(["doctor", "--cluster"]) == 2
    assert "a cluster plan is for a catalog model" in capsys.readouterr().err
    assert main(["doctor", "qwen2.5-72b-instruct", "--cluster", "--gpu-memory", "lots"]) == 2
