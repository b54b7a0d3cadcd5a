"""The catalog's architecture numbers against transformers' own modules (litgpt style).

Shrunk copies of real entries are built for real on CPU and run; every buildable entry is also
built full size on the ``meta`` device (no memory), and the multimodal entries are built as the
composite transformers models from the catalog's encoder numbers. In every case the number of
parameters transformers allocates must equal the catalog's count exactly: the language model's
(``text_parameter_count``) for text builds, the whole model's (``parameter_count``) for composites.
Covered since transformers 4.57 / 5.x: hybrid ``qwen3_next`` and ``qwen3_5`` (Gated DeltaNet),
Qwen3-VL (DeepStack ViT), Qwen2.5-Omni's thinker (vision and audio towers).
"""

from __future__ import annotations

import sys
from importlib import resources
from typing import Any

import pytest
import torch
import transformers

from qwenkit.catalog import Generation, Specialisation, Variant, load_catalog
from qwenkit.catalog.hf_config import hf_config_dict, hf_model_type
from qwenkit.errors import UsageError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

CATALOG = load_catalog()
TINY = {"layers": 2, "hidden_size": 64, "num_attention_heads": 4, "num_kv_heads": 2, "head_dim": 16,
        "intermediate_size": 128, "vocab_size": 512}
TINY_MOE = {"num_experts": 4, "num_active_experts": 2, "moe_intermediate_size": 32}
# Hybrid: 4 layers = 3 Gated DeltaNet + 1 gated full attention.
TINY_HYBRID = {**TINY, "layers": 4, "linear_num_key_heads": 2, "linear_num_value_heads": 4,
               "linear_key_head_dim": 8, "linear_value_head_dim": 8}
SHRUNK = {
    "qwen2.5-0.5b-instruct": TINY,
    "qwen3-0.6b": TINY,
    "qwen3-30b-a3b": {**TINY, "num_experts": 8, "num_active_experts": 2, "moe_intermediate_size": 32},
    "qwen2-57b-a14b-instruct": {**TINY, **TINY_MOE, "shared_expert_intermediate_size": 64},
    "qwen3-coder-480b-a35b-instruct": {**TINY, **TINY_MOE},
    "qwq-32b": TINY,
    "qwen3-next-80b-a3b-thinking": {**TINY_HYBRID, **TINY_MOE, "shared_expert_intermediate_size": 32},
    "qwen3.5-0.8b": TINY_HYBRID,
    "qwen3.5-35b-a3b": {**TINY_HYBRID, **TINY_MOE, "shared_expert_intermediate_size": 32},
}


def buildable(v: Variant) -> bool:
    try:
        hf_model_type(v)
    except UsageError:
        return False
    return True


def n_params(model: Any) -> int:
    return sum(p.numel() for p in model.parameters())  # shared (tied) tensors are counted once


def build(config: dict[str, Any], device: str) -> Any:
    cfg = transformers.AutoConfig.for_model(**config)
    with torch.device(device):
        return transformers.AutoModelForCausalLM.from_config(cfg)


@pytest.mark.parametrize(("model_id", "overrides"), SHRUNK.items(), ids=list(SHRUNK))
def test_shrunk_model_builds_runs_and_counts_exactly(model_id: str, overrides: dict[str, int]) -> None:
    v = CATALOG.get(model_id)
    config = hf_config_dict(v, **overrides)
    torch.manual_seed(0)
    model = build(config, "cpu").eval()
    assert type(model).__name__ == config["architectures"][0]
    assert n_params(model) == v.arch.shrunk(**overrides).text_parameter_count()
    with torch.no_grad():
        logits = model(torch.tensor([[1, 2, 3, 4, 5]])).logits
    assert logits.shape == (1, 5, overrides["vocab_size"]) and torch.isfinite(logits).all()
    tied = model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    assert tied is v.arch.tied_embeddings


def one_per_shape() -> list[Variant]:
    """Base/Instruct and Coder/Math twins share a shape; build each distinct (type, arch) once."""
    seen: dict[tuple[str, Any], Variant] = {}
    for v in CATALOG.all():
        if buildable(v):
            seen.setdefault((hf_model_type(v).model_type, v.arch), v)
    return list(seen.values())


@pytest.mark.parametrize("v", one_per_shape(), ids=lambda v: v.id)
def test_full_size_text_model_matches_parameter_count(v: Variant) -> None:
    model = build(hf_config_dict(v), "meta")
    assert n_params(model) == v.arch.text_parameter_count()


def _encoder_presets() -> dict[str, list[dict[str, Any]]]:
    """Model id -> its encoders' config numbers, read from the data files as the loader reads them."""
    out = {}
    folder = resources.files("qwenkit.catalog").joinpath("data")
    for path in folder.iterdir():
        if not path.name.endswith(".toml") or path.name == "sampling.toml":
            continue
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
        for entry in raw.get("model", []):
            names = entry.get("encoder", raw.get("defaults", {}).get("encoder"))
            if names is not None:
                names = [names] if isinstance(names, str) else names
                out[entry["id"]] = [dict(raw["encoders"][name]) for name in names]
    return out


