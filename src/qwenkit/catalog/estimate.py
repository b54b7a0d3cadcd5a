"""Memory and decode-speed estimates from a variant's architecture numbers.

memory = weights + KV cache + runtime overhead. Weights are counted tensor by tensor (see
``quant``), or taken from a real file when one is known. Decode speed = memory bandwidth / bytes
read per generated token: every weight except the embedding table (one row is gathered), only the
active experts of an MoE, plus the KV cache filled so far. It is a ceiling: real decode also pays
for compute and kernel launches, and on few CPU cores it is often compute-bound.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from qwenkit.catalog.quant import GGML_TYPES, Container, Quant
from qwenkit.catalog.schema import Architecture
from qwenkit.errors import UsageError

MiB = 1024**2
GiB = 1024**3

LLAMA_CPP_BATCH = 512  # n_batch / n_ubatch of llama.cpp and llama-cpp-python by default


@dataclass(frozen=True)
class TensorSpec:
    """One weight tensor as a GGUF file stores it; ``ne0`` is the row length (0 for 1-D)."""

    kind: str
    layer: int  # -1 outside the transformer blocks
    n_elements: int
    ne0: int
    group: str  # "embedding", "output", "block", "expert", "router", "encoder"

    @property
    def is_matrix(self) -> bool:
        return self.ne0 > 0 and self.group in ("embedding", "output", "block", "expert")


def _attention_tensors(arch: Architecture, i: int) -> Iterator[TensorSpec]:
    h, q, kv = arch.hidden_size, arch.num_attention_heads * arch.head_dim, arch.num_kv_heads * arch.head_dim
    q_out = 2 * q if arch.attn_output_gate else q  # gated attention: q_proj also yields the gate
    yield TensorSpec("attn_q", i, h * q_out, h, "block")
    yield TensorSpec("attn_k", i, h * kv, h, "block")
    yield TensorSpec("attn_v", i, h * kv, h, "block")
    yield TensorSpec("attn_output", i, q * h, q, "block")
    if arch.qkv_bias:
        yield TensorSpec("attn_qkv_bias", i, q_out + 2 * kv, 0, "block")
    if arch.qk_norm:
        yield TensorSpec("attn_qk_norm", i, 2 * arch.head_dim, 0, "block")


def _linear_attention_tensors(arch: Architecture, i: int) -> Iterator[TensorSpec]:
    """Gated DeltaNet. llama.cpp keeps the conv kernel, A, dt and the norm in f32 (1-D here)."""
    h, heads = arch.hidden_size, arch.linear_num_value_heads
    key = arch.linear_num_key_heads * arch.linear_key_head_dim
    value = heads * arch.linear_value_head_dim
    yield TensorSpec("ssm_in", i, h * (2 * key + 2 * value + 2 * heads), h, "block")
    yield TensorSpec("ssm_conv1d", i, (2 * key + value) * arch.linear_conv_kernel_dim, 0, "block")
    yield TensorSpec("ssm_a_dt", i, 2 * heads, 0, "block")
    yield TensorSpec("ssm_norm", i, arch.linear_value_head_dim, 0, "block")
    yield TensorSpec("ssm_out", i, value * h, value, "block")


def _mlp_tensors(arch: Architecture, i: int) -> Iterator[TensorSpec]:
    h = arch.hidden_size
    if not arch.is_moe:
        inter = arch.intermediate_size
        yield TensorSpec("ffn_gate", i, h * inter, h, "block")
        yield TensorSpec("ffn_up", i, h * inter, h, "block")
        yield TensorSpec("ffn_down", i, inter * h, inter, "block")
        return
    experts, inter = arch.num_experts, arch.moe_intermediate_size
    yield TensorSpec("ffn_gate_inp", i, h * experts, h, "router")
    yield TensorSpec("ffn_gate_exps", i, experts * h * inter, h, "expert")
    yield TensorSpec("ffn_up_exps", i, experts * h * inter, h, "expert")
    yield TensorSpec("ffn_down_exps", i, experts * inter * h, inter, "expert")
    shared = arch.shared_expert_intermediate_size
    if shared:
        yield TensorSpec("ffn_gate_inp_shexp", i, h, 0, "router")
        yield TensorSpec("ffn_gate_shexp", i, h * shared, h, "block")
        yield TensorSpec("ffn_up_shexp", i, h * shared, h, "block")
        yield TensorSpec("ffn_down_shexp", i, shared * h, shared, "block")


def _layer_tensors(arch: Architecture, i: int) -> Iterator[TensorSpec]:
    yield TensorSpec("attn_norm", i, arch.hidden_size, 0, "block")
    yield TensorSpec("ffn_norm", i, arch.hidden_size, 0, "block")
    mixer = _attention_tensors if arch.is_full_attention(i) else _linear_attention_tensors
    yield from mixer(arch, i)
    yield from _mlp_tensors(arch, i)


def tensor_specs(arch: Architecture, *, separate_output: bool | None = None) -> list[TensorSpec]:
    """Every weight of the model; their sizes add up to ``arch.parameter_count()``.

    ``separate_output``: store an output matrix even when the embeddings are tied (Qwen's own
    GGUF files do: token_embd and output.weight are both in the file).
    """
    h = arch.hidden_size
    specs = [TensorSpec("token_embd", -1, arch.vocab_size * h, h, "embedding")]
    if separate_output if separate_output is not None else not arch.tied_embeddings:
        specs.append(TensorSpec("output", -1, arch.vocab_size * h, h, "output"))
    specs.append(TensorSpec("output_norm", -1, h, 0, "block"))
    for i in range(arch.layers):
        specs.extend(_layer_tensors(arch, i))
    if arch.encoder_params:
        specs.append(TensorSpec("encoder", -1, arch.encoder_params, 0, "encoder"))
    return specs


@dataclass(frozen=True)
class WeightBytes:
    """Weight bytes by what a decode step reads of them."""

    embedding: int  # token_embd: one row gathered per token
    output: int  # a separate lm_head / output.weight (0 when it is the tied embedding)
    blocks: int  # attention, dense MLP, norms, routers, shared experts: read whole
    experts: int  # all routed experts; a token reads num_active / num_experts of them
    encoder: int  # vision / audio tower: not read while decoding text
    tied_output: bool  # lm_head reads the embedding table

    @property
    def total(self) -> int:
        return self.embedding + self.output + self.blocks + self.experts + self.encoder

    def read_per_token(self, active_expert_fraction: float) -> float:
        head = self.embedding if self.tied_output else self.output
        return head + self.blocks + self.experts * active_expert_fraction


def _gguf_bytes(spec: TensorSpec, quant: Quant, n_layers: int, embedding_is_output: bool) -> int:
    if spec.group == "encoder":
        return GGML_TYPES["F16"].nbytes(spec.n_elements)  # mmproj files are kept in f16
    if not spec.is_matrix or quant.recipe is None:
        return GGML_TYPES["F32"].nbytes(spec.n_elements)  # norms, biases and routers stay f32
    # a tied table stored once is quantized with the output's rule (llama.cpp: !has_output)
    kind = "output" if spec.kind == "token_embd" and embedding_is_output else spec.kind
    return quant.recipe.tensor_type(kind, spec.ne0, spec.layer, n_layers).nbytes(spec.n_elements)


def _hf_bytes(spec: TensorSpec, quant: Quant) -> int:
    quantized = spec.is_matrix and spec.group in ("block", "expert")  # embeddings / lm_head stay 16-bit
    bits = quant.linear_bits if quantized else 16.0
    return round(spec.n_elements * bits / 8)


def weight_bytes(arch: Architecture, quant: Quant, *, tied_output_copy: bool = True) -> WeightBytes:
    """Bytes of every weight in ``quant``, by group (tensor by tensor, llama.cpp's rules for GGUF).

    ``tied_output_copy`` (GGUF, tied embeddings only): the file stores output.weight as well as
    token_embd, as Qwen's own Qwen1.5/2/2.5 GGUF files do; current llama.cpp conversions (and
    Qwen3's files) store the table once, quantized like an output matrix.
    """
    gguf = quant.container is Container.GGUF
    separate = gguf and (tied_output_copy or not arch.tied_embeddings)
    embedding_is_output = gguf and arch.tied_embeddings and not tied_output_copy
    specs = tensor_specs(arch, separate_output=separate if gguf else None)
    groups: dict[str, int] = {"embedding": 0, "output": 0, "block": 0, "router": 0, "expert": 0, "encoder": 0}
    for spec in specs:
        groups[spec.group] += (
            _gguf_bytes(spec, quant, arch.layers, embedding_is_output) if gguf else _hf_bytes(spec, quant)
        )
    return WeightBytes(
        embedding=groups["embedding"],
        output=groups["output"],
        blocks=groups["block"] + groups["router"],
        experts=groups["expert"],
        encoder=groups["encoder"],
        tied_output=groups["output"] == 0,
    )


def kv_cache_bytes(arch: Architecture, context: int, parallel: int = 1, bytes_per_value: float = 2.0) -> int:
    """K and V for ``parallel`` sequences of ``context`` tokens (2 x full-attention layers x kv heads x
    head dim x bytes per token), plus, for a hybrid model, each sequence's fixed linear-attention state."""
    growing = arch.kv_bytes_per_token(bytes_per_value) * context * parallel
    return int(growing + arch.recurrent_state_bytes() * parallel)


@dataclass(frozen=True)
class RuntimeCost:
    """What a runtime needs besides weights and KV: ``overhead`` stays resident once the model is
    loaded; ``scratch`` is touched only while a prompt is prefilled and then stays resident too
    (freed pages of the compute buffer are not returned to the OS)."""

    overhead: int
    scratch: int


OverheadModel = Callable[[Architecture, int, int, bool], RuntimeCost]

# llama.cpp without flash attention (llama-cpp-python's default) materialises K*Q in f32 for every
# head of one ubatch against every cached token, then its softmax; ggml-alloc reuses part of the
# first for the second, so the measured factor is ~1.57 rather than 2 (see the calibration below).
_KQ_FACTOR = 1.57


def _llama_cpp_cost(arch: Architecture, context: int, parallel: int, flash_attention: bool) -> RuntimeCost:
    """llama.cpp on CPU, fitted to RSS measured with the real Qwen2.5-Coder-0.5B Q4_K_M file.

    Calibration (use_mmap=False, n_threads=2, llama-cpp-python 0.3.36; RSS delta of a fresh
    process around ``Llama(...)``; weights = GGUF file size 491,400,064 B):

        T=tests/integration/test_memory_estimate_realmodel.py
        python $T MODEL N_CTX          (load + a 5-token eval: "loaded")
        python $T MODEL N_CTX --fill   (then a prompt that fills the context: "filled")

        n_ctx   load+short eval   - weights - KV   | context filled   extra
          512       548.3 MB          50.6 MB      |    589.4 MB      41.2 MB
         2048       568.1 MB          51.5 MB      |    666.7 MB      98.7 MB
         4096       594.2 MB          52.5 MB      |    785.1 MB     190.9 MB
         8192       645.0 MB          53.0 MB      |       -            -

        with flash attention (python $T MODEL N_CTX --fill --flash-attn):
         2048       567.8 MB                       |    608.4 MB      40.6 MB
         4096       594.1 MB                       |    637.1 MB      43.0 MB

    So ~50 MB stays resident whatever the context (runtime, threadpool, the vocabulary's token and
    merge tables: apportioned here as 12 MiB + 256 B per vocabulary entry, ~49 MiB for Qwen), and
    prefill adds max(MLP activations of one ubatch, K*Q scores) + ~6 MB; with flash attention only
    the MLP activations.
    """
    n_ctx = context * parallel
    ubatch = min(LLAMA_CPP_BATCH, n_ctx)
    overhead = 12 * MiB + 256 * arch.vocab_size + 4 * arch.vocab_size * parallel  # + one logits row each
    inter = max(arch.intermediate_size, arch.moe_intermediate_size * arch.num_active_experts)
    mlp = 4 * ubatch * (3 * inter + 4 * arch.hidden_size)
    kq = 0 if flash_attention else int(_KQ_FACTOR * 4 * n_ctx * ubatch * arch.num_attention_heads)
    return RuntimeCost(overhead=overhead, scratch=max(mlp, kq) + 6 * MiB)


def _transformers_cost(arch: Architecture, context: int, parallel: int, flash_attention: bool) -> RuntimeCost:
    """PyTorch + transformers: allocator and CUDA context, plus bf16 prefill activations.

    Not calibrated on a GPU (none here): 512 MiB for the CUDA context and allocator slack, and,
    with SDPA (no attention matrix), the MLP activations of the whole prompt plus f32 logits of
    the last position of each sequence.
    """
    inter = arch.intermediate_size or arch.moe_intermediate_size * arch.num_active_experts
    tokens = context * parallel
    activations = 2 * tokens * (4 * arch.hidden_size + 2 * inter)
    return RuntimeCost(overhead=512 * MiB + 4 * arch.vocab_size * parallel, scratch=activations)


OVERHEAD_MODELS: Mapping[Container, OverheadModel] = MappingProxyType(
    {Container.GGUF: _llama_cpp_cost, Container.HF: _transformers_cost}
)


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes a model needs resident: ``total`` once loaded and decoding, ``peak`` after a prompt
    has filled the context (``prefill_scratch`` more)."""

    weights: int
    kv_cache: int  # KV cache, plus a hybrid model's fixed linear-attention state per sequence
    overhead: int
    total: int
    prefill_scratch: int = 0

    @property
    def peak(self) -> int:
        return self.total + self.prefill_scratch

    @property
    def total_gib(self) -> float:
        return self.total / GiB

    @property
    def peak_gib(self) -> float:
        return self.peak / GiB


def _check_run_shape(context: int, parallel: int) -> None:
    if not isinstance(context, int) or context <= 0:
        raise UsageError(f"context must be a positive number of tokens, got {context!r}", param="context")
    if not isinstance(parallel, int) or parallel <= 0:
        raise UsageError(f"parallel must be a positive integer, got {parallel!r}", param="parallel")


def estimate_memory(
    arch: Architecture,
    quant: Quant,
    context: int,
    parallel: int = 1,
    weights_bytes: int | None = None,
    kv_bytes_per_value: float = 2,
    *,
    flash_attention: bool = False,
    tied_output_copy: bool = True,
) -> MemoryEstimate:
    """Weights + KV cache + runtime overhead of ``arch`` in ``quant`` at ``context`` tokens.

    ``weights_bytes``: the real size of the weights when a file is known (a GGUF file's size),
    used instead of the tensor-by-tensor count. The overhead model follows the container: GGUF
    runs on llama.cpp, HF checkpoints on transformers. ``flash_attention``: llama.cpp then never
    materialises the K*Q scores, which is most of the prefill scratch at long contexts (off by
    default, as in llama-cpp-python's ``Llama``; qwenkit's own llama.cpp engine leaves it on auto).
    """
    _check_run_shape(context, parallel)
    if weights_bytes is not None and weights_bytes <= 0:
        raise UsageError(f"weights_bytes must be positive, got {weights_bytes}", param="weights_bytes")
    if weights_bytes is None:
        weights_bytes = weight_bytes(arch, quant, tied_output_copy=tied_output_copy).total
    weights = weights_bytes
    kv = kv_cache_bytes(arch, context, parallel, kv_bytes_per_value)
    cost = OVERHEAD_MODELS[quant.container](arch, context, parallel, flash_attention)
    return MemoryEstimate(
        weights=weights,
        kv_cache=kv,
        overhead=cost.overhead,
        total=weights + kv + cost.overhead,
        prefill_scratch=cost.scratch,
    )


@dataclass(frozen=True)
class SpeedEstimate:
    bytes_per_token: float
    tokens_per_s: float


def estimate_decode_speed(
    arch: Architecture,
    quant: Quant,
    bandwidth_bytes_per_s: float,
    context_tokens: int = 0,
    weights_bytes: int | None = None,
    kv_bytes_per_value: float = 2,
    *,
    tied_output_copy: bool = True,
) -> SpeedEstimate:
    """Tokens per second of one sequence's decode, bound by memory bandwidth.

    ``context_tokens``: KV entries already in the cache (each step reads all of them); a hybrid
    model also reads its linear-attention state once per step.
    ``weights_bytes``: a real file's size; the per-token share is scaled from the tensor count.
    """
    if bandwidth_bytes_per_s <= 0:
        raise UsageError("memory bandwidth must be positive", param="bandwidth")
    if context_tokens < 0:
        raise UsageError("context_tokens must not be negative", param="context_tokens")
    counted = weight_bytes(arch, quant, tied_output_copy=tied_output_copy)
    fraction = arch.num_active_experts / arch.num_experts if arch.is_moe else 0.0
    read = counted.read_per_token(fraction)
    if weights_bytes is not None:
        read *= weights_bytes / counted.total
    read += arch.kv_bytes_per_token(kv_bytes_per_value) * context_tokens + arch.recurrent_state_bytes()
    return SpeedEstimate(bytes_per_token=read, tokens_per_s=bandwidth_bytes_per_s / read)
