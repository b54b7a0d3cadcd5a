"""Weights (tensor by tensor), KV cache, overhead and decode-speed estimates."""

from __future__ import annotations

import pytest

from qwenkit.catalog import Architecture, load_catalog
from qwenkit.catalog.estimate import (
    estimate_decode_speed,
    estimate_memory,
    kv_cache_bytes,
    tensor_specs,
    weight_bytes,
)
from qwenkit.catalog.quant import GGML_TYPES, QUANTS, get_quant, use_more_bits
from qwenkit.errors import UsageError

# Qwen2.5-0.5B: hidden 896 is not a multiple of 256, so K-quants fall back on most tensors.
QWEN25_05B = Architecture(
    layers=24, hidden_size=896, num_attention_heads=14, num_kv_heads=2, head_dim=64,
    intermediate_size=4864, vocab_size=151936, tied_embeddings=True,
)
# Qwen3-0.6B: hidden 1024, tied, qk-norm, no qkv bias.
QWEN3_06B = Architecture(
    layers=28, hidden_size=1024, num_attention_heads=16, num_kv_heads=8, head_dim=128,
    intermediate_size=3072, vocab_size=151936, tied_embeddings=True, qkv_bias=False, qk_norm=True,
)
# Qwen3-30B-A3B: 128 experts, 8 active, no shared expert.
QWEN3_MOE = Architecture(
    layers=48, hidden_size=2048, num_attention_heads=32, num_kv_heads=4, head_dim=128,
    intermediate_size=6144, vocab_size=151936, tied_embeddings=False, qkv_bias=False, qk_norm=True,
    num_experts=128, num_active_experts=8, moe_intermediate_size=768,
)


def test_tensor_specs_add_up_to_the_parameter_count_for_every_catalog_variant():
    for variant in load_catalog().all():
        specs = tensor_specs(variant.arch)
        assert sum(s.n_elements for s in specs) == variant.arch.parameter_count(), variant.id


def test_ggml_block_layouts():
    assert GGML_TYPES["Q8_0"].bits_per_weight == 8.5
    assert GGML_TYPES["Q4_K"].bits_per_weight == 4.5
    assert GGML_TYPES["Q6_K"].bits_per_weight == 6.5625
    assert GGML_TYPES["Q4_K"].nbytes(512) == 288
    assert GGML_TYPES["F32"].nbytes(10) == 40


def test_use_more_bits_picks_llama_cpp_layers():
    # i < n/8, i >= 7n/8, or (i - n/8) % 3 == 2: for 24 layers 0-2, 21-23 and 5, 8, ..., 20
    chosen = [i for i in range(24) if use_more_bits(i, 24)]
    assert chosen == [0, 1, 2, 5, 8, 11, 14, 17, 20, 21, 22, 23]


def test_k_quant_falls_back_when_rows_are_not_multiples_of_256():
    recipe = get_quant("q4_k_m").recipe
    assert recipe is not None
    assert recipe.tensor_type("attn_q", 896, 3, 24).name == "Q5_0"  # Q4_K -> Q5_0
    assert recipe.tensor_type("attn_q", 1024, 3, 28).name == "Q4_K"
    assert recipe.tensor_type("attn_v", 896, 0, 24).name == "Q8_0"  # more bits: Q6_K -> Q8_0
    assert recipe.tensor_type("attn_v", 1024, 0, 28).name == "Q6_K"
    assert recipe.tensor_type("ffn_down", 4864, 0, 24).name == "Q6_K"
    assert recipe.tensor_type("ffn_down", 4864, 3, 24).name == "Q4_K"
    assert recipe.tensor_type("output", 896, -1, 24).name == "Q8_0"
    assert recipe.tensor_type("output", 1024, -1, 28).name == "Q6_K"
    q8 = get_quant("q8_0").recipe
    assert q8 is not None and q8.tensor_type("output", 1024, -1, 28).name == "Q8_0"


def test_gguf_weights_of_qwen25_05b_q4_k_m_match_the_real_file_layout():
    # The real qwen2.5-coder-0.5b-instruct-q4_k_m.gguf holds exactly 485,452,288 bytes of tensors
    # (checked against the file itself in tests/integration/test_memory_estimate_realmodel.py).
    assert weight_bytes(QWEN25_05B, get_quant("q4_k_m")).total == 485_452_288


def test_tied_embedding_stored_once_is_quantized_like_the_output():
    q8 = get_quant("q8_0")
    twice = weight_bytes(QWEN3_06B, q8, tied_output_copy=True)
    once = weight_bytes(QWEN3_06B, q8, tied_output_copy=False)
    table = GGML_TYPES["Q8_0"].nbytes(151936 * 1024)
    assert twice.total - once.total == table
    assert once.tied_output and not twice.tied_output
    q4 = get_quant("q4_k_m")
    once_q4 = weight_bytes(QWEN3_06B, q4, tied_output_copy=False)
    assert once_q4.embedding == GGML_TYPES["Q6_K"].nbytes(151936 * 1024)


