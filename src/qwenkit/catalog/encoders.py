"""Parameter counts of the vision and audio towers of Qwen's multimodal models.

The catalog stores the numbers of a model's ``vision_config`` / ``audio_config`` (as in its
config.json) and derives ``Architecture.encoder_params`` from them here, so that the count is
reproducible rather than a magic number. Each counter mirrors the module layout of the
reference implementation and counts every weight and bias, including the projector that maps
the tower's output into the language model's hidden size (``text_hidden``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from qwenkit.errors import UsageError


def _linear(n_in: int, n_out: int, bias: bool = True) -> int:
    return n_in * n_out + (n_out if bias else 0)


def _patch_merger(embed_dim: int, spatial_merge_size: int, text_hidden: int, norm_params: int) -> int:
    """Norm over each patch, then an MLP over 2x2 merged patches into the LLM's hidden size."""
    merged = embed_dim * spatial_merge_size**2
    return norm_params + _linear(merged, merged) + _linear(merged, text_hidden)


def _patch_embed(in_channels: int, temporal_patch_size: int, patch_size: int, embed_dim: int) -> int:
    """Conv3d without bias over (temporal, patch, patch) cubes."""
    return in_channels * temporal_patch_size * patch_size * patch_size * embed_dim


def qwen2_vl_vision(
    *,
    text_hidden: int,
    embed_dim: int,
    depth: int,
    mlp_ratio: int,
    in_channels: int = 3,
    patch_size: int = 14,
    temporal_patch_size: int = 2,
    spatial_merge_size: int = 2,
) -> int:
    """Qwen2-VL ViT: LayerNorm (weight+bias), fused qkv with bias, GELU MLP with bias."""
    hidden = embed_dim * mlp_ratio
    block = (
        2 * 2 * embed_dim  # norm1, norm2
        + _linear(embed_dim, 3 * embed_dim)  # qkv
        + _linear(embed_dim, embed_dim)  # proj
        + _linear(embed_dim, hidden)  # fc1
        + _linear(hidden, embed_dim)  # fc2
    )
    return (
        _patch_embed(in_channels, temporal_patch_size, patch_size, embed_dim)
        + depth * block
        + _patch_merger(embed_dim, spatial_merge_size, text_hidden, norm_params=2 * embed_dim)
    )


def qwen2_5_vl_vision(
    *,
    text_hidden: int,
    hidden_size: int,
    depth: int,
    intermediate_size: int,
    in_channels: int = 3,
    patch_size: int = 14,
    temporal_patch_size: int = 2,
    spatial_merge_size: int = 2,
) -> int:
    """Qwen2.5-VL ViT: RMSNorm (weight only), fused qkv with bias, SwiGLU MLP with bias."""
    block = (
        2 * hidden_size  # norm1, norm2
        + _linear(hidden_size, 3 * hidden_size)
        + _linear(hidden_size, hidden_size)
        + 2 * _linear(hidden_size, intermediate_size)  # gate, up
        + _linear(intermediate_size, hidden_size)  # down
    )
    return (
        _patch_embed(in_channels, temporal_patch_size, patch_size, hidden_size)
        + depth * block
        + _patch_merger(hidden_size, spatial_merge_size, text_hidden, norm_params=hidden_size)
    )


def qwen3_vl_vision(
    *,
    text_hidden: int,
    hidden_size: int,
    depth: int,
    intermediate_size: int,
    num_position_embeddings: int,
    deepstack_visual_indexes: Sequence[int] = (),
    in_channels: int = 3,
    patch_size: int = 16,
    temporal_patch_size: int = 2,
    spatial_merge_size: int = 2,
) -> int:
    """Qwen3-VL / Qwen3.5 ViT: Conv3d with bias, learned position table, LayerNorm blocks with a fused
    qkv and a GELU MLP (all with bias); the 2x2 merger (LayerNorm before merging) and one more merger
    per DeepStack layer (LayerNorm over the merged features), each projecting into the LLM."""
    block = (
        2 * 2 * hidden_size  # norm1, norm2 (weight + bias)
        + _linear(hidden_size, 3 * hidden_size)
        + _linear(hidden_size, hidden_size)
        + _linear(hidden_size, intermediate_size)
        + _linear(intermediate_size, hidden_size)
    )
    merged = hidden_size * spatial_merge_size**2
    merger = _patch_merger(hidden_size, spatial_merge_size, text_hidden, norm_params=2 * hidden_size)
    deepstack = _patch_merger(hidden_size, spatial_merge_size, text_hidden, norm_params=2 * merged)
    return (
        _patch_embed(in_channels, temporal_patch_size, patch_size, hidden_size)
        + hidden_size  # patch_embed bias
        + num_position_embeddings * hidden_size
        + depth * block
        + merger
        + len(deepstack_visual_indexes) * deepstack
    )


