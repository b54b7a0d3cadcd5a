"""``qwenkit select`` and the selection rules behind it, against the real catalog."""

from __future__ import annotations

import dataclasses
import json
import re

import pytest

import qwenkit.cli.select_cmd  # noqa: F401  registers the command
from qwenkit.catalog import Specialisation, Thinking, ToolFormat, Variant, load_catalog
from qwenkit.catalog.estimate import weight_bytes
from qwenkit.catalog.hardware import CpuInfo, GpuInfo, HardwareInfo
from qwenkit.catalog.select import (
    TASKS,
    TEXT_GENERATION_SPECIALISATIONS,
    SelectRequest,
    effective_params,
    parse_memory,
    resolve_request,
    select,
)
from qwenkit.cli import main
from qwenkit.errors import UsageError

GB = 10**9


def run_json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict]:
    code = main(["select", *args, "--json"])
    captured = capsys.readouterr()
    return code, json.loads(captured.out)


def _cpu_hw(ram_available: int = 16 * GB, gpus: tuple[GpuInfo, ...] = ()) -> HardwareInfo:
    return HardwareInfo(CpuInfo("AMD EPYC", 8, 16), 32 * GB, ram_available, "/", 100 * GB, gpus)


@pytest.mark.parametrize(
    "text, expected",
    [("8GB", 8 * GB), ("512MiB", 512 * 1024**2), ("1.5G", int(1.5 * 1024**3)), ("2 gib", 2 * 1024**3),
     ("100MB", 100 * 10**6), ("1TB", 10**12), (".5GB", GB // 2)],
)
def test_parse_memory(text, expected):
    assert parse_memory(text) == expected


@pytest.mark.parametrize("text", ["", "abc", "8", "8XB", "-1GB", "0GB", "GB", "1.2.3GB", "8 G B"])
def test_parse_memory_rejects_garbage_with_a_usage_error(text):
    with pytest.raises(UsageError, match=r"amount of memory|more than zero"):
        parse_memory(text)


def test_every_task_of_the_issue_has_rules():
    assert set(TASKS) == {"chat", "code", "math", "reasoning", "vision", "audio", "multilingual"}
    assert {name for name, rule in TASKS.items() if rule.media} == {"vision", "audio"}


TEXT_TASKS = ("chat", "code", "math", "reasoning", "multilingual")


def _retrieval_model(spec: Specialisation, model_id: str) -> Variant:
    """An embedding / reranker entry shaped like the Qwen3 models they are built on."""
    base = load_catalog().get("qwen3-0.6b")
    return dataclasses.replace(base, id=model_id, display_name=model_id, hf_repo=f"Qwen/{model_id}",
                               specialisation=spec, thinking=Thinking.NONE, tool_format=ToolFormat.NONE,
                               sampling={"default": base.sampling["non_thinking"]})


@pytest.mark.parametrize("task", TEXT_TASKS)
def test_embedding_and_reranker_models_are_never_recommended_for_text_tasks(task):
    retrieval = [_retrieval_model(Specialisation.EMBEDDING, "qwen3-embedding-0.6b"),
                 _retrieval_model(Specialisation.RERANKER, "qwen3-reranker-0.6b")]
    alone = select(retrieval, SelectRequest(task, "cpu", 64 * GB, 200 * GB, 4096))
    assert alone.recommendations == () and alone.message == f"no model in the catalog suits --task {task}"
    mixed = select([*retrieval, *load_catalog().all()], SelectRequest(task, "cpu", 64 * GB, 200 * GB, 4096))
    assert mixed.recommendations and not {r.variant.id for r in mixed.recommendations} & {
        "qwen3-embedding-0.6b", "qwen3-reranker-0.6b"}
    assert Specialisation.EMBEDDING not in TEXT_GENERATION_SPECIALISATIONS
    assert Specialisation.RERANKER not in TEXT_GENERATION_SPECIALISATIONS


@pytest.mark.parametrize("task", TEXT_TASKS)
def test_text_tasks_get_only_generative_text_models(task):
    req = SelectRequest(task, "cuda", 2000 * GB, 4800 * GB, 4096, compute_capability=(9, 0), limit=200)
    for rec in select(load_catalog().all(), req).recommendations:
        assert rec.variant.specialisation in TEXT_GENERATION_SPECIALISATIONS and rec.variant.instruct


def test_code_prefers_qwen3_coder_when_it_fits():
    req = SelectRequest("code", "cuda", 1000 * GB, 4800 * GB, 8192, compute_capability=(9, 0))
    first = select(load_catalog().all(), req).recommendations[0]
    assert first.variant.id == "qwen3-coder-480b-a35b-instruct" and first.tier == 0
    assert first.thinking is None  # non-thinking only: nothing to switch


def test_a_qwen35_runs_its_language_model_on_llama_cpp_for_text_and_whole_for_images():
    variants = [load_catalog().get("qwen3.5-27b")]
    text = select(variants, SelectRequest("chat", "cpu", 64 * GB, 200 * GB, 8192)).recommendations[0]
    assert text.option.backend == "llamacpp"
    image = select(variants, SelectRequest("vision", "cpu", 128 * GB, 200 * GB, 8192)).recommendations[0]
    assert image.option.backend == "transformers"
    assert text.thinking is None and image.thinking is None  # a hybrid: chat/vision leave the switch alone
    # the GGUF path loads no vision tower: its weights are the language model's alone
    language_model = variants[0].arch.shrunk(encoder_params=0)
    assert text.memory.weights == weight_bytes(language_model, text.option.quant).total
    assert text.memory.weights < weight_bytes(variants[0].arch, text.option.quant).total


def test_thinking_only_models_are_marked_thinking():
    req = SelectRequest("chat", "cuda", 400 * GB, 4800 * GB, 8192, compute_capability=(9, 0), limit=50)
    recs = {r.variant.id: r for r in select(load_catalog().all(), req).recommendations}
    assert recs["qwen3-next-80b-a3b-thinking"].thinking is True
    assert recs["qwen3-8b"].thinking is None  # hybrid, and chat does not ask for thinking


def test_hybrid_models_kv_cache_grows_with_full_attention_layers_only():
    nxt = load_catalog().get("qwen3-next-80b-a3b-thinking")
    req = SelectRequest("reasoning", "cuda", 400 * GB, 4800 * GB, 8192, compute_capability=(9, 0), limit=50)
    short = {r.variant.id: r for r in select([nxt], req).recommendations}[nxt.id]
    long = select([nxt], dataclasses.replace(req, context=65536)).recommendations[0]
    per_token = 2 * 12 * 2 * 256 * 2  # K and V x 12 full-attention layers x 2 kv heads x 256 x bf16
    assert long.memory.kv_cache - short.memory.kv_cache == per_token * (65536 - 8192)


def test_code_on_a_4gb_cpu_ranks_a_small_quantized_coder_first(capsys):
    code, out = run_json(capsys, "--task", "code", "--device", "cpu", "--memory", "4GB")
    assert code == 0
    first = out["recommendations"][0]
    variant = load_catalog().get(first["id"])
    assert variant.id.startswith("qwen2.5-coder-") and variant.params_total <= 3.1e9
    assert first["format"] == "gguf" and first["backend"] == "llamacpp"
    assert first["quant"] in {"q8_0", "q6_k", "q5_k_m", "q4_k_m", "q4_0"}
    for rec in out["recommendations"]:
        assert rec["memory"]["peak"] <= 4 * GB
        assert rec["tokens_per_s"] > 0 and rec["why"]


def test_vision_recommends_the_newest_vision_models(capsys):
    code, out = run_json(capsys, "--task", "vision", "--device", "cpu", "--memory", "16GB")
    assert code == 0
    first = out["recommendations"][0]
    assert first["id"].startswith(("qwen3-vl-", "qwen3.5-"))  # Qwen3-VL and Qwen3.5 before Qwen2.5-VL
    assert all(r["backend"] == "transformers" for r in out["recommendations"])  # images: no GGUF path


def test_reasoning_in_1gb_says_clearly_that_nothing_fits_and_what_would(capsys):
    smallest_thinkers = {"qwen3-0.6b", "qwen3-1.7b", "qwen3.5-0.8b"}
    code, out = run_json(capsys, "--task", "reasoning", "--device", "cpu", "--memory", "1GB")
    if out["recommendations"]:
        assert code == 0
        assert out["recommendations"][0]["id"] in smallest_thinkers
        assert out["recommendations"][0]["thinking"] is True
        return
    assert code == 1
    message = out["message"]
    assert message.startswith("nothing fits in 1.00 GB")
    suggested = re.search(r"--memory (\S+?)\)", message)
    assert suggested, message
    # the suggested budget is enough for the smallest suitable model
    code, out = run_json(capsys, "--task", "reasoning", "--device", "cpu", "--memory", suggested.group(1))
    assert code == 0
    assert out["recommendations"][0]["id"] in smallest_thinkers
    shorter = re.search(r"--context (\d+)", message)
    if shorter:
        args = ("--task", "reasoning", "--device", "cpu", "--memory", "1GB", "--context", shorter.group(1))
        code, out = run_json(capsys, *args)
        assert code == 0 and out["recommendations"][0]["id"] in smallest_thinkers


def test_nothing_fits_prints_the_message_and_exits_1(capsys):
    assert main(["select", "--task", "audio", "--device", "cpu", "--memory", "2GB"]) == 1
    err = capsys.readouterr().err
    # Qwen2-Audio's full multi-head KV cache (32 layers x 32 heads) makes the Omni thinker smaller
    assert "nothing fits" in err and "qwen2.5-omni-7b" in err


def test_a_context_no_model_supports_is_explained(capsys):
    args = ("--task", "audio", "--device", "cpu", "--memory", "64GB", "--context", "65536")
    code, out = run_json(capsys, *args)
    assert code == 1 and out["recommendations"] == []
    assert "supports a context of 65536" in out["message"]


def test_human_output_is_a_table_with_reasons(capsys):
    assert main(["select", "--task", "code", "--device", "cpu", "--memory", "4GB"]) == 0
    out = capsys.readouterr().out
    assert "qwen2.5-coder-" in out and "1. Qwen2.5-Coder" in out


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--task", "poetry"], "unknown task"),
        (["--task", "code", "--memory", "lots"], "amount of memory"),
        (["--task", "code", "--device", "tpu"], "unknown device"),
        (["--task", "code", "--context", "0"], "context"),
    ],
)
def test_bad_input_is_a_usage_error(capsys, args, fragment):
    assert main(["select", "--device", "cpu", *args] if "--device" not in args else ["select", *args]) == 2
    assert fragment in capsys.readouterr().err