def _text_config(v: Variant) -> dict[str, Any]:
    """The language model's numbers in transformers' key names (hybrid and MoE keys included)."""
    a = v.arch
    text = {"vocab_size": a.vocab_size, "hidden_size": a.hidden_size,
            "intermediate_size": a.intermediate_size, "num_hidden_layers": a.layers,
            "num_attention_heads": a.num_attention_heads, "num_key_value_heads": a.num_kv_heads,
            "head_dim": a.head_dim,
            "tie_word_embeddings": a.tied_embeddings}
    if a.is_moe:
        text.update(num_experts=a.num_experts, num_experts_per_tok=a.num_active_experts,
                    moe_intermediate_size=a.moe_intermediate_size,
                    shared_expert_intermediate_size=a.shared_expert_intermediate_size)
    if a.is_hybrid:
        layout = ["full_attention" if a.is_full_attention(i) else "linear_attention" for i in range(a.layers)]
        text.update(
            layer_types=layout, linear_num_key_heads=a.linear_num_key_heads,
            linear_num_value_heads=a.linear_num_value_heads, linear_key_head_dim=a.linear_key_head_dim,
            linear_value_head_dim=a.linear_value_head_dim, linear_conv_kernel_dim=a.linear_conv_kernel_dim,
        )
    return text


def _vision(enc: dict[str, Any], hidden: int) -> dict[str, Any]:
    return {**{k: x for k, x in enc.items() if k != "kind"}, "out_hidden_size": hidden}


def _qwen2_family(v: Variant, encs: dict[str, dict[str, Any]]) -> tuple[Any, Any]:
    """Qwen2-VL, Qwen2.5-VL, Qwen2-Audio: a qwen2 language model and one tower."""
    text = {**_text_config(v), "model_type": "qwen2"}
    hidden, tied = v.arch.hidden_size, v.arch.tied_embeddings
    if "qwen2-vl-vision" in encs:
        vision = {**encs["qwen2-vl-vision"], "hidden_size": hidden}
        cfg = transformers.Qwen2VLConfig(text_config=text, vision_config=vision, tie_word_embeddings=tied)
        return transformers.Qwen2VLForConditionalGeneration, cfg
    if "qwen2.5-vl-vision" in encs:
        vision = _vision(encs["qwen2.5-vl-vision"], hidden)
        cfg = transformers.Qwen2_5_VLConfig(text_config=text, vision_config=vision, tie_word_embeddings=tied)
        return transformers.Qwen2_5_VLForConditionalGeneration, cfg
    cfg = transformers.Qwen2AudioConfig(text_config=text, audio_config=encs["whisper-audio"])
    return transformers.Qwen2AudioForConditionalGeneration, cfg


def _omni_thinker(v: Variant, encs: dict[str, dict[str, Any]]) -> tuple[Any, Any]:
    hidden = v.arch.hidden_size
    cfg = transformers.Qwen2_5OmniThinkerConfig(
        text_config=_text_config(v),
        vision_config=_vision(encs["qwen2.5-vl-vision"], hidden),
        audio_config={**encs["qwen2.5-omni-audio"], "output_dim": hidden},
    )
    return transformers.Qwen2_5OmniThinkerForConditionalGeneration, cfg


def _qwen3_family(v: Variant, encs: dict[str, dict[str, Any]]) -> tuple[Any, Any]:
    """Qwen3-VL (qwen3 / qwen3_moe text) and Qwen3.5 (hybrid text), both with the Qwen3-VL ViT."""
    pick = {(Generation.QWEN3, False): ("Qwen3VLConfig", "Qwen3VLForConditionalGeneration"),
            (Generation.QWEN3, True): ("Qwen3VLMoeConfig", "Qwen3VLMoeForConditionalGeneration"),
            (Generation.QWEN3_5, False): ("Qwen3_5Config", "Qwen3_5ForConditionalGeneration"),
            (Generation.QWEN3_5, True): ("Qwen3_5MoeConfig", "Qwen3_5MoeForConditionalGeneration")}
    config_cls, model_cls = pick[(v.generation, v.is_moe)]
    cfg = getattr(transformers, config_cls)(
        text_config=_text_config(v), vision_config=_vision(encs["qwen3-vl-vision"], v.arch.hidden_size),
        tie_word_embeddings=v.arch.tied_embeddings,
    )
    return getattr(transformers, model_cls), cfg


def _composite(v: Variant, presets: list[dict[str, Any]]) -> tuple[Any, Any]:
    encs = {enc.pop("kind"): enc for enc in (dict(p) for p in presets)}
    if v.specialisation is Specialisation.OMNI:
        return _omni_thinker(v, encs)
    if "qwen3-vl-vision" in encs:
        return _qwen3_family(v, encs)
    return _qwen2_family(v, encs)


