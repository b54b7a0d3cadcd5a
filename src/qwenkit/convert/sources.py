"""llama.cpp's own sources from the pinned llama-cpp-python sdist, fetched with pip into a cache.

The converter (``convert_hf_to_gguf.py``, its ``conversion/`` package and ``gguf-py``) is not on PyPI
as a wheel, but it ships in the sdist of the llama-cpp-python version qwenkit pins, so the converter
always matches the llama.cpp that loads its output. The sdist is downloaded once with pip, checked
against the sha256 recorded here (the one PyPI's index lists), and unpacked into
``$XDG_CACHE_HOME/qwenkit/llama-cpp-python-<version>/`` (``$QWENKIT_SOURCES_CACHE`` overrides the
root). Nothing of llama.cpp is ever part of qwenkit's repository.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

from qwenkit.errors import FetchError, MissingDependencyError

# sha256 of llama_cpp_python-<version>.tar.gz as https://pypi.org/simple/llama-cpp-python/ lists it.
SDIST_SHA256: dict[str, str] = {
    "0.3.36": "832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e",
}
CONVERTER_PARTS = ("convert_hf_to_gguf.py", "conversion", "gguf-py")
_DONE = ".complete"


def cache_root() -> Path:
    override = os.environ.get("QWENKIT_SOURCES_CACHE")
    if override:
        return Path(override).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "qwenkit"


def pinned_version() -> str:
    """The installed llama-cpp-python's version: the converter must match the library reading its output."""
    try:
        return metadata.version("llama_cpp_python")
    except metadata.PackageNotFoundError:
        raise MissingDependencyError.for_extra("llama_cpp", "llama") from None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _expected_sha(version: str) -> str:
    expected = SDIST_SHA256.get(version)
    if expected is None:
        raise FetchError(
            f"no recorded sha256 for the llama-cpp-python {version} sdist",
            hint="add the hash PyPI lists for it to qwenkit/convert/sources.py's SDIST_SHA256",
        )
    return expected


def sdist(version: str | None = None) -> Path:
    """The verified sdist archive, downloaded with pip on first use."""
    version = version or pinned_version()
    expected = _expected_sha(version)
    root = cache_root() / f"llama-cpp-python-{version}"
    archive = root / f"llama_cpp_python-{version}.tar.gz"
    if not archive.is_file():
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=root, prefix=".download-") as tmp:
            command = [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--no-deps",
                "--no-binary",
                ":all:",
                f"llama-cpp-python=={version}",
                "-d",
                tmp,
            ]
            done = subprocess.run(command, capture_output=True, text=True, check=False)
            got = sorted(Path(tmp).glob("llama_cpp_python-*.tar.gz"))
            if done.returncode != 0 or not got:
                last = (done.stderr.strip().splitlines() or ["no archive"])[-1]
                raise FetchError(f"pip could not download the llama-cpp-python {version} sdist: {last}")
            os.replace(got[0], archive)
    actual = _sha256(archive)
    if actual != expected:
        archive.unlink()
        raise FetchError(f"the llama-cpp-python {version} sdist has sha256 {actual}, expected {expected}")
    return archive


def _extract(archive: Path, version: str, parts: Sequence[str], dest: Path) -> None:
    prefix = f"llama_cpp_python-{version}/vendor/llama.cpp/"
    with tarfile.open(archive) as tar:
        members = [
            m
            for m in tar.getmembers()
            if m.name.startswith(prefix)
            and (
                not parts
                or any(m.name[len(prefix) :] == p or m.name[len(prefix) :].startswith(p + "/") for p in parts)
            )
        ]
        tar.extractall(dest, members=members, filter="data")


def llama_cpp_tree(parts: Sequence[str] = (), *, version: str | None = None) -> Path:
    """``vendor/llama.cpp`` of the sdist, unpacked once (only ``parts`` of it when given).

    Unpacked into a temporary folder and renamed at the end, so an interrupted run leaves no half tree.
    """
    version = version or pinned_version()
    name = "converter" if tuple(parts) == CONVERTER_PARTS else ("full" if not parts else "-".join(parts))
    root = cache_root() / f"llama-cpp-python-{version}"
    final = root / name
    tree = final / f"llama_cpp_python-{version}" / "vendor" / "llama.cpp"
    if (final / _DONE).is_file():
        return tree
    archive = sdist(version)
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=f".{name}-"))
    try:
        _extract(archive, version, parts, tmp)
        (tmp / _DONE).write_text(version)
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return tree


def converter_tree(version: str | None = None) -> Path:
    """The folder holding ``convert_hf_to_gguf.py``, ``conversion/`` and ``gguf-py/``."""
    return llama_cpp_tree(CONVERTER_PARTS, version=version)