def test_planning_for_cuda_offers_vllm_for_bf16_text_and_transformers_for_bitsandbytes():
    req = resolve_request("chat", "cuda", "24GB", 8192, _cpu_hw())
    sel = select(load_catalog().all(), req)
    assert sel.fits
    for rec in sel.recommendations:
        assert rec.option.quant.name in {"bf16", "int8", "nf4"}  # fp8 needs a known compute capability >= 8.9
        expected = "vllm" if rec.option.quant.name == "bf16" else "transformers"
        assert rec.option.backend == expected, rec
        assert ("qwenkit[vllm]" in rec.why) == (expected == "vllm")
        assert rec.memory.peak <= 24 * GB


def test_fp8_is_offered_on_hopper():
    h200 = GpuInfo(0, "NVIDIA H200", 143 * 1024**3, 140 * 1024**3, (9, 0), "nvidia-smi")
    req = resolve_request("chat", "auto", "20GB", 8192, _cpu_hw(gpus=(h200,)))
    assert req.device == "cuda" and req.compute_capability == (9, 0)
    assert req.bandwidth == 4800 * GB
    quants = {r.option.quant.name for r in select(load_catalog().all(), req).recommendations}
    assert "fp8" in quants


def test_auto_device_and_default_budget_come_from_the_hardware():
    a10 = GpuInfo(0, "NVIDIA A10G", 24 * 1024**3, 20 * 1024**3, (8, 6), "nvidia-smi")
    gpu_req = resolve_request("code", "auto", None, 4096, _cpu_hw(gpus=(a10,)))
    assert (gpu_req.device, gpu_req.memory, gpu_req.bandwidth) == ("cuda", 20 * 1024**3, 600 * GB)
    cpu_req = resolve_request("code", "auto", None, 4096, _cpu_hw(ram_available=7 * GB))
    assert (cpu_req.device, cpu_req.memory, cpu_req.bandwidth) == ("cpu", 7 * GB, 40 * GB)
    assert resolve_request("code", "cpu", None, 4096, _cpu_hw(), bandwidth_gbps=90).bandwidth == 90 * GB


