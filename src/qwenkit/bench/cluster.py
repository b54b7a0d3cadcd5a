"""Plan a vLLM deployment of a catalog variant over GPUs and nodes, the way vLLM's and Qwen's guides do.

Tensor parallelism inside a node (fast links), pipeline parallelism across nodes (one stage per
node): TP is the largest size the model's heads allow within a node's GPUs, PP the number of nodes.
Per GPU: the weights divided by TP x PP, one full-context sequence's KV cache divided the same way,
and vLLM's fixed reserve (CUDA context, activations, CUDA graphs), against the share of the GPU vLLM
is allowed. The plan ends with the commands to start the Ray head, the workers and ``qwenkit serve``.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field

from qwenkit.catalog.estimate import kv_cache_bytes, weight_bytes
from qwenkit.catalog.quant import Quant
from qwenkit.catalog.schema import Variant
from qwenkit.engine.vllm_settings import (
    RESERVE_BYTES,
    CheckpointShape,
    VllmSettings,
    valid_tensor_parallel_sizes,
)
from qwenkit.errors import UsageError

GIB = 1024**3
RAY_PORT = 6379


@dataclass(frozen=True)
class ServedFormat:
    """How vLLM serves a weight format of a Qwen model: which repo (Qwen's naming) and which flag."""

    repo_suffix: str
    quantization: str | None


# Qwen publishes e.g. Qwen2.5-72B-Instruct-AWQ and -GPTQ-Int4; FP8 is also made on the fly.
SERVED_FORMATS = {
    "bf16": ServedFormat("", None),
    "fp8": ServedFormat("", "fp8"),
    "awq-int4": ServedFormat("-AWQ", "awq"),
    "gptq-int4": ServedFormat("-GPTQ-Int4", "gptq"),
}


def served_format(quant: Quant) -> ServedFormat:
    found = SERVED_FORMATS.get(quant.name)
    if found is None:
        raise UsageError(
            f"vLLM clusters serve {', '.join(SERVED_FORMATS)}, not {quant.name}", param="quant",
            hint="GGUF quants run on llama.cpp; bitsandbytes int8/nf4 on transformers",
        )  # fmt: skip
    return found


@dataclass(frozen=True)
class ClusterRequest:
    nodes: int
    gpus_per_node: int
    gpu_memory: int  # bytes per GPU
    context: int = 8192
    gpu_memory_utilization: float = 0.9
    head_address: str = "HEAD_IP"
    interface: str | None = None  # NCCL / Gloo network interface, e.g. eth0 or ib0

    def __post_init__(self) -> None:
        if self.nodes < 1 or self.gpus_per_node < 1:
            raise UsageError("nodes and gpus per node must be at least 1", param="nodes")
        if self.gpu_memory <= 0:
            raise UsageError("gpu memory must be positive", param="gpu_memory")
        if self.context < 1:
            raise UsageError("context must be positive", param="context")


@dataclass(frozen=True)
class ClusterPlan:
    model: str
    quant: str
    tensor_parallel_size: int
    pipeline_parallel_size: int
    idle_gpus_per_node: int  # GPUs a node has beyond the TP the heads allow
    weights_per_gpu: int
    kv_per_gpu: int  # one sequence of the full context
    reserve_per_gpu: int
    budget_per_gpu: int
    fits: bool
    problems: list[str] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)

    @property
    def needed_per_gpu(self) -> int:
        return self.weights_per_gpu + self.kv_per_gpu + self.reserve_per_gpu


def shape_of(variant: Variant) -> CheckpointShape:
    arch = variant.arch
    return CheckpointShape(
        num_attention_heads=arch.num_attention_heads,
        num_kv_heads=arch.num_kv_heads,
        num_layers=arch.layers,
        max_position_embeddings=variant.context_native,
    )


