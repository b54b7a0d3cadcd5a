"""A transformers ``config.json`` for a Qwen2-VL or Qwen2.5-VL catalog entry, full size or shrunk.

The language model's numbers come from the entry's architecture (as for text models), the vision
tower's from its ``[encoders.*]`` preset; the rest are facts of the released configs: 16 vision
heads, Qwen2.5-VL's 112-pixel attention windows with full attention in every eighth block
(``fullatt_block_indexes`` 7, 15, 23, 31), M-RoPE sections [16, 24, 24] of a 128-wide head, and the
vision token ids. Shrunk models keep the rules: sections scaled to the head, full attention in every
eighth block or else the last one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from qwenkit.catalog.hf_config import hf_config_dict
from qwenkit.catalog.schema import Generation, Specialisation, Variant, VisionTower
from qwenkit.errors import UsageError

VISION_HEADS = 16
WINDOW_SIZE = 112
FULL_ATTENTION_EVERY = 8
VISION_TOKEN_IDS = {
    "vision_start_token_id": 151652,
    "vision_end_token_id": 151653,
    "image_token_id": 151655,
    "video_token_id": 151656,
}
# (transformers model_type, architecture, text model_type) by vision tower kind
VL_MODEL_TYPES: Mapping[str, tuple[str, str, str]] = {
    "qwen2.5-vl-vision": ("qwen2_5_vl", "Qwen2_5_VLForConditionalGeneration", "qwen2_5_vl_text"),
    "qwen2-vl-vision": ("qwen2_vl", "Qwen2VLForConditionalGeneration", "qwen2_vl_text"),
}


def mrope_section(head_dim: int) -> list[int]:
    """Temporal, height and width rotary sections: [16, 24, 24] of 64 rotary pairs, scaled."""
    if head_dim % 16:
        raise UsageError(f"an M-RoPE head needs a width divisible by 16, got {head_dim}")
    pairs = head_dim // 2
    return [pairs // 4, pairs * 3 // 8, pairs * 3 // 8]


def _vision_config(tower: VisionTower, text_hidden: int, heads: int) -> dict[str, Any]:
    if tower.hidden_size % heads:
        raise UsageError(f"vision hidden_size {tower.hidden_size} is not a multiple of {heads} heads")
    common = {
        "depth": tower.depth,
        "num_heads": heads,
        "in_channels": tower.in_channels,
        "patch_size": tower.patch_size,
        "spatial_merge_size": tower.spatial_merge_size,
        "temporal_patch_size": tower.temporal_patch_size,
    }
    if tower.kind == "qwen2-vl-vision":
        if tower.intermediate_size % tower.hidden_size:
            raise UsageError("Qwen2-VL's vision MLP is a whole multiple (mlp_ratio) of its width")
        return {**common, "embed_dim": tower.hidden_size, "hidden_size": text_hidden,
                "mlp_ratio": tower.intermediate_size // tower.hidden_size, "hidden_act": "quick_gelu"}
    full = [i for i in range(tower.depth) if (i + 1) % FULL_ATTENTION_EVERY == 0] or [tower.depth - 1]
    return {**common, "hidden_size": tower.hidden_size, "intermediate_size": tower.intermediate_size,
            "out_hidden_size": text_hidden, "hidden_act": "silu", "window_size": WINDOW_SIZE,
            "fullatt_block_indexes": full, "tokens_per_second": 2}


def hf_vl_config_dict(variant: Variant, vision: Mapping[str, int] | None = None,
                      vision_heads: int = VISION_HEADS, **arch_overrides: Any) -> dict[str, Any]:
    """config.json of a Qwen2-VL / Qwen2.5-VL entry; ``vision`` and ``arch_overrides`` shrink it."""
    tower = variant.arch.vision
    if variant.specialisation is not Specialisation.VL or tower is None or tower.kind not in VL_MODEL_TYPES:
        raise UsageError(f"{variant.id} is not a Qwen2-VL or Qwen2.5-VL model; no VL config is built")
    if variant.generation not in (Generation.QWEN2, Generation.QWEN2_5):
        raise UsageError(f"{variant.id}: only Qwen2-VL and Qwen2.5-VL configs are built")
    if vision:
        try:
            tower = tower.shrunk(**vision)
        except TypeError as exc:
            raise UsageError(f"unknown vision override ({exc})") from None
    text_variant = _as_text(variant)
    text = hf_config_dict(text_variant, **arch_overrides)
    model_type, architecture, text_type = VL_MODEL_TYPES[tower.kind]
    for key in ("architectures", "use_sliding_window", "sliding_window", "max_window_layers"):
        text.pop(key, None)
    rope = {"type": "mrope", "mrope_section": mrope_section(text["head_dim"])}
    text.update(model_type=text_type, rope_scaling=rope)
    return {
        "architectures": [architecture],
        "model_type": model_type,
        "text_config": text,
        "vision_config": _vision_config(tower, text["hidden_size"], vision_heads),
        "tie_word_embeddings": text["tie_word_embeddings"],
        **VISION_TOKEN_IDS,
    }


def _as_text(variant: Variant) -> Variant:
    """The entry seen as its language model, so the text builder takes its numbers."""
    return dataclasses.replace(variant, specialisation=Specialisation.GENERAL)