def test_hf_formats_quantize_linear_layers_only():
    bf16 = weight_bytes(QWEN25_05B, get_quant("bf16"))
    assert bf16.total == 2 * QWEN25_05B.parameter_count()
    nf4 = weight_bytes(QWEN25_05B, get_quant("nf4"))
    assert nf4.embedding == bf16.embedding  # the embedding table stays 16-bit
    assert nf4.blocks < bf16.blocks * 0.35
    assert weight_bytes(QWEN25_05B, get_quant("fp8")).total < bf16.total * 0.65


def test_gguf_quality_order_is_size_order():
    quants = sorted((q for q in QUANTS.values() if q.is_gguf), key=lambda q: q.quality)
    assert [q.name for q in quants] == ["q4_0", "q4_k_m", "q5_k_m", "q6_k", "q8_0"]
    for arch in (QWEN25_05B, QWEN3_06B, QWEN3_MOE):
        sizes = [weight_bytes(arch, q).total for q in quants]
        assert sizes == sorted(sizes)


def test_get_quant_accepts_labels_and_aliases_and_rejects_garbage():
    assert get_quant("Q4_K_M") is QUANTS["q4_k_m"]
    assert get_quant("gptq").name == "gptq-int4"
    assert get_quant(" BF16 ").name == "bf16"
    with pytest.raises(UsageError, match="unknown weight format"):
        get_quant("q3_banana")


def test_kv_cache_formula():
    # 2 x 24 layers x 2 kv heads x 64 head dim x 2 bytes = 12,288 bytes per token
    assert kv_cache_bytes(QWEN25_05B, 4096) == 12_288 * 4096
    assert kv_cache_bytes(QWEN25_05B, 4096, parallel=3) == 3 * 12_288 * 4096
    assert kv_cache_bytes(QWEN25_05B, 1000, bytes_per_value=1) == 6_144 * 1000


def test_estimate_memory_parts_add_up_and_scale():
    quant = get_quant("q4_k_m")
    small = estimate_memory(QWEN25_05B, quant, 2048)
    large = estimate_memory(QWEN25_05B, quant, 8192)
    assert small.total == small.weights + small.kv_cache + small.overhead
    assert small.peak == small.total + small.prefill_scratch
    assert large.kv_cache == 4 * small.kv_cache
    assert large.weights == small.weights
    assert large.peak > small.peak
    two = estimate_memory(QWEN25_05B, quant, 2048, parallel=2)
    assert two.kv_cache == 2 * small.kv_cache


def test_weights_bytes_from_a_file_replace_the_count():
    est = estimate_memory(QWEN25_05B, get_quant("q4_k_m"), 4096, weights_bytes=491_400_064)
    assert est.weights == 491_400_064
    assert est.total == 491_400_064 + est.kv_cache + est.overhead


def test_flash_attention_removes_the_score_scratch_at_long_context():
    quant = get_quant("q4_k_m")
    without = estimate_memory(QWEN25_05B, quant, 32768)
    with_fa = estimate_memory(QWEN25_05B, quant, 32768, flash_attention=True)
    assert with_fa.total == without.total
    assert with_fa.prefill_scratch < without.prefill_scratch / 10


def test_llama_cpp_estimate_reproduces_the_calibration_measurements():
    # RSS measured with the real Q4_K_M file (table in estimate._llama_cpp_cost): load + short eval
    # and context filled, use_mmap=False, weights = file size.
    measured = {512: (548.3e6, 589.4e6), 2048: (568.1e6, 666.7e6), 4096: (594.2e6, 785.1e6)}
    for n_ctx, (loaded, filled) in measured.items():
        est = estimate_memory(QWEN25_05B, get_quant("q4_k_m"), n_ctx, weights_bytes=491_400_064)
        assert est.total == pytest.approx(loaded, rel=0.03)
        assert est.peak == pytest.approx(filled, rel=0.03)


@pytest.mark.parametrize(
    "context, parallel, weights", [(0, 1, None), (-5, 1, None), (512, 0, None), (512, 1, 0)]
)
def test_estimate_memory_rejects_bad_input(context, parallel, weights):
    with pytest.raises(UsageError):
        estimate_memory(QWEN25_05B, get_quant("q8_0"), context, parallel, weights_bytes=weights)