def _whisper_layer(d_model: int, ffn_dim: int) -> int:
    """Pre-LN Whisper encoder layer: attention (k_proj without bias), GELU MLP, two LayerNorms."""
    attention = _linear(d_model, d_model, bias=False) + 3 * _linear(d_model, d_model)
    mlp = _linear(d_model, ffn_dim) + _linear(ffn_dim, d_model)
    return attention + mlp + 2 * 2 * d_model


def _whisper_convs(num_mel_bins: int, d_model: int) -> int:
    """Two Conv1d with kernel 3 and bias over the mel spectrogram."""
    return _linear(num_mel_bins * 3, d_model) + _linear(d_model * 3, d_model)


def whisper_audio(
    *,
    text_hidden: int,
    d_model: int,
    encoder_layers: int,
    encoder_ffn_dim: int,
    num_mel_bins: int,
    max_source_positions: int,
) -> int:
    """Qwen2-Audio's Whisper-large-v3 encoder plus its linear projector.

    Two Conv1d, a learned position table, the encoder layers, a final LayerNorm; then
    Linear(d_model, text_hidden).
    """
    encoder = (
        _whisper_convs(num_mel_bins, d_model)
        + max_source_positions * d_model
        + encoder_layers * _whisper_layer(d_model, encoder_ffn_dim)
        + 2 * d_model
    )
    return encoder + _linear(d_model, text_hidden)


def qwen2_5_omni_audio(
    *, text_hidden: int, d_model: int, encoder_layers: int, encoder_ffn_dim: int, num_mel_bins: int
) -> int:
    """Qwen2.5-Omni's audio tower: Whisper convs and layers with sinusoidal (unlearned) positions,
    an audio BOS/EOS embedding in the LLM's width, ``ln_post`` and a projection into the LLM."""
    return (
        _whisper_convs(num_mel_bins, d_model)
        + 2 * text_hidden  # audio_bos_eos_token
        + encoder_layers * _whisper_layer(d_model, encoder_ffn_dim)
        + 2 * d_model  # ln_post
        + _linear(d_model, text_hidden)
    )


@dataclass(frozen=True)
class EncoderKind:
    count: Callable[..., int]
    keys: frozenset[str]  # the config.json numbers the counter takes (text_hidden comes from the LLM)


ENCODER_KINDS: Mapping[str, EncoderKind] = {
    "qwen2-vl-vision": EncoderKind(
        qwen2_vl_vision,
        frozenset(
            {"embed_dim", "depth", "mlp_ratio", "in_channels", "patch_size", "temporal_patch_size",
             "spatial_merge_size"}
        ),
    ),
    "qwen2.5-vl-vision": EncoderKind(
        qwen2_5_vl_vision,
        frozenset(
            {"hidden_size", "depth", "intermediate_size", "in_channels", "patch_size",
             "temporal_patch_size", "spatial_merge_size"}
        ),
    ),
    "qwen3-vl-vision": EncoderKind(
        qwen3_vl_vision,
        frozenset(
            {"hidden_size", "depth", "intermediate_size", "num_position_embeddings",
             "deepstack_visual_indexes", "in_channels", "patch_size", "temporal_patch_size",
             "spatial_merge_size"}
        ),
    ),
    "whisper-audio": EncoderKind(
        whisper_audio,
        frozenset(
            {"d_model", "encoder_layers", "encoder_ffn_dim", "num_mel_bins", "max_source_positions"}
        ),
    ),
    "qwen2.5-omni-audio": EncoderKind(
        qwen2_5_omni_audio, frozenset({"d_model", "encoder_layers", "encoder_ffn_dim", "num_mel_bins"})
    ),
}


def encoder_params(kind: str, numbers: Mapping[str, Any], text_hidden: int) -> int:
    """Count an encoder from its config numbers; unknown kinds or keys are a data error."""
    spec = ENCODER_KINDS.get(kind)
    if spec is None:
        raise UsageError(f"unknown encoder kind {kind!r} (known: {', '.join(sorted(ENCODER_KINDS))})")
    unknown = set(numbers) - spec.keys
    if unknown:
        raise UsageError(f"encoder {kind!r}: unknown keys {sorted(unknown)} (known: {sorted(spec.keys)})")
    try:
        return int(spec.count(text_hidden=text_hidden, **numbers))
    except TypeError as exc:  # a required number is missing
        raise UsageError(f"encoder {kind!r}: {exc}") from None
