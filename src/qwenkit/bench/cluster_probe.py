"""What a running Ray cluster has, asked through Ray's Python API, as input to the cluster plan.

Ray knows each node's address and its CPU / GPU counts; what vLLM also needs to know (each GPU's
total and free memory, the NCCL / Gloo settings and the network interfaces NCCL may pick) can only be
read on the node itself, so one small task is pinned to every alive node. The task is sent by value
(workers need Ray and Python, not qwenkit) and asks ``nvidia-smi``, so it makes no CUDA context.
"""

from __future__ import annotations

import socket
import sys
from dataclasses import dataclass, field
from typing import Any

from qwenkit.bench.cluster import GIB, ClusterPlan, ClusterRequest, plan_cluster, plan_lines
from qwenkit.catalog.quant import Quant
from qwenkit.catalog.schema import Variant
from qwenkit.errors import MissingDependencyError, QwenkitError

# Settings of the distributed run that are read from each node's environment.
ENV_PREFIXES = ("NCCL_", "GLOO_", "VLLM_HOST_IP", "CUDA_VISIBLE_DEVICES", "RAY_ADDRESS")


@dataclass(frozen=True)
class GpuFacts:
    index: int
    name: str
    total_bytes: int
    free_bytes: int


@dataclass(frozen=True)
class NodeFacts:
    address: str
    head: bool
    cpus: float
    ray_gpus: float  # what Ray schedules on; should equal len(gpus)
    gpus: tuple[GpuFacts, ...] = ()
    interfaces: dict[str, str] = field(default_factory=dict)  # name -> IPv4 address
    settings: dict[str, str] = field(default_factory=dict)  # NCCL_* / GLOO_* / ... as set on the node


@dataclass(frozen=True)
class ClusterInventory:
    address: str
    nodes: tuple[NodeFacts, ...]

    @property
    def gpus_per_node(self) -> int:
        """What every node can give (a plan uses the same TP on each node)."""
        return min((len(n.gpus) for n in self.nodes), default=0)

    @property
    def gpu_memory(self) -> int:
        """The smallest GPU's total memory: vLLM's memory share is of the total."""
        return min((g.total_bytes for n in self.nodes for g in n.gpus), default=0)

    @property
    def head_address(self) -> str:
        return next((n.address for n in self.nodes if n.head), self.address)

    def interface(self) -> str | None:
        """The NCCL interface the nodes were told to use, when they all agree."""
        chosen = {n.settings.get("NCCL_SOCKET_IFNAME") for n in self.nodes}
        return chosen.pop() if len(chosen) == 1 else None

    def blockers(self, utilization: float) -> list[str]:
        """What would stop vLLM from starting, found on the nodes themselves."""
        found: list[str] = []
        if self.gpus_per_node == 0:
            found.append(
                "a node has no GPU that nvidia-smi can see: vLLM's GPU workers need one on every node"
            )
        for node in self.nodes:
            for gpu in node.gpus:
                wanted = gpu.total_bytes * utilization
                if gpu.free_bytes < wanted:
                    found.append(
                        f"{node.address} GPU {gpu.index}: {gpu.free_bytes / GIB:.1f} GiB free, vLLM will ask "
                        f"for {wanted / GIB:.1f} GiB ({utilization:g} of {gpu.total_bytes / GIB:.1f}): "
                        "something else holds it"
                    )
        return found

    def warnings(self) -> list[str]:
        """What would make vLLM slower or leave GPUs idle."""
        found: list[str] = []
        counts = {len(n.gpus) for n in self.nodes}
        if len(counts) > 1:
            found.append(f"nodes have different GPU counts ({sorted(counts)}): the plan uses the smallest")
        for node in self.nodes:
            if int(node.ray_gpus) != len(node.gpus):
                found.append(
                    f"{node.address}: Ray schedules {node.ray_gpus:g} GPUs, nvidia-smi sees {len(node.gpus)}"
                )
        if len(self.nodes) > 1 and self.interface() is None:
            found.append("NCCL_SOCKET_IFNAME is not set alike on every node: NCCL may pick a slow interface")
        return found


@dataclass(frozen=True)
class InventoryPlan:
    """The cluster plan for the GPUs found, and what the nodes themselves would stop or slow."""

    plan: ClusterPlan | None  # None when a node has no GPU
    blockers: list[str]
    warnings: list[str]

    @property
    def fits(self) -> bool:
        return self.plan is not None and self.plan.fits and not self.blockers

    @property
    def problems(self) -> list[str]:
        return [*self.blockers, *self.warnings]

    def lines(self) -> list[str]:
        notes = [f"problem: {p}" for p in self.blockers] + [f"note: {p}" for p in self.warnings]
        if self.plan is None:
            return [*notes, "no plan: vLLM needs GPUs on every node"]
        verdict = [] if self.fits or not self.plan.fits else ["does NOT fit: see the problems above"]
        return [*notes, *verdict, *plan_lines(self.plan)]


