"""``doctor --ray-address``: the plan over what a Ray cluster's nodes report, and what they would stop.

The probe itself (Ray's API and a task per node) runs against a live local Ray head in
tests/vllm_engine/test_ray_cluster_probe.py; here the nodes' facts are given."""

from __future__ import annotations

import shutil
import sys

import pytest

from qwenkit.bench.cluster_probe import ClusterInventory, GpuFacts, NodeFacts, node_facts, plan_for_inventory
from qwenkit.catalog import load_catalog
from qwenkit.catalog.quant import get_quant
from qwenkit.cli import main

GIB = 1024**3
CATALOG = load_catalog()


def node(
    address: str, gpus: int, *, head: bool = False, free: float = 79.0, nccl: str | None = "ib0"
) -> NodeFacts:
    facts = tuple(GpuFacts(i, "NVIDIA H100 80GB HBM3", 80 * GIB, int(free * GIB)) for i in range(gpus))
    settings = {"NCCL_SOCKET_IFNAME": nccl} if nccl else {}
    return NodeFacts(address, head, 64.0, float(gpus), facts, {"ib0": address, "lo": "127.0.0.1"}, settings)


def plan_for(*nodes: NodeFacts, model: str = "qwen2.5-72b-instruct") -> object:
    inventory = ClusterInventory("auto", nodes)
    return plan_for_inventory(CATALOG.get(model), get_quant("bf16"), inventory, 8192, None)


def test_two_nodes_of_four_gpus_plan_as_described() -> None:
    found = plan_for(node("10.0.0.2", 4), node("10.0.0.1", 4, head=True))
    assert found.fits and found.problems == []  # type: ignore[attr-defined]
    plan = found.plan  # type: ignore[attr-defined]
    assert (plan.tensor_parallel_size, plan.pipeline_parallel_size) == (4, 2)
    assert plan.commands[1].endswith("ray start --address=10.0.0.1:6379")  # the head Ray named
    assert "NCCL_SOCKET_IFNAME=ib0" in plan.commands[0]  # what the nodes were told, agreed by all


def test_a_gpu_held_by_something_else_stops_the_plan() -> None:
    found = plan_for(node("10.0.0.1", 4, head=True), node("10.0.0.2", 4, free=30.0))
    assert found.plan.fits and not found.fits  # type: ignore[attr-defined]
    assert any("10.0.0.2 GPU 0: 30.0 GiB free" in p for p in found.blockers)  # type: ignore[attr-defined]
    assert "does NOT fit" in "\n".join(found.lines())  # type: ignore[attr-defined]


def test_uneven_nodes_and_unset_interfaces_are_warned_about() -> None:
    found = plan_for(
        node("10.0.0.1", 8, head=True, nccl=None),
        node("10.0.0.2", 4, nccl="eth0"),
        model="qwen2.5-7b-instruct",
    )
    assert found.plan.pipeline_parallel_size == 2 and found.plan.tensor_parallel_size == 4  # type: ignore[attr-defined]
    warnings = "\n".join(found.warnings)  # type: ignore[attr-defined]
    assert "different GPU counts ([4, 8])" in warnings and "NCCL_SOCKET_IFNAME is not set alike" in warnings


def test_a_node_without_gpus_gets_no_plan() -> None:
    found = plan_for(node("10.0.0.1", 0, head=True))
    assert found.plan is None and not found.fits  # type: ignore[attr-defined]
    assert found.lines()[-1] == "no plan: vLLM needs GPUs on every node"  # type: ignore[attr-defined]


def test_the_node_task_reads_this_machine() -> None:
    facts = node_facts()  # on this machine, as Ray would run it on a node
    assert "lo" in facts["interfaces"]
    if shutil.which("nvidia-smi") is None:
        assert facts["gpus"] == []


def test_without_ray_the_error_names_the_extra(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # as where Ray is not installed
    assert main(["doctor", "qwen3-0.6b", "--ray-address", "auto"]) == 1
    err = capsys.readouterr().err
    assert "'ray'" in err and "qwenkit[cluster]" in err
