"""list_local and remove over a real HF cache layout and qwenkit's store."""

from __future__ import annotations

from pathlib import Path

import pytest
from _models_fixtures import FakeCatalog, isolate, make_variant, put_in_hf_cache

from qwenkit.errors import UsageError
from qwenkit.models import list_local, remove, resolve
from qwenkit.models.store import hub_cache_dir, store_path, write_record

GGUF_REPO = "QwenTest/Test-0.5B-Instruct-GGUF"
ST_REPO = "QwenTest/Test-0.5B-Instruct"


@pytest.fixture
def catalog(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeCatalog:
    isolate(monkeypatch, tmp_path)
    return FakeCatalog([make_variant()])


def _summary(catalog: FakeCatalog) -> list[tuple[str, str, str | None, int]]:
    return [(e.ref, e.source, e.filename, e.size) for e in list_local(catalog)]


def test_empty(catalog: FakeCatalog) -> None:
    assert list_local(catalog) == []


def test_lists_both_stores_with_sizes_and_refs(catalog: FakeCatalog) -> None:
    cache = hub_cache_dir()
    put_in_hf_cache(cache, GGUF_REPO, "tiny-q8_0.gguf", b"8" * 800)
    put_in_hf_cache(cache, "Someone/Big-GGUF", "big-q4_k_m-00001-of-00002.gguf", b"1" * 100)
    put_in_hf_cache(cache, "Someone/Big-GGUF", "big-q4_k_m-00002-of-00002.gguf", b"2" * 50)
    put_in_hf_cache(cache, ST_REPO, "config.json", b"{}")
    put_in_hf_cache(cache, ST_REPO, "model.safetensors", b"s" * 300)
    stored = store_path(GGUF_REPO, "tiny-q4_k_m.gguf")
    stored.parent.mkdir(parents=True)
    stored.write_bytes(b"4" * 400)
    write_record(stored, "ab" * 32, "test")
    assert _summary(catalog) == [
        ("qwen-test-0.5b-instruct", "hf-cache", None, 302),
        ("qwen-test-0.5b-instruct:q8_0", "hf-cache", "tiny-q8_0.gguf", 800),
        ("Someone/Big-GGUF:q4_k_m", "hf-cache", "big-q4_k_m-00001-of-00002.gguf", 150),
        ("qwen-test-0.5b-instruct:q4_k_m", "qwenkit-store", "tiny-q4_k_m.gguf", 400),
    ]


def test_rm_one_quant_keeps_the_other(catalog: FakeCatalog) -> None:
    cache = hub_cache_dir()
    q4 = put_in_hf_cache(cache, GGUF_REPO, "tiny-q4_k_m.gguf", b"4" * 400)
    q8 = put_in_hf_cache(cache, GGUF_REPO, "tiny-q8_0.gguf", b"8" * 800)
    report = remove(resolve("qwen-test-0.5b-instruct:q4_k_m", catalog=catalog))
    assert report.freed == 400 and len(report.removed) == 1
    assert not q4.exists() and q8.read_bytes() == b"8" * 800
    report = remove(resolve("qwen-test-0.5b-instruct:q8_0", catalog=catalog))
    assert report.freed == 800
    assert not (cache / "models--QwenTest--Test-0.5B-Instruct-GGUF").exists()
    assert remove(resolve("qwen-test-0.5b-instruct:q8_0", catalog=catalog)).removed == ()


def test_rm_blob_shared_by_two_snapshots(catalog: FakeCatalog) -> None:
    cache = hub_cache_dir()
    put_in_hf_cache(cache, GGUF_REPO, "tiny-q4_k_m.gguf", b"x" * 10, commit="a" * 40)
    put_in_hf_cache(cache, GGUF_REPO, "tiny-q4_k_m.gguf", b"x" * 10, commit="b" * 40)
    report = remove(resolve("qwen-test-0.5b-instruct", catalog=catalog))
    assert report.freed == 10
    assert list_local(catalog) == []


def test_rm_store_file_with_its_record_and_partials(catalog: FakeCatalog) -> None:
    stored = store_path(GGUF_REPO, "tiny-q4_k_m.gguf")
    stored.parent.mkdir(parents=True)
    stored.write_bytes(b"4" * 400)
    write_record(stored, "ab" * 32, "test")
    (stored.parent / ".tiny-q4_k_m.gguf.partial-123").write_bytes(b"p" * 5)
    report = remove(resolve("qwen-test-0.5b-instruct", catalog=catalog))
    assert stored in [r.path for r in report.removed] and len(report.removed) == 3
    assert not stored.parent.exists()


def test_rm_whole_safetensors_repo_and_unknown_quant_repo(catalog: FakeCatalog) -> None:
    cache = hub_cache_dir()
    put_in_hf_cache(cache, ST_REPO, "config.json", b"{}")
    put_in_hf_cache(cache, ST_REPO, "model.safetensors", b"s" * 300)
    assert remove(resolve(ST_REPO, catalog=catalog)).freed == 302
    put_in_hf_cache(cache, "Someone/Big-GGUF", "big-q4_k_m-00001-of-00002.gguf", b"1" * 100)
    put_in_hf_cache(cache, "Someone/Big-GGUF", "big-q4_k_m-00002-of-00002.gguf", b"2" * 50)
    put_in_hf_cache(cache, "Someone/Big-GGUF", "big-q8_0.gguf", b"8")
    assert remove(resolve("Someone/Big-GGUF:q4_k_m", catalog=catalog)).freed == 150
    assert [e.filename for e in list_local(catalog)] == ["big-q8_0.gguf"]


def test_rm_refuses_local_paths(catalog: FakeCatalog, tmp_path: Path) -> None:
    path = tmp_path / "mine.gguf"
    path.write_bytes(b"GGUF")
    with pytest.raises(UsageError, match="local path"):
        remove(resolve(str(path), catalog=catalog))
    assert path.exists()