def test_cuda_without_a_gpu_or_a_budget_is_a_usage_error():
    with pytest.raises(UsageError, match="no CUDA GPU"):
        resolve_request("chat", "cuda", None, 8192, _cpu_hw())


def test_ranking_follows_tiers_then_size_and_respects_the_budget():
    variants = load_catalog().all()
    req = SelectRequest("code", "cpu", 64 * GB, 40 * GB, 8192)
    recs = select(variants, req).recommendations
    tiers = [r.tier for r in recs if r.usable]
    assert tiers == sorted(tiers)
    coders = [r for r in recs if r.tier == 0 and r.usable]
    sizes = [effective_params(r.variant) for r in coders]
    assert sizes == sorted(sizes, reverse=True)
    assert all(r.memory.peak <= req.memory for r in recs)


def test_more_memory_never_picks_a_smaller_top_model():
    variants = load_catalog().all()
    tops = []
    for gb in (2, 4, 8, 16):
        rec = select(variants, SelectRequest("chat", "cpu", gb * GB, 200 * GB, 4096)).recommendations[0]
        tops.append(effective_params(rec.variant))
    assert tops == sorted(tops)


def test_moe_size_is_between_active_and_total():
    moe = load_catalog().get("qwen3-30b-a3b")
    assert moe.params_active < effective_params(moe) < moe.params_total


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"limit": 0}, "limit must be at least 1, not 0"),
        ({"memory": 0}, "memory must be at least 1, not 0"),
        ({"bandwidth": 0.0}, "bandwidth must be positive, not 0.0"),
        ({"bandwidth": float("nan")}, "bandwidth must be positive, not nan"),
    ],
)
def test_a_request_names_the_value_that_is_out_of_range(changes: dict[str, float], expected: str) -> None:
    base = SelectRequest("code", "cpu", 64 * GB, 200 * GB, 4096)
    with pytest.raises(UsageError, match=expected):
        dataclasses.replace(base, **changes)