def plan_cluster(variant: Variant, quant: Quant, req: ClusterRequest) -> ClusterPlan:
    """TP x PP for ``req``'s GPUs, what each GPU holds, whether it fits, and the commands."""
    served = served_format(quant)
    shape = shape_of(variant)
    allowed = valid_tensor_parallel_sizes(shape, limit=req.gpus_per_node)
    tp, pp = max(allowed), req.nodes
    shards = tp * pp
    weights = -(-weight_bytes(variant.arch, quant).total // shards)
    kv = -(-kv_cache_bytes(variant.arch, req.context) // shards)
    budget = int(req.gpu_memory * req.gpu_memory_utilization)
    needed = weights + kv + RESERVE_BYTES
    problems: list[str] = []
    if pp > shape.num_layers:
        problems.append(f"{pp} pipeline stages exceed the model's {shape.num_layers} layers")
    if needed > budget:
        problems.append(
            f"each GPU needs {needed / GIB:.1f} GiB (weights {weights / GIB:.1f}, KV for {req.context} "
            f"tokens {kv / GIB:.1f}, reserve {RESERVE_BYTES / GIB:.1f}) but may use {budget / GIB:.1f} GiB: "
            "add GPUs or nodes, or use a smaller quantization"
        )
    fits = not problems
    idle = req.gpus_per_node - tp
    if idle:  # a warning, not a failure
        problems.append(
            f"the model's {shape.num_attention_heads} heads and {shape.num_kv_heads} KV heads allow tensor "
            f"parallel sizes {', '.join(map(str, allowed))} within {req.gpus_per_node} GPUs: {idle} GPU(s) "
            "per node stay idle"
        )
    settings = VllmSettings(
        tensor_parallel_size=tp, pipeline_parallel_size=pp, gpu_memory_utilization=req.gpu_memory_utilization
    )
    return ClusterPlan(
        model=variant.id, quant=quant.name, tensor_parallel_size=tp, pipeline_parallel_size=pp,
        idle_gpus_per_node=idle, weights_per_gpu=weights, kv_per_gpu=kv, reserve_per_gpu=RESERVE_BYTES,
        budget_per_gpu=budget, fits=fits, problems=problems,
        commands=commands(variant, served, settings, req),
    )  # fmt: skip


def commands(
    variant: Variant, served: ServedFormat, settings: VllmSettings, req: ClusterRequest
) -> list[str]:
    """Shell lines: Ray on every node (more than one), then ``qwenkit serve`` of the variant's safetensors
    checkpoint (its Hub repo, not a GGUF) on the head."""
    env = ""
    if req.interface:
        name = shlex.quote(req.interface)
        env = f"NCCL_SOCKET_IFNAME={name} GLOO_SOCKET_IFNAME={name} "
    lines: list[str] = []
    multi_node = req.nodes > 1
    if multi_node:
        lines.append(f"# on the head node:\n{env}ray start --head --port={RAY_PORT}")
        lines.append(f"# on each of the {req.nodes - 1} other node(s):\n{env}ray start "
                     f"--address={req.head_address}:{RAY_PORT}")  # fmt: skip
    serve = [
        "qwenkit", "serve", variant.hf_repo + served.repo_suffix, "--backend", "vllm", "--host", "0.0.0.0",
        "--tensor-parallel-size", str(settings.tensor_parallel_size),
        "--pipeline-parallel-size", str(settings.pipeline_parallel_size),
        "--distributed-executor", "ray" if multi_node else "mp",
        "--gpu-memory-utilization", f"{settings.gpu_memory_utilization:g}",
        "--context", str(req.context),
        *(["--quantization", served.quantization] if served.quantization else []),
    ]  # fmt: skip
    lines.append(("# then, on the head node:\n" if multi_node else "") + env + shlex.join(serve))
    return lines


def plan_lines(plan: ClusterPlan) -> list[str]:
    """The plan as text for people: the layout, what each GPU holds, problems, then the commands."""
    verdict = "fits" if plan.fits else "does NOT fit"
    tp, pp = plan.tensor_parallel_size, plan.pipeline_parallel_size
    held = (plan.weights_per_gpu, plan.kv_per_gpu, plan.reserve_per_gpu, plan.needed_per_gpu)
    weights, kv, reserve, needed, budget = (f"{b / GIB:.1f}" for b in (*held, plan.budget_per_gpu))
    lines = [
        f"{plan.model} ({plan.quant}) on vLLM: tensor parallel {tp} x pipeline parallel {pp} - {verdict}",
        f"per GPU: weights {weights} GiB + KV {kv} GiB + reserve {reserve} GiB = {needed} of {budget} GiB",
    ]
    lines += [f"note: {p}" for p in plan.problems]
    return [*lines, "", *plan.commands]
