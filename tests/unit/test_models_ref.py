"""The one resolver: catalog ids, Hub repo ids, model directories and .gguf files."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from _models_fixtures import FakeCatalog, make_variant, write_tiny_gguf

from qwenkit.errors import ModelFormatError, ModelNotFoundError, UsageError
from qwenkit.models import DEFAULT_MODEL, RefKind, resolve
from qwenkit.models.ref import quant_from_filename, shard_names


@pytest.fixture
def catalog() -> FakeCatalog:
    return FakeCatalog([
        make_variant(),
        make_variant("qwen-test-st", hf_repo="QwenTest/Only-Safetensors", gguf_repo=None, gguf_files={}),
        make_variant("qwen-test-q8", hf_repo="QwenTest/Q8", gguf_repo="QwenTest/Q8-GGUF",
                     gguf_files={"q8_0": "q8-q8_0.gguf"}),
    ])


def test_catalog_id_without_quant_means_gguf_q4_k_m(catalog: FakeCatalog) -> None:
    ref = resolve("qwen-test-0.5b-instruct", catalog=catalog)
    assert ref.kind == RefKind.CATALOG
    assert ref.variant is not None and ref.variant.id == "qwen-test-0.5b-instruct"
    assert (ref.quant, ref.repo_id, ref.filename, ref.path) == (
        "q4_k_m", "QwenTest/Test-0.5B-Instruct-GGUF", "tiny-q4_k_m.gguf", None)
    assert ref.format == "gguf"


def test_catalog_id_with_quant_is_case_insensitive(catalog: FakeCatalog) -> None:
    ref = resolve("Qwen-Test-0.5B-Instruct:Q8_0", catalog=catalog)
    assert (ref.quant, ref.filename) == ("q8_0", "tiny-q8_0.gguf")


def test_entry_without_gguf_means_safetensors(catalog: FakeCatalog) -> None:
    ref = resolve("qwen-test-st", catalog=catalog)
    assert (ref.format, ref.repo_id, ref.filename, ref.quant) == (
        "safetensors", "QwenTest/Only-Safetensors", None, None)


def test_entry_without_q4_k_m_takes_its_first_quant(catalog: FakeCatalog) -> None:
    assert resolve("qwen-test-q8", catalog=catalog).quant == "q8_0"


def test_unknown_quant_lists_the_available_ones(catalog: FakeCatalog) -> None:
    with pytest.raises(UsageError, match="available: q4_k_m, q8_0"):
        resolve("qwen-test-0.5b-instruct:q2_k", catalog=catalog)


def test_hub_repo_ids(catalog: FakeCatalog) -> None:
    st = resolve("QwenTest/Test-0.5B-Instruct", catalog=catalog)
    assert (st.kind, st.format, st.repo_id, st.filename) == (RefKind.HUB, "safetensors",
                                                          "QwenTest/Test-0.5B-Instruct", None)
    assert st.variant is not None
    gguf = resolve("qwentest/test-0.5b-instruct-gguf:q8_0", catalog=catalog)
    assert (gguf.kind, gguf.repo_id, gguf.filename) == (RefKind.HUB, "QwenTest/Test-0.5B-Instruct-GGUF",
                                                        "tiny-q8_0.gguf")
    unknown = resolve("Someone/Other-GGUF:q5_k_m", catalog=catalog)
    assert (unknown.variant, unknown.repo_id, unknown.quant, unknown.filename) == (
        None, "Someone/Other-GGUF", "q5_k_m", None)
    assert unknown.format == "gguf"
    plain = resolve("Someone/Other-Model", catalog=catalog)
    assert (plain.format, plain.variant) == ("safetensors", None)


def test_unknown_gguf_repo_needs_a_quant(catalog: FakeCatalog) -> None:
    with pytest.raises(UsageError, match="say which quant"):
        resolve("Someone/Other-GGUF", catalog=catalog)


def test_gguf_file_matches_its_catalog_entry(tmp_path: Path, catalog: FakeCatalog) -> None:
    path = write_tiny_gguf(tmp_path / "tiny-q8_0.gguf")
    ref = resolve(str(path), catalog=catalog)
    assert (ref.kind, ref.path, ref.quant, ref.repo_id) == (RefKind.GGUF_FILE, path.resolve(), "q8_0", None)
    assert ref.variant is not None and ref.variant.id == "qwen-test-0.5b-instruct"
    other = resolve(str(write_tiny_gguf(tmp_path / "mine-Q5_K_M.gguf")), catalog=catalog)
    assert (other.variant, other.quant) == (None, "q5_k_m")


def test_local_directory(tmp_path: Path, catalog: FakeCatalog) -> None:
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "model.safetensors").write_bytes(b"")
    (tmp_path / "tokenizer.json").write_text("{}")
    ref = resolve(str(tmp_path), catalog=catalog)
    assert (ref.kind, ref.path, ref.format) == (RefKind.LOCAL_DIR, tmp_path.resolve(), "safetensors")


def test_incomplete_directory_says_what_is_missing(tmp_path: Path, catalog: FakeCatalog) -> None:
    (tmp_path / "config.json").write_text("{}")
    write_tiny_gguf(tmp_path / "x.gguf")
    with pytest.raises(ModelFormatError, match=r"missing \*\.safetensors weights, tokenizer.json") as info:
        resolve(str(tmp_path), catalog=catalog)
    assert info.value.hint is not None and "x.gguf" in info.value.hint


def test_missing_paths_and_non_gguf_files(tmp_path: Path, catalog: FakeCatalog) -> None:
    with pytest.raises(ModelNotFoundError, match="no such file"):
        resolve(str(tmp_path / "absent.gguf"), catalog=catalog)
    with pytest.raises(ModelNotFoundError, match="no such file"):
        resolve("./nowhere/model", catalog=catalog)
    text = tmp_path / "notes.txt"
    text.write_text("hi")
    with pytest.raises(ModelFormatError, match=r"not a \.gguf file"):
        resolve(str(text), catalog=catalog)


def test_unknown_name_suggests_close_ids(catalog: FakeCatalog) -> None:
    with pytest.raises(ModelNotFoundError) as info:
        resolve("qwen-test-0.5b-instruc", catalog=catalog)
    assert info.value.hint is not None and "qwen-test-0.5b-instruct" in info.value.hint
    with pytest.raises(UsageError, match="empty"):
        resolve("  ", catalog=catalog)


@pytest.mark.parametrize(
    ("name", "quant"),
    [
        ("qwen2.5-7b-instruct-q4_k_m.gguf", "q4_k_m"),
        ("qwen2.5-7b-instruct-q4_k_m-00001-of-00002.gguf", "q4_k_m"),
        ("Qwen3-8B-Q8_0.gguf", "q8_0"),
        ("qwen2-0.5b-instruct-fp16.gguf", None),
        ("model-f16.gguf", "f16"),
        ("model-iq4_xs.gguf", "iq4_xs"),
        ("model.gguf", None),
    ],
)
def test_quant_from_filename(name: str, quant: str | None) -> None:
    assert quant_from_filename(name) == quant


def test_shard_names() -> None:
    assert shard_names("m-q4_k_m-00001-of-00003.gguf") == [
        "m-q4_k_m-00001-of-00003.gguf", "m-q4_k_m-00002-of-00003.gguf", "m-q4_k_m-00003-of-00003.gguf"]
    assert shard_names("m-q4_k_m.gguf") == ["m-q4_k_m.gguf"]


def test_default_model_resolves_in_the_real_catalog() -> None:
    ref = resolve(DEFAULT_MODEL)
    assert ref.repo_id == "Qwen/Qwen2.5-Coder-0.5B-Instruct-GGUF"
    assert ref.filename == "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
    bare = resolve("qwen2.5-coder-0.5b-instruct")
    assert dataclasses.replace(bare, text="") == dataclasses.replace(ref, text="")