def test_decode_speed_is_bandwidth_over_bytes_read():
    quant = get_quant("q4_k_m")
    parts = weight_bytes(QWEN25_05B, quant)
    speed = estimate_decode_speed(QWEN25_05B, quant, 40e9)
    # the stored output matrix is read, the embedding table is not (one row is gathered)
    assert speed.bytes_per_token == parts.output + parts.blocks
    assert speed.tokens_per_s == pytest.approx(40e9 / (parts.output + parts.blocks))
    filled = estimate_decode_speed(QWEN25_05B, quant, 40e9, context_tokens=4096)
    assert filled.bytes_per_token == speed.bytes_per_token + 12_288 * 4096


def test_decode_speed_of_an_moe_reads_only_active_experts():
    quant = get_quant("q4_k_m")
    parts = weight_bytes(QWEN3_MOE, quant)
    speed = estimate_decode_speed(QWEN3_MOE, quant, 100e9)
    assert speed.bytes_per_token == pytest.approx(parts.output + parts.blocks + parts.experts * 8 / 128)
    assert speed.bytes_per_token < parts.total / 5  # ~3B of ~30B parameters
    dense_like = QWEN3_MOE.shrunk(num_active_experts=128)
    assert estimate_decode_speed(dense_like, quant, 100e9).tokens_per_s < speed.tokens_per_s / 5


def test_decode_speed_rejects_bad_bandwidth():
    with pytest.raises(UsageError):
        estimate_decode_speed(QWEN25_05B, get_quant("q8_0"), 0)


# Qwen3-Next-80B-A3B: 48 layers, every fourth full attention (12), the others Gated DeltaNet.
QWEN3_NEXT = Architecture(
    layers=48, hidden_size=2048, num_attention_heads=16, num_kv_heads=2, head_dim=256,
    intermediate_size=5120, vocab_size=151936, tied_embeddings=False, qkv_bias=False, qk_norm=True,
    num_experts=512, num_active_experts=10, moe_intermediate_size=512, shared_expert_intermediate_size=512,
    attn_output_gate=True, full_attention_interval=4, linear_num_key_heads=16, linear_num_value_heads=32,
    linear_key_head_dim=128, linear_value_head_dim=128, linear_conv_kernel_dim=4,
)


def test_hybrid_kv_cache_counts_full_attention_layers_and_a_fixed_state():
    per_token = 2 * 12 * 2 * 256 * 2  # K and V x 12 full layers x 2 kv heads x 256 x bf16 = 24 KiB
    assert QWEN3_NEXT.kv_bytes_per_token(2.0) == per_token == 24 * 1024
    # 36 linear layers x (conv: 3 x (2 x 16 x 128 + 32 x 128) + state: 32 x 128 x 128), f32
    state = 36 * (3 * 8192 + 32 * 128 * 128) * 4
    assert QWEN3_NEXT.recurrent_state_bytes() == state
    assert kv_cache_bytes(QWEN3_NEXT, 4096) == per_token * 4096 + state
    assert kv_cache_bytes(QWEN3_NEXT, 4096, parallel=3) == 3 * (per_token * 4096 + state)
    # the same model with softmax attention in every layer would cache 4x as much per token
    assert kv_cache_bytes(QWEN3_NEXT, 65536) < 48 * 2 * 2 * 256 * 2 * 65536 / 3


def test_hybrid_tensors_and_decode_reads():
    specs = tensor_specs(QWEN3_NEXT)
    assert sum(s.n_elements for s in specs) == QWEN3_NEXT.parameter_count()
    kinds = {s.kind for s in specs if s.layer == 0} | {s.kind for s in specs if s.layer == 3}
    assert {"ssm_in", "ssm_conv1d", "ssm_out", "attn_q", "attn_output"} <= kinds
    assert [s.layer for s in specs if s.kind == "attn_q"] == list(range(3, 48, 4))
    assert next(s.n_elements for s in specs if s.kind == "attn_q") == 2048 * 2 * 16 * 256  # with the gate
    quant = get_quant("q4_k_m")
    conv = next(s for s in specs if s.kind == "ssm_conv1d")
    assert not conv.is_matrix  # llama.cpp keeps the conv kernel in f32
    empty = estimate_decode_speed(QWEN3_NEXT, quant, 100e9)
    filled = estimate_decode_speed(QWEN3_NEXT, quant, 100e9, context_tokens=1000)
    assert filled.bytes_per_token - empty.bytes_per_token == 24 * 1024 * 1000
    parts = weight_bytes(QWEN3_NEXT, quant)
    read = parts.output + parts.blocks + parts.experts * 10 / 512
    assert empty.bytes_per_token == pytest.approx(read + QWEN3_NEXT.recurrent_state_bytes())
