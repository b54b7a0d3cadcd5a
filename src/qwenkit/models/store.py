"""Where local models live: the Hugging Face cache, plus qwenkit's own store for mirror-fetched files.

Hub downloads go to the standard HF cache (``$HF_HUB_CACHE`` or ``$HF_HOME/hub``) so that every
HF tool shares them. Files assembled from a mirror cannot live there (the cache is keyed by Hub
commit hashes we do not have), so they go to ``$QWENKIT_HOME/models/<owner>--<name>/<file>``,
``$QWENKIT_HOME`` defaulting to ``$HF_HOME/qwenkit``. Every path is read from the environment at
call time, so tests (and users) can point both at a temporary folder.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

RECORD_SUFFIX = ".qwenkit.json"
PARTIAL_MARK = ".partial-"
_CHUNK = 1 << 20


def hf_home() -> Path:
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "huggingface"


def hub_cache_dir() -> Path:
    for name in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(name):
            return Path(os.environ[name]).expanduser()
    return hf_home() / "hub"


def qwenkit_home() -> Path:
    override = os.environ.get("QWENKIT_HOME")
    return Path(override).expanduser() if override else hf_home() / "qwenkit"


def store_root() -> Path:
    return qwenkit_home() / "models"


def repo_folder(repo_id: str) -> str:
    return repo_id.replace("/", "--")


def store_path(repo_id: str, filename: str) -> Path:
    """Where a mirror-fetched file of ``repo_id`` lives (whether or not it is there yet)."""
    return store_root() / repo_folder(repo_id) / filename


def sha256_file(path: Path, progress: Callable[[int], None] | None = None) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
            if progress is not None:
                progress(len(chunk))
    return digest.hexdigest()


def _record_path(path: Path) -> Path:
    return path.with_name(path.name + RECORD_SUFFIX)


def write_record(path: Path, sha256: str, source: str) -> None:
    """Remember that ``path`` was verified, so later runs need not hash it again."""
    stat = path.stat()
    record = {"sha256": sha256, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "source": source}
    tmp = path.with_name(f".{path.name}.record-{os.getpid()}")
    tmp.write_text(json.dumps(record))
    os.replace(tmp, _record_path(path))


def recorded_sha256(path: Path) -> str | None:
    """The sha256 verified earlier, if the file is unchanged since (same size and mtime)."""
    try:
        record = json.loads(_record_path(path).read_text())
        stat = path.stat()
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict):
        return None
    if record.get("size") != stat.st_size or record.get("mtime_ns") != stat.st_mtime_ns:
        return None
    sha = record.get("sha256")
    return sha if isinstance(sha, str) else None


def _is_model_file(path: Path) -> bool:
    name = path.name
    return path.is_file() and not name.startswith(".") and not name.endswith(RECORD_SUFFIX)


def store_files() -> Iterator[tuple[str, Path]]:
    """(repo_id, path) of every complete file in qwenkit's own store."""
    root = store_root()
    if not root.is_dir():
        return
    for repo_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        repo_id = repo_dir.name.replace("--", "/", 1)
        for path in sorted(repo_dir.iterdir()):
            if _is_model_file(path):
                yield repo_id, path


def find_in_store(repo_id: str, filename: str) -> Path | None:
    path = store_path(repo_id, filename)
    return path if path.is_file() else None


@dataclass(frozen=True)
class Removed:
    path: Path
    size: int


def remove_store_file(path: Path) -> list[Removed]:
    """Delete one store file, its record and any partial download of it."""
    removed: list[Removed] = []
    candidates = [path, _record_path(path), *path.parent.glob(f".{path.name}{PARTIAL_MARK}*")]
    for candidate in candidates:
        if candidate.is_file():
            size = candidate.stat().st_size
            candidate.unlink()
            removed.append(Removed(candidate, size))
    if path.parent.is_dir() and not any(path.parent.iterdir()):
        path.parent.rmdir()
    return removed


def remove_from_store(repo_id: str, filename: str | None) -> list[Removed]:
    """Remove one file of a repo from the store, or every file of it when ``filename`` is None."""
    folder = store_root() / repo_folder(repo_id)
    if not folder.is_dir():
        return []
    targets = [folder / filename] if filename else [p for p in folder.iterdir() if _is_model_file(p)]
    removed: list[Removed] = []
    for target in targets:
        removed.extend(remove_store_file(target))
    return removed
