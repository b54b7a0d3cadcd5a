"""A transformers ``config.json`` for a catalog text model, from its architecture numbers.

Used to build randomly initialised models of a real variant's shape (shrunk for tests) and to
check that the catalog's numbers and parameter formula agree with transformers' own modules.
Only the text families transformers implements natively are covered: ``qwen2`` (Qwen1.5, Qwen2,
Qwen2.5 incl. Coder/Math, QwQ), ``qwen2_moe``, ``qwen3``, ``qwen3_moe`` (incl. 2507 and Coder),
``qwen3_next`` and, for Qwen3.5, its language model alone (``qwen3_5_text`` / ``qwen3_5_moe_text``,
what ``vllm serve --language-model-only`` runs). Qwen 1.0 needs remote code and VL/Audio/Omni models
are composite, so asking for those is a UsageError.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from qwenkit.catalog.schema import Architecture, Generation, Specialisation, Variant
from qwenkit.errors import UsageError

BOS_TOKEN_ID = 151643  # <|endoftext|>: also the end of a base model's document
EOS_TOKEN_ID = 151645  # <|im_end|>: the end of a chat turn


def _no_moe_fields(arch: Architecture) -> dict[str, Any]:
    if arch.is_moe:
        raise UsageError("a dense model_type cannot hold an MoE architecture")
    return {}


def _softmax_only(arch: Architecture) -> None:
    if arch.is_hybrid or arch.attn_output_gate:
        raise UsageError("this model_type has neither linear attention nor gated attention")


def _qwen2(arch: Architecture) -> dict[str, Any]:
    _softmax_only(arch)
    if not arch.qkv_bias or arch.qk_norm:
        raise UsageError("model_type qwen2 always has q/k/v bias and no q/k norm")
    return _no_moe_fields(arch)


def _qk_norm_attention(arch: Architecture) -> dict[str, Any]:
    if not arch.qk_norm:
        raise UsageError("model_types qwen3, qwen3_moe, qwen3_next and qwen3_5 always have q/k norm")
    return {"attention_bias": arch.qkv_bias}


def _qwen3(arch: Architecture) -> dict[str, Any]:
    _softmax_only(arch)
    return {**_qk_norm_attention(arch), **_no_moe_fields(arch)}


def _moe_common(arch: Architecture) -> dict[str, Any]:
    if not arch.is_moe:
        raise UsageError("an MoE model_type needs num_experts > 0")
    return {
        "decoder_sparse_step": 1,
        "mlp_only_layers": [],
        "num_experts": arch.num_experts,
        "num_experts_per_tok": arch.num_active_experts,
        "moe_intermediate_size": arch.moe_intermediate_size,
        "output_router_logits": False,
        "router_aux_loss_coef": 0.001,
    }


def _qwen2_moe(arch: Architecture) -> dict[str, Any]:
    _softmax_only(arch)
    if not arch.qkv_bias or arch.qk_norm:
        raise UsageError("model_type qwen2_moe always has q/k/v bias and no q/k norm")
    if arch.shared_expert_intermediate_size <= 0:
        raise UsageError("model_type qwen2_moe always has a shared expert")
    return {
        **_moe_common(arch),
        "shared_expert_intermediate_size": arch.shared_expert_intermediate_size,
        "norm_topk_prob": False,
    }


def _qwen3_moe(arch: Architecture) -> dict[str, Any]:
    _softmax_only(arch)
    if arch.shared_expert_intermediate_size:
        raise UsageError("model_type qwen3_moe has no shared expert")
    return {**_qk_norm_attention(arch), **_moe_common(arch), "norm_topk_prob": True}


def _hybrid(arch: Architecture) -> dict[str, Any]:
    """Gated DeltaNet + gated attention: transformers takes the layer layout as ``layer_types``."""
    if not (arch.is_hybrid and arch.attn_output_gate):
        raise UsageError("model_types qwen3_next and qwen3_5 are hybrid, with gated attention")
    layer_types = [
        "full_attention" if arch.is_full_attention(i) else "linear_attention" for i in range(arch.layers)
    ]
    return {
        **_qk_norm_attention(arch),
        "layer_types": layer_types,
        "full_attention_interval": arch.full_attention_interval,
        "linear_num_key_heads": arch.linear_num_key_heads,
        "linear_num_value_heads": arch.linear_num_value_heads,
        "linear_key_head_dim": arch.linear_key_head_dim,
        "linear_value_head_dim": arch.linear_value_head_dim,
        "linear_conv_kernel_dim": arch.linear_conv_kernel_dim,
    }


def _shared_expert_moe(arch: Architecture, model_type: str) -> dict[str, Any]:
    if arch.shared_expert_intermediate_size <= 0:
        raise UsageError(f"model_type {model_type} always has a shared expert")
    return {
        **_moe_common(arch),
        "shared_expert_intermediate_size": arch.shared_expert_intermediate_size,
        "norm_topk_prob": True,
    }


def _qwen3_next(arch: Architecture) -> dict[str, Any]:
    return {**_hybrid(arch), **_shared_expert_moe(arch, "qwen3_next")}


def _qwen3_5_text(arch: Architecture) -> dict[str, Any]:
    return {**_hybrid(arch), **_no_moe_fields(arch), "attn_output_gate": True}


def _qwen3_5_moe_text(arch: Architecture) -> dict[str, Any]:
    return {**_hybrid(arch), **_shared_expert_moe(arch, "qwen3_5_moe_text"), "attn_output_gate": True}


@dataclass(frozen=True)
class HfModelType:
    model_type: str
    architecture: str
    fields: Callable[[Architecture], dict[str, Any]]  # model-type specific keys; validates the shape


HF_MODEL_TYPES: Mapping[str, HfModelType] = {
    "qwen2": HfModelType("qwen2", "Qwen2ForCausalLM", _qwen2),
    "qwen2_moe": HfModelType("qwen2_moe", "Qwen2MoeForCausalLM", _qwen2_moe),
    "qwen3": HfModelType("qwen3", "Qwen3ForCausalLM", _qwen3),
    "qwen3_moe": HfModelType("qwen3_moe", "Qwen3MoeForCausalLM", _qwen3_moe),
    "qwen3_next": HfModelType("qwen3_next", "Qwen3NextForCausalLM", _qwen3_next),
    "qwen3_5_text": HfModelType("qwen3_5_text", "Qwen3_5ForCausalLM", _qwen3_5_text),
    "qwen3_5_moe_text": HfModelType("qwen3_5_moe_text", "Qwen3_5MoeForCausalLM", _qwen3_5_moe_text),
}

# (generation, is MoE, is hybrid) -> model_type
_TEXT_MODEL_TYPES: Mapping[tuple[Generation, bool, bool], str] = {
    (Generation.QWEN1_5, False, False): "qwen2",
    (Generation.QWEN1_5, True, False): "qwen2_moe",
    (Generation.QWEN2, False, False): "qwen2",
    (Generation.QWEN2, True, False): "qwen2_moe",
    (Generation.QWEN2_5, False, False): "qwen2",
    (Generation.QWEN3, False, False): "qwen3",
    (Generation.QWEN3, True, False): "qwen3_moe",
    (Generation.QWEN3, True, True): "qwen3_next",
    (Generation.QWEN3_5, False, True): "qwen3_5_text",
    (Generation.QWEN3_5, True, True): "qwen3_5_moe_text",
}
_COMPOSITE = (Specialisation.VL, Specialisation.AUDIO, Specialisation.OMNI)


def hf_model_type(variant: Variant) -> HfModelType:
    """The transformers model type that builds this variant, or a UsageError saying why none does."""
    if variant.specialisation in _COMPOSITE:
        raise UsageError(
            f"{variant.id} is a {variant.specialisation.value} model; only text models can be built "
            "from the catalog"
        )
    name = _TEXT_MODEL_TYPES.get((variant.generation, variant.is_moe, variant.arch.is_hybrid))
    if name is None and variant.generation is Generation.QWEN1:
        raise UsageError(
            f"{variant.id}: Qwen {variant.generation.value} needs the model's own remote code "
            "(model_type 'qwen'); it cannot be built from the catalog"
        )
    if name is None:
        raise UsageError(f"{variant.id}: transformers has no model_type for this architecture")
    return HF_MODEL_TYPES[name]


def hf_config_dict(variant: Variant, **arch_overrides: Any) -> dict[str, Any]:
    """config.json for ``variant``, with architecture numbers optionally replaced (e.g. shrunk).

    max_position_embeddings is the native context (Qwen3's own configs say 40960: 32K of prompt
    plus 8K of output); no rope_scaling is set, as in the released configs.
    """
    try:
        arch = variant.arch.shrunk(**arch_overrides) if arch_overrides else variant.arch
    except TypeError as exc:
        known = ", ".join(f.name for f in dataclasses.fields(Architecture))
        raise UsageError(f"unknown architecture override ({exc}); known: {known}") from None
    spec = hf_model_type(variant)
    extra = spec.fields(arch)
    context = variant.context_native
    return {
        "architectures": [spec.architecture],
        "model_type": spec.model_type,
        "vocab_size": arch.vocab_size,
        "hidden_size": arch.hidden_size,
        "intermediate_size": arch.intermediate_size,
        "num_hidden_layers": arch.layers,
        "num_attention_heads": arch.num_attention_heads,
        "num_key_value_heads": arch.num_kv_heads,
        "head_dim": arch.head_dim,
        "hidden_act": "silu",
        "max_position_embeddings": context,
        "initializer_range": 0.02,
        "rms_norm_eps": arch.rms_norm_eps,
        "use_cache": True,
        "tie_word_embeddings": arch.tied_embeddings,
        "rope_theta": arch.rope_theta,
        "rope_scaling": None,
        "attention_dropout": 0.0,
        "use_sliding_window": False,
        "sliding_window": context,
        "max_window_layers": arch.layers,
        "bos_token_id": BOS_TOKEN_ID,
        "eos_token_id": EOS_TOKEN_ID if variant.instruct else BOS_TOKEN_ID,
        "torch_dtype": "bfloat16",
        **extra,
    }
