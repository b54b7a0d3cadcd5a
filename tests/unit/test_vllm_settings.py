"""vLLM's settings are checked against the checkpoint before vLLM starts (no vLLM needed here)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qwenkit.engine.registry import BACKENDS, check_options
from qwenkit.engine.types import BackendKind, BackendOptions
from qwenkit.engine.vllm_settings import (
    CheckpointShape,
    DistributedExecutor,
    VllmQuantization,
    VllmSettings,
    check_fits,
    check_parallelism,
    check_quantization,
    parse_executor,
    parse_quantization,
    rope_scaling_for,
    valid_tensor_parallel_sizes,
)
from qwenkit.engine.vllm_setup import CPU_BIND_VAR, cpu_binding
from qwenkit.errors import ModelFormatError, UsageError

# Qwen2.5-7B-Instruct's config.json numbers: 28 heads, 4 KV heads, 28 layers, 32K native.
QWEN25_7B = {
    "num_attention_heads": 28,
    "num_key_value_heads": 4,
    "num_hidden_layers": 28,
    "max_position_embeddings": 32768,
}
SEVEN_B = CheckpointShape.from_config(QWEN25_7B)
GIB = 1024**3


@pytest.mark.parametrize("tp", [1, 2, 4, 7, 14, 28])
def test_tensor_parallel_sizes_that_divide_heads_and_split_or_replicate_kv_heads(tp: int) -> None:
    if tp in (7, 14):  # divides the 28 heads but neither divides nor is a multiple of the 4 KV heads
        with pytest.raises(UsageError, match="KV heads"):
            check_parallelism(VllmSettings(tensor_parallel_size=tp), SEVEN_B)
    else:
        check_parallelism(VllmSettings(tensor_parallel_size=tp), SEVEN_B)


def test_a_tensor_parallel_size_that_does_not_divide_the_heads_names_the_valid_ones() -> None:
    with pytest.raises(
        UsageError, match=r"does not divide the model's 28 attention heads; use one of 1, 2, 4, 28"
    ):
        check_parallelism(VllmSettings(tensor_parallel_size=3), SEVEN_B)
    assert valid_tensor_parallel_sizes(SEVEN_B) == [1, 2, 4, 28]  # 28: each KV head on 7 GPUs
    # Qwen2.5-72B: 64 heads, 8 KV heads.
    big = CheckpointShape(
        num_attention_heads=64, num_kv_heads=8, num_layers=80, max_position_embeddings=32768
    )
    assert valid_tensor_parallel_sizes(big) == [1, 2, 4, 8, 16, 32, 64]


def test_more_pipeline_stages_than_layers_is_refused() -> None:
    with pytest.raises(UsageError, match="exceeds the model's 28 layers"):
        check_parallelism(VllmSettings(pipeline_parallel_size=29), SEVEN_B)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("tensor_parallel_size", 0),
        ("pipeline_parallel_size", -1),
        ("data_parallel_size", True),
        ("gpu_memory_utilization", 0.0),
        ("gpu_memory_utilization", 1.5),
    ],
)
def test_bad_values_are_refused_on_construction(field: str, value: object) -> None:
    with pytest.raises(UsageError, match=field):
        VllmSettings(**{field: value})  # type: ignore[arg-type]


def test_quantization_and_executor_names() -> None:
    assert parse_quantization("AWQ") is VllmQuantization.AWQ
    assert parse_quantization(None) is None
    with pytest.raises(UsageError, match="unknown quantization 'int3'; vLLM serves: awq, gptq, fp8"):
        parse_quantization("int3")
    assert parse_executor("ray") is DistributedExecutor.RAY
    with pytest.raises(UsageError, match="choose mp or ray"):
        parse_executor("slurm")


def test_awq_and_gptq_are_properties_of_the_checkpoint() -> None:
    awq = CheckpointShape.from_config({**QWEN25_7B, "quantization_config": {"quant_method": "AWQ"}})
    check_quantization(VllmSettings(quantization=VllmQuantization.AWQ), awq)
    with pytest.raises(UsageError, match="no quantization_config"):
        check_quantization(VllmSettings(quantization=VllmQuantization.GPTQ), SEVEN_B)
    with pytest.raises(UsageError, match="quantized with awq"):
        check_quantization(VllmSettings(quantization=VllmQuantization.GPTQ), awq)
    check_quantization(VllmSettings(quantization=VllmQuantization.FP8), SEVEN_B)  # on the fly
    with pytest.raises(UsageError, match="quantized with awq"):
        check_quantization(VllmSettings(quantization=VllmQuantization.FP8), awq)


def test_yarn_only_past_the_native_length_and_as_qwen_sets_it() -> None:
    assert rope_scaling_for(32768, SEVEN_B) is None
    assert rope_scaling_for(131072, SEVEN_B) == {
        "rope_type": "yarn",
        "factor": 4.0,
        "original_max_position_embeddings": 32768,
    }
    assert rope_scaling_for(65536, SEVEN_B)["factor"] == 2.0  # type: ignore[index]
    with pytest.raises(UsageError, match="Qwen documents YaRN up to 4x"):
        rope_scaling_for(262144, SEVEN_B)
    scaled = CheckpointShape.from_config({**QWEN25_7B, "rope_scaling": {"rope_type": "yarn", "factor": 4.0}})
    assert rope_scaling_for(131072, scaled) is None  # the checkpoint's own config.json rules


def test_a_shard_must_leave_room_for_the_kv_cache() -> None:
    seventy_two_b = 145 * GIB  # Qwen2.5-72B-Instruct in bf16
    with pytest.raises(UsageError, match="raise tensor_parallel_size"):
        check_fits(VllmSettings(tensor_parallel_size=1), seventy_two_b, 80 * GIB, 2 * GIB)
    check_fits(VllmSettings(tensor_parallel_size=4), seventy_two_b, 80 * GIB, 2 * GIB)


def test_the_checkpoint_shape_is_read_from_config_json(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"text_config": QWEN25_7B}))
    assert CheckpointShape.read(tmp_path) == SEVEN_B
    (tmp_path / "config.json").write_text(json.dumps({"hidden_size": 8}))
    with pytest.raises(ModelFormatError, match="num_attention_heads"):
        CheckpointShape.read(tmp_path)
    with pytest.raises(ModelFormatError, match="cannot read"):
        CheckpointShape.read(tmp_path / "missing")


@pytest.mark.parametrize("kind", [BackendKind.LLAMACPP, BackendKind.TRANSFORMERS])
def test_other_backends_refuse_vllm_settings_instead_of_ignoring_them(kind: BackendKind) -> None:
    check_options(BACKENDS[kind], BackendOptions(vllm=VllmSettings()))  # defaults: nothing asked
    with pytest.raises(UsageError, match="add --backend vllm"):
        check_options(BACKENDS[kind], BackendOptions(vllm=VllmSettings(tensor_parallel_size=2)))
    check_options(BACKENDS[BackendKind.VLLM], BackendOptions(vllm=VllmSettings(tensor_parallel_size=2)))


def test_eager_mode_comes_from_the_flag_or_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from qwenkit.server.settings import load_settings

    assert load_settings(model="m").vllm_settings is None
    assert load_settings(model="m", enforce_eager=True).vllm_settings == VllmSettings(enforce_eager=True)
    monkeypatch.setenv("QWENKIT_ENFORCE_EAGER", "true")
    assert load_settings(model="m").vllm_settings == VllmSettings(enforce_eager=True)
    with pytest.raises(UsageError, match="add --backend vllm"):
        check_options(BACKENDS[BackendKind.LLAMACPP], BackendOptions(vllm=VllmSettings(enforce_eager=True)))


@pytest.mark.parametrize(
    ("world", "cpus", "nodes", "env", "expected"),
    [
        (2, [0, 1], 1, {}, "0|1"),
        (2, [0, 1, 2, 3, 4], 1, {}, "0,1|2,3"),
        (4, [0, 1, 2, 3, 4, 5, 6, 7], 2, {}, "0,1|2,3|4,5|6,7"),
        (1, [0, 1], 1, {}, None),  # one worker: vLLM binds it itself
        (2, [0, 1], 2, {}, None),  # a node per worker: vLLM's own binding works
        (2, [0, 1], 1, {CPU_BIND_VAR: "0|1"}, None),  # the user's binding stands
    ],
)
def test_cpu_workers_share_the_cpus_when_numa_nodes_are_fewer(
    world: int, cpus: list[int], nodes: int, env: dict[str, str], expected: str | None
) -> None:
    assert cpu_binding(world, cpus, nodes, env) == expected


def test_more_cpu_workers_than_cpus_is_refused() -> None:
    with pytest.raises(UsageError, match=r"4 vLLM workers .* need as many CPUs; this process may use 2"):
        cpu_binding(4, [0, 1], 1, {})
