"""Bytes read per token (from a GGUF's tensor table or the catalog), bandwidth, and the roofline."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from qwenkit.bench.roofline import (
    Bandwidth,
    ModelBytes,
    measure_read_bandwidth,
    model_bytes_from_catalog,
    model_bytes_from_gguf,
    roofline,
)
from qwenkit.catalog import load_catalog
from qwenkit.catalog.estimate import estimate_decode_speed
from qwenkit.catalog.quant import get_quant
from qwenkit.models import read_gguf_metadata

VOCAB, HIDDEN = 64, 32


def write_gguf(path: Path, *, tied: bool, experts: int = 0, used: int = 0) -> Path:
    import gguf

    writer = gguf.GGUFWriter(str(path), "qwen2")
    writer.add_block_count(2)
    writer.add_embedding_length(HIDDEN)
    writer.add_head_count(4)
    writer.add_head_count_kv(2)
    if experts:
        writer.add_expert_count(experts)
        writer.add_expert_used_count(used)
    writer.add_tensor("token_embd.weight", np.ones((VOCAB, HIDDEN), dtype=np.float16))
    if not tied:
        writer.add_tensor("output.weight", np.ones((VOCAB, HIDDEN), dtype=np.float16))
    writer.add_tensor("output_norm.weight", np.ones(HIDDEN, dtype=np.float32))
    for i in range(2):
        writer.add_tensor(f"blk.{i}.attn_q.weight", np.ones((HIDDEN, HIDDEN), dtype=np.float16))
        if experts:
            writer.add_tensor(f"blk.{i}.ffn_up_exps.weight", np.ones((experts, 16, HIDDEN), dtype=np.float16))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


EMBED = VOCAB * HIDDEN * 2
BLOCKS = HIDDEN * 4 + 2 * HIDDEN * HIDDEN * 2  # output_norm (f32) + two attn_q (f16)
KV = 2 * 2 * (8 + 8) * 2  # layers x kv heads x (k + v head dims) x f16


def test_untied_model_reads_one_embedding_row_and_the_whole_output(tmp_path: Path) -> None:
    mb = model_bytes_from_gguf(read_gguf_metadata(write_gguf(tmp_path / "m.gguf", tied=False)))
    assert mb.weights_total == 2 * EMBED + BLOCKS
    assert mb.weights_per_token == pytest.approx(EMBED / VOCAB + EMBED + BLOCKS)
    assert mb.kv_per_token == KV
    assert mb.per_token(100) == pytest.approx(mb.weights_per_token + 100 * KV)


def test_tied_model_reads_the_embedding_table_as_its_output(tmp_path: Path) -> None:
    mb = model_bytes_from_gguf(read_gguf_metadata(write_gguf(tmp_path / "m.gguf", tied=True)))
    assert mb.weights_total == EMBED + BLOCKS
    assert mb.weights_per_token == pytest.approx(EMBED + BLOCKS)


def test_moe_reads_only_the_active_share_of_the_experts(tmp_path: Path) -> None:
    path = write_gguf(tmp_path / "m.gguf", tied=True, experts=8, used=2)
    mb = model_bytes_from_gguf(read_gguf_metadata(path))
    experts = 2 * 8 * 16 * HIDDEN * 2
    assert mb.weights_total == EMBED + BLOCKS + experts
    assert mb.weights_per_token == pytest.approx(EMBED + BLOCKS + experts * 2 / 8)


def test_catalog_bytes_agree_with_the_catalog_speed_estimate() -> None:
    variant = load_catalog().get("qwen2.5-coder-0.5b-instruct")
    mb = model_bytes_from_catalog(variant, "q4_k_m", file_bytes=491_400_064)
    bw = 50e9
    expected = estimate_decode_speed(variant.arch, get_quant("q4_k_m"), bw, context_tokens=160,
                                     weights_bytes=491_400_064)
    assert mb.per_token(160) == pytest.approx(expected.bytes_per_token)
    assert mb.weights_total == 491_400_064


def test_roofline_is_measured_over_bandwidth_limit() -> None:
    mb = ModelBytes(weights_per_token=400e6, weights_total=500_000_000, kv_per_token=12_288, source="t")
    r = roofline(20.0, mb, Bandwidth(10e9, "measured", "test"), context_tokens=100)
    assert r.bytes_per_token == pytest.approx(400e6 + 1_228_800)
    assert r.limit_tps == pytest.approx(10e9 / r.bytes_per_token)
    assert r.percent == pytest.approx(100 * 20.0 / r.limit_tps)


def test_measured_bandwidth_is_a_plausible_figure() -> None:
    bw = measure_read_bandwidth(size_bytes=32 * 1024**2, repeats=2)
    assert bw.source == "measured" and "32 MiB" in bw.method
    assert 1e8 < bw.bytes_per_s < 1e13  # between 0.1 GB/s and 10 TB/s

