"""The bounded GGUF reader: real metadata from valid files, a clear ModelFormatError for everything else."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from _models_fixtures import QWEN25_TEMPLATE, TOKENS, write_tiny_gguf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qwenkit.errors import ModelFormatError
from qwenkit.models.gguf_reader import read_gguf_metadata

U32, U64, STRING, ARRAY = 4, 10, 8, 9


def _str(text: str) -> bytes:
    data = text.encode()
    return struct.pack("<Q", len(data)) + data


def _header(tensors: int, kvs: int, version: int = 3) -> bytes:
    return b"GGUF" + struct.pack("<IQQ", version, tensors, kvs)


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    return write_tiny_gguf(tmp_path / "tiny-q4_k_m.gguf")


def test_reads_metadata_tensors_and_special_tokens(tiny: Path) -> None:
    meta = read_gguf_metadata(tiny)
    assert meta.version == 3
    assert meta.architecture == "qwen2"
    assert meta.arch_int("block_count") == 2
    assert meta.arch_int("context_length") == 4096
    assert meta.arch_int("attention.head_count_kv") == 2
    assert meta.file_type == 15 and meta.file_type_name == "Q4_K_M"
    assert meta.token_count == len(TOKENS)
    assert meta.chat_template == QWEN25_TEMPLATE
    assert meta.tensor_count == 3
    assert meta.parameter_count == 8 * 16 + 16 * 16 + 16
    assert meta.tensor_type_histogram() == {"F32": 2, "F16": 1}
    assert {t.name: t.shape for t in meta.tensors}["token_embd.weight"] == (16, 8)
    specials = {t.role: (t.id, t.text) for t in meta.special_tokens}
    assert specials == {"bos": (4, "<|endoftext|>"), "eos": (6, "<|im_end|>"), "pad": (4, "<|endoftext|>")}
    assert meta.data_offset % meta.alignment == 0


def test_no_chat_template_is_none(tmp_path: Path) -> None:
    meta = read_gguf_metadata(write_tiny_gguf(tmp_path / "m.gguf", template=None))
    assert meta.chat_template is None


@pytest.mark.timeout(60)
def test_every_truncation_is_a_format_error(tiny: Path, tmp_path: Path) -> None:
    data = tiny.read_bytes()
    data_offset = read_gguf_metadata(tiny).data_offset
    cuts = [*range(0, data_offset, 5), *range(data_offset, len(data), 61), len(data) - 1]
    cut_file = tmp_path / "cut.gguf"
    for cut in cuts:
        cut_file.write_bytes(data[:cut])
        with pytest.raises(ModelFormatError):
            read_gguf_metadata(cut_file)


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    ("payload", "message"),
    [
        pytest.param(_header(2**60, 0) + bytes(64), "claims", id="2^60 tensors"),
        pytest.param(_header(0, 2**60) + bytes(64), "claims", id="2^60 keys"),
        pytest.param(
            _header(0, 1) + _str("big") + struct.pack("<IIQ", ARRAY, U32, 2**60) + bytes(64), "claims",
            id="2^60 uint32 array elements",
        ),
        pytest.param(
            _header(0, 1) + _str("big") + struct.pack("<IIQ", ARRAY, STRING, 2**60) + bytes(64), "claims",
            id="2^60 string array elements",
        ),
        pytest.param(_header(0, 1) + _str("s") + struct.pack("<IQ", STRING, 2**62) + bytes(64), "claims",
                     id="2^62-byte string"),
        pytest.param(_header(0, 1) + struct.pack("<Q", 2**40) + bytes(64), "claims", id="2^40-byte key"),
        pytest.param(_header(0, 1) + _str("t") + struct.pack("<I", 77) + bytes(64), "unknown value type",
                     id="unknown value type"),
        pytest.param(
            _header(0, 1) + _str("n") + struct.pack("<IIQ", ARRAY, ARRAY, 1)
            + struct.pack("<IQ", ARRAY, 1) * 6 + bytes(64), "nested", id="deeply nested arrays",
        ),
        pytest.param(
            _header(1, 0) + _str("w") + struct.pack("<I", 99) + bytes(64), "dimensions", id="99 dimensions"
        ),
        pytest.param(
            _header(1, 0) + _str("w") + struct.pack("<IQ", 1, 2**50) + struct.pack("<IQ", 0, 0) + bytes(64),
            "past the end", id="tensor larger than the file",
        ),
        pytest.param(_header(0, 0, version=1), "version 1", id="GGUF v1"),
        pytest.param(b"GGUF" + struct.pack(">IQQ", 3, 0, 0), "big-endian", id="big-endian"),
        pytest.param(b'{"architectures": ["Qwen2ForCausalLM"]}', "not a GGUF file", id="json file"),
        pytest.param(b"", "not a GGUF file", id="empty file"),
        pytest.param(b"GGU", "not a GGUF file", id="three bytes"),
    ],
)
def test_hostile_headers_fail_fast(tmp_path: Path, payload: bytes, message: str) -> None:
    path = tmp_path / "bad.gguf"
    path.write_bytes(payload)
    with pytest.raises(ModelFormatError, match=message):
        read_gguf_metadata(path)


def test_bad_alignment_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "align.gguf"
    path.write_bytes(_header(0, 1) + _str("general.alignment") + struct.pack("<II", U32, 48) + bytes(8))
    with pytest.raises(ModelFormatError, match="power of two"):
        read_gguf_metadata(path)


def test_directory_and_missing_path(tmp_path: Path) -> None:
    with pytest.raises(ModelFormatError, match="not a regular file"):
        read_gguf_metadata(tmp_path)
    with pytest.raises(ModelFormatError, match="not a regular file"):
        read_gguf_metadata(tmp_path / "missing.gguf")


@pytest.mark.timeout(120)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.binary(max_size=512), counts=st.tuples(st.integers(0, 2**64 - 1), st.integers(0, 2**64 - 1)))
def test_random_bytes_never_escape_as_other_errors(
    tmp_path: Path, body: bytes, counts: tuple[int, int]
) -> None:
    path = tmp_path / "random.gguf"
    path.write_bytes(_header(*counts) + body)
    try:
        meta = read_gguf_metadata(path)
    except ModelFormatError:
        return
    assert meta.tensor_count * 32 <= path.stat().st_size


@pytest.mark.timeout(60)
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_flipped_bytes_in_a_real_header(tiny: Path, tmp_path: Path, data: st.DataObject) -> None:
    raw = bytearray(tiny.read_bytes())
    header_end = read_gguf_metadata(tiny).data_offset
    for _ in range(data.draw(st.integers(1, 4))):
        raw[data.draw(st.integers(0, header_end - 1))] = data.draw(st.integers(0, 255))
    path = tmp_path / "flipped.gguf"
    path.write_bytes(bytes(raw))
    try:  # either it still parses, or it fails as a ModelFormatError; any other exception fails the test
        meta = read_gguf_metadata(path)
    except ModelFormatError:
        return
    assert meta.data_offset <= path.stat().st_size