def plan_for_inventory(
    variant: Variant, quant: Quant, inventory: ClusterInventory, context: int, interface: str | None
) -> InventoryPlan:
    """Plan over what every node has (the fewest GPUs, the smallest GPU), then check the nodes."""
    utilization = ClusterRequest.gpu_memory_utilization
    blockers, warnings = inventory.blockers(utilization), inventory.warnings()
    if inventory.gpus_per_node == 0:
        return InventoryPlan(None, blockers, warnings)
    request = ClusterRequest(
        len(inventory.nodes),
        inventory.gpus_per_node,
        inventory.gpu_memory,
        context=context,
        gpu_memory_utilization=utilization,
        head_address=inventory.head_address,
        interface=interface or inventory.interface(),
    )
    return InventoryPlan(plan_cluster(variant, quant, request), blockers, warnings)


def node_facts() -> dict[str, Any]:
    """Run on a node (by value, so only the standard library and psutil if present)."""
    import os
    import shutil
    import subprocess

    gpus = []
    if shutil.which("nvidia-smi"):
        query = [
            "nvidia-smi",
            "--query-gpu=index,name,memory.total,memory.free",
            "--format=csv,noheader,nounits",
        ]
        out = subprocess.run(query, capture_output=True, text=True, timeout=30, check=False).stdout
        for line in out.strip().splitlines():
            index, name, total, free = (part.strip() for part in line.split(","))
            gpus.append(
                {
                    "index": int(index),
                    "name": name,
                    "total_bytes": int(total) * 2**20,
                    "free_bytes": int(free) * 2**20,
                }
            )
    interfaces: dict[str, str] = {}
    try:
        import psutil  # Ray's default install has it

        for name, addrs in psutil.net_if_addrs().items():
            for addr in addrs:
                if addr.family.name == "AF_INET":
                    interfaces[name] = addr.address
    except ImportError:
        interfaces = {name: "" for _, name in socket.if_nameindex()}
    settings = {k: v for k, v in os.environ.items() if k.startswith(ENV_PREFIXES)}
    return {"gpus": gpus, "interfaces": interfaces, "settings": settings}


def _import_ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise MissingDependencyError.for_extra("ray", "cluster") from exc
    return ray


def _no_cluster(address: str, exc: Exception) -> QwenkitError:
    return QwenkitError(
        f"no Ray cluster answered at {address}: {exc}",
        hint="start Ray on the head node, then on each worker, as docs/multi-node.md shows",
    )


def _check_reachable(address: str, seconds: float = 10.0) -> None:
    """Ray retries an unreachable GCS for minutes; a refused or silent HOST:PORT is said at once."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        return  # "auto", "ray://...": Ray resolves those itself, and fails fast when nothing runs
    try:
        socket.create_connection((host, int(port)), timeout=seconds).close()
    except OSError as exc:
        raise _no_cluster(address, exc) from exc


def probe_ray(address: str, timeout: float = 120.0) -> ClusterInventory:
    """Connect to the Ray cluster at ``address`` (e.g. ``auto`` or ``HEAD:6379``) and read every node."""
    ray = _import_ray()
    _check_reachable(address)
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    try:
        ray.init(address=address, logging_level="ERROR", log_to_driver=False)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise _no_cluster(address, exc) from exc
    try:
        alive = [n for n in ray.nodes() if n.get("Alive")]
        task = ray.remote(num_cpus=0)(node_facts)
        pending = [
            task.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)).remote()
            for n in alive
        ]
        found = ray.get(pending, timeout=timeout)
    finally:
        ray.shutdown()
    nodes = tuple(
        NodeFacts(
            address=n["NodeManagerAddress"],
            head="node:__internal_head__" in n["Resources"],
            cpus=float(n["Resources"].get("CPU", 0)),
            ray_gpus=float(n["Resources"].get("GPU", 0)),
            gpus=tuple(GpuFacts(**g) for g in facts["gpus"]),
            interfaces=facts["interfaces"],
            settings=facts["settings"],
        )
        for n, facts in zip(alive, found, strict=True)
    )
    return ClusterInventory(address, nodes)


def inventory_lines(inventory: ClusterInventory) -> list[str]:
    """The cluster as found, a few lines per node."""
    lines = [f"Ray cluster at {inventory.address}: {len(inventory.nodes)} node(s)"]
    for node in inventory.nodes:
        gpus = ", ".join(
            f"{g.index}: {g.name} {g.free_bytes / GIB:.1f}/{g.total_bytes / GIB:.1f} GiB free"
            for g in node.gpus
        )
        lines.append(
            f"  {node.address}: {node.cpus:g} CPUs, {len(node.gpus)} GPU(s){': ' + gpus if gpus else ''}"
        )
        nets = ", ".join(f"{name} {ip}".strip() for name, ip in sorted(node.interfaces.items()))
        lines.append(f"    interfaces: {nets or 'none found'}")
        settings = ", ".join(f"{k}={v}" for k, v in sorted(node.settings.items()))
        lines.append(f"    settings: {settings or 'no NCCL_* / GLOO_* variables set'}")
    return lines