MULTIMODAL = [v for v in CATALOG.all() if v.arch.encoder_params]


@pytest.mark.parametrize("v", MULTIMODAL, ids=lambda v: v.id)
def test_multimodal_model_matches_parameter_count(v: Variant) -> None:
    cls, cfg = _composite(v, _encoder_presets()[v.id])
    with torch.device("meta"):
        model = cls._from_config(cfg)
    assert n_params(model) == v.arch.parameter_count()


def test_every_new_family_is_built_by_transformers() -> None:
    """The installed transformers builds every architecture added after Qwen3 (2504)."""
    built = {hf_model_type(v).model_type for v in one_per_shape()}
    assert {"qwen3_next", "qwen3_5_text", "qwen3_5_moe_text", "qwen3_moe", "qwen2"} <= built
    assert {v.id for v in MULTIMODAL} >= {"qwen3-vl-2b-instruct", "qwen3-vl-30b-a3b-instruct",
                                          "qwen3.5-0.8b", "qwen3.5-397b-a17b", "qwen2.5-omni-7b"}


def test_config_carries_the_real_config_fields() -> None:
    qwen3 = hf_config_dict(CATALOG.get("qwen3-30b-a3b"))
    assert qwen3["model_type"] == "qwen3_moe" and qwen3["architectures"] == ["Qwen3MoeForCausalLM"]
    assert (qwen3["head_dim"], qwen3["attention_bias"], qwen3["norm_topk_prob"]) == (128, False, True)
    assert (qwen3["bos_token_id"], qwen3["eos_token_id"], qwen3["rope_theta"]) == (151643, 151645, 1e6)
    base = hf_config_dict(CATALOG.get("qwen2.5-7b"))
    assert (base["model_type"], base["eos_token_id"], base["tie_word_embeddings"]) == ("qwen2", 151643, False)
    assert hf_config_dict(CATALOG.get("qwen1.5-moe-a2.7b"))["shared_expert_intermediate_size"] == 5632
    assert hf_config_dict(CATALOG.get("qwen2.5-math-7b-instruct"))["rope_theta"] == 10000.0
    nxt = hf_config_dict(CATALOG.get("qwen3-next-80b-a3b-thinking"))
    assert nxt["model_type"] == "qwen3_next" and nxt["architectures"] == ["Qwen3NextForCausalLM"]
    assert nxt["layer_types"][:4] == ["linear_attention"] * 3 + ["full_attention"]
    assert nxt["layer_types"].count("full_attention") == 12
    moe = (nxt["num_experts"], nxt["num_experts_per_tok"], nxt["shared_expert_intermediate_size"])
    assert moe == (512, 10, 512)
    q35 = hf_config_dict(CATALOG.get("qwen3.5-27b"))
    assert q35["architectures"] == ["Qwen3_5ForCausalLM"] and q35["attn_output_gate"] is True
    assert (q35["linear_num_value_heads"], q35["head_dim"], q35["vocab_size"]) == (48, 256, 248320)
    assert hf_config_dict(CATALOG.get("qwq-32b"))["rms_norm_eps"] == 1e-5


@pytest.mark.parametrize(
    "model_id", ["qwen2-vl-7b-instruct", "qwen2-audio-7b-instruct", "qwen-7b-chat", "qwen3-vl-8b-instruct",
                 "qwen2.5-omni-7b"],
)
def test_models_that_cannot_be_built_say_why(model_id: str) -> None:
    with pytest.raises(UsageError, match=model_id):
        hf_config_dict(CATALOG.get(model_id))


def test_bad_overrides_are_usage_errors() -> None:
    v = CATALOG.get("qwen3-0.6b")
    with pytest.raises(UsageError, match="unknown architecture override"):
        hf_config_dict(v, num_layers=2)
    with pytest.raises(UsageError, match="q/k norm"):
        hf_config_dict(v, qk_norm=False)
    with pytest.raises(UsageError, match="multiple of num_kv_heads"):
        hf_config_dict(v, num_attention_heads=5)
    with pytest.raises(UsageError, match="shared expert"):
        hf_config_dict(CATALOG.get("qwen3-30b-a3b"), shared_expert_intermediate_size=64)
    nxt = CATALOG.get("qwen3-next-80b-a3b-thinking")
    with pytest.raises(UsageError, match="always has a shared expert"):
        hf_config_dict(nxt, shared_expert_intermediate_size=0)
    with pytest.raises(UsageError, match="gated attention"):
        hf_config_dict(nxt, attn_output_gate=False)
    with pytest.raises(UsageError, match="neither linear attention nor gated attention"):
        hf_config_dict(v, attn_output_gate=True)
    with pytest.raises(UsageError, match="linear_num_key_heads must be positive"):
        hf_config_dict(v, full_attention_interval=4)
