"""What is on this machine (``qwenkit list``) and removing it (``qwenkit rm``), across both stores.

GGUF repos hold one file per quant and people pull one quant, so GGUF files are listed and removed
one by one; a safetensors repo is one model and is listed and removed whole.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from qwenkit.errors import UsageError
from qwenkit.models import store
from qwenkit.models.made import made_files
from qwenkit.models.ref import CatalogLike, ModelRef, quant_from_filename, shard_names
from qwenkit.models.store import Removed


@dataclass(frozen=True)
class LocalEntry:
    """One local model. ``ref`` is what to pass as --model (a catalog id:quant when the catalog knows it)."""

    ref: str
    source: str  # hf-cache | qwenkit-store | made-locally
    repo_id: str
    filename: str | None  # None: a whole safetensors snapshot
    path: Path
    size: int

    def to_dict(self) -> dict[str, object]:
        return {"ref": self.ref, "source": self.source, "repo_id": self.repo_id, "filename": self.filename,
                "path": str(self.path), "size": self.size}


@dataclass(frozen=True)
class RemovalReport:
    ref: str
    removed: tuple[Removed, ...]

    @property
    def freed(self) -> int:
        return sum(r.size for r in self.removed)


def _ref_names(catalog: CatalogLike | None) -> tuple[dict[tuple[str, str], str], dict[str, str]]:
    """(repo, file) -> "id:quant" for GGUF files and repo -> id for safetensors repos."""
    files: dict[tuple[str, str], str] = {}
    repos: dict[str, str] = {}
    for variant in catalog.all() if catalog is not None else ():
        repos[variant.hf_repo.lower()] = variant.id
        for quant, name in variant.gguf_files.items():
            files[((variant.gguf_repo or "").lower(), name)] = f"{variant.id}:{quant}"
    return files, repos


def _gguf_ref(repo_id: str, filename: str, files: dict[tuple[str, str], str]) -> str:
    known = files.get((repo_id.lower(), filename))
    if known:
        return known
    quant = quant_from_filename(filename)
    return f"{repo_id}:{quant}" if quant else repo_id


def _hub_entries(files: dict[tuple[str, str], str], repos: dict[str, str]) -> list[LocalEntry]:
    from huggingface_hub import scan_cache_dir

    cache = store.hub_cache_dir()
    if not cache.is_dir():
        return []
    try:
        info = scan_cache_dir(cache)
    except (OSError, ValueError):
        return []
    entries: list[LocalEntry] = []
    for repo in sorted(info.repos, key=lambda r: r.repo_id):
        if repo.repo_type != "model":
            continue
        ggufs = {f.file_name: f for rev in repo.revisions for f in rev.files if f.file_name.endswith(".gguf")}
        for name, file in sorted(ggufs.items()):
            shards = shard_names(name)
            if shards[0] != name:  # later shards of a split GGUF are counted with the first
                continue
            size = sum(ggufs[s].size_on_disk for s in shards if s in ggufs)
            ref = _gguf_ref(repo.repo_id, name, files)
            entries.append(LocalEntry(ref, "hf-cache", repo.repo_id, name, file.file_path, size))
        if not ggufs:
            ref = repos.get(repo.repo_id.lower(), repo.repo_id)
            entries.append(LocalEntry(ref, "hf-cache", repo.repo_id, None, repo.repo_path, repo.size_on_disk))
    return entries


def list_local(catalog: CatalogLike | None = None) -> list[LocalEntry]:
    """Every model in the HF cache and in qwenkit's store, with its size on disk."""
    files, repos = _ref_names(catalog)
    entries = _hub_entries(files, repos)
    for repo_id, path in store.store_files():
        ref = _gguf_ref(repo_id, path.name, files)
        entries.append(LocalEntry(ref, "qwenkit-store", repo_id, path.name, path, path.stat().st_size))
    for made in made_files():
        ref = f"{made.variant}:{made.quant}" if made.variant and made.quant else str(made.path)
        entries.append(LocalEntry(ref, "made-locally", made.variant or "", made.path.name, made.path,
                                  made.path.stat().st_size))  # fmt: skip
    return entries


def _hub_repo_dir(repo_id: str) -> Path:
    return store.hub_cache_dir() / f"models--{repo_id.replace('/', '--')}"


def _referenced_blobs(snapshots: Path) -> set[Path]:
    return {p.resolve() for p in snapshots.glob("*/**/*") if p.is_symlink()}


def _remove_hub_file(repo_id: str, filename: str) -> list[Removed]:
    """Unlink the file from every snapshot, then its blob once no snapshot points at it."""
    repo_dir = _hub_repo_dir(repo_id)
    snapshots = repo_dir / "snapshots"
    links = [p for p in snapshots.glob(f"*/{filename}") if p.is_symlink() or p.is_file()]
    removed: list[Removed] = []
    blobs = set()
    for link in links:
        if link.is_symlink():
            blobs.add(link.resolve())
            link.unlink()
        else:  # caches without symlinks (Windows) hold plain copies
            removed.append(Removed(link, link.stat().st_size))
            link.unlink()
    still_used = _referenced_blobs(snapshots) if snapshots.is_dir() else set()
    for blob in blobs - still_used:
        if blob.is_file():
            removed.append(Removed(blob, blob.stat().st_size))
            blob.unlink()
    if links and not any(p.is_file() for p in snapshots.glob("*/**/*")):
        shutil.rmtree(repo_dir, ignore_errors=True)
    return removed


def _remove_hub_repo(repo_id: str) -> list[Removed]:
    repo_dir = _hub_repo_dir(repo_id)
    if not repo_dir.is_dir():
        return []
    files = [*repo_dir.glob("blobs/*"), *repo_dir.glob("snapshots/*/**/*")]  # not refs/: bookkeeping
    size = sum(p.stat().st_size for p in files if p.is_file() and not p.is_symlink())
    shutil.rmtree(repo_dir)
    return [Removed(repo_dir, size)]


def _unique(items: Iterable[Removed]) -> tuple[Removed, ...]:
    return tuple({r.path: r for r in items}.values())


def remove(ref: ModelRef) -> RemovalReport:
    """Delete what ``ref`` names from the HF cache and qwenkit's store (an empty report: nothing there)."""
    if ref.is_local_path or ref.repo_id is None:
        raise UsageError(
            f"{ref.display} is a local path, not a downloaded model; qwenkit rm only removes what it "
            "downloaded (delete the file yourself if you mean to)", param="model",
        )
    repo_id = ref.repo_id
    if ref.filename is not None:
        removed = []
        for name in shard_names(ref.filename):
            removed += _remove_hub_file(repo_id, name) + store.remove_from_store(repo_id, name)
    elif ref.quant is not None:
        names = {p.name for p in _hub_repo_dir(repo_id).glob("snapshots/*/*.gguf")}
        names |= {p.name for r, p in store.store_files() if r.lower() == repo_id.lower()}
        removed = []
        for name in sorted(n for n in names if quant_from_filename(n) == ref.quant):
            removed += _remove_hub_file(repo_id, name) + store.remove_from_store(repo_id, name)
    else:
        removed = _remove_hub_repo(repo_id) + store.remove_from_store(repo_id, None)
    return RemovalReport(ref.display, _unique(removed))
