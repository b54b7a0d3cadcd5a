"""The catalog's architecture numbers against transformers' own modules (litgpt style).

Shrunk copies of real entries are built for real on CPU and run; every buildable entry is also
built full size on the ``meta`` device (no memory), and the multimodal entries are built as the
composite transformers models from the catalog's encoder numbers. In every case the number of
parameters transformers allocates must equal ``Architecture.parameter_count()`` exactly.
"""

from __future__ import annotations

import sys
from importlib import resources
from typing import Any

import pytest
import torch
import transformers

from qwenkit.catalog import Specialisation, Variant, load_catalog
from qwenkit.catalog.hf_config import hf_config_dict, hf_model_type
from qwenkit.errors import UsageError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

CATALOG = load_catalog()
TINY = {"layers": 2, "hidden_size": 64, "num_attention_heads": 4, "num_kv_heads": 2, "head_dim": 16,
        "intermediate_size": 128, "vocab_size": 512}
SHRUNK = {
    "qwen2.5-0.5b-instruct": TINY,
    "qwen3-0.6b": TINY,
    "qwen3-30b-a3b": {**TINY, "num_experts": 8, "num_active_experts": 2, "moe_intermediate_size": 32},
    "qwen2-57b-a14b-instruct": {
        **TINY, "num_experts": 4, "num_active_experts": 2, "moe_intermediate_size": 32,
        "shared_expert_intermediate_size": 64,
    },
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
    assert n_params(model) == v.arch.shrunk(**overrides).parameter_count()
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
    assert n_params(model) == v.arch.parameter_count()


def _encoder_presets() -> dict[str, dict[str, Any]]:
    """Model id -> its encoder's config numbers, read from the data files as the loader reads them."""
    out = {}
    folder = resources.files("qwenkit.catalog").joinpath("data")
    for path in folder.iterdir():
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
        for entry in raw.get("model", []):
            if "encoder" in entry:
                out[entry["id"]] = dict(raw["encoders"][entry["encoder"]])
    return out


def _text_config(v: Variant) -> dict[str, Any]:
    a = v.arch
    return {"model_type": "qwen2", "vocab_size": a.vocab_size, "hidden_size": a.hidden_size,
            "intermediate_size": a.intermediate_size, "num_hidden_layers": a.layers,
            "num_attention_heads": a.num_attention_heads, "num_key_value_heads": a.num_kv_heads,
            "tie_word_embeddings": a.tied_embeddings}


def _composite(v: Variant, enc: dict[str, Any]) -> Any:
    kind, text, hidden = enc.pop("kind"), _text_config(v), v.arch.hidden_size
    if kind == "qwen2-vl-vision":
        cfg = transformers.Qwen2VLConfig(text_config=text, vision_config={**enc, "hidden_size": hidden},
                                         tie_word_embeddings=v.arch.tied_embeddings)
        return transformers.Qwen2VLForConditionalGeneration, cfg
    if kind == "qwen2.5-vl-vision":
        vision = {**enc, "out_hidden_size": hidden}
        cfg = transformers.Qwen2_5_VLConfig(
            text_config=text, vision_config=vision, tie_word_embeddings=v.arch.tied_embeddings
        )
        return transformers.Qwen2_5_VLForConditionalGeneration, cfg
    if kind == "whisper-audio":
        cfg = transformers.Qwen2AudioConfig(text_config=text, audio_config=enc)
        return transformers.Qwen2AudioForConditionalGeneration, cfg
    raise AssertionError(f"no transformers class for encoder kind {kind}")


MULTIMODAL = [v for v in CATALOG.all() if v.specialisation in (Specialisation.VL, Specialisation.AUDIO)]


@pytest.mark.parametrize("v", MULTIMODAL, ids=lambda v: v.id)
def test_multimodal_model_matches_parameter_count(v: Variant) -> None:
    cls, cfg = _composite(v, _encoder_presets()[v.id])
    with torch.device("meta"):
        model = cls._from_config(cfg)
    assert n_params(model) == v.arch.parameter_count()


def test_config_carries_the_real_config_fields() -> None:
    qwen3 = hf_config_dict(CATALOG.get("qwen3-30b-a3b"))
    assert qwen3["model_type"] == "qwen3_moe" and qwen3["architectures"] == ["Qwen3MoeForCausalLM"]
    assert (qwen3["head_dim"], qwen3["attention_bias"], qwen3["norm_topk_prob"]) == (128, False, True)
    assert (qwen3["bos_token_id"], qwen3["eos_token_id"], qwen3["rope_theta"]) == (151643, 151645, 1e6)
    base = hf_config_dict(CATALOG.get("qwen2.5-7b"))
    assert (base["model_type"], base["eos_token_id"], base["tie_word_embeddings"]) == ("qwen2", 151643, False)
    assert hf_config_dict(CATALOG.get("qwen1.5-moe-a2.7b"))["shared_expert_intermediate_size"] == 5632
    assert hf_config_dict(CATALOG.get("qwen2.5-math-7b-instruct"))["rope_theta"] == 10000.0


@pytest.mark.parametrize("model_id", ["qwen2-vl-7b-instruct", "qwen2-audio-7b-instruct", "qwen-7b-chat"])
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
