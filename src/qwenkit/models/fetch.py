"""Make a model local: the caches first, then the Hub (failing fast when unreachable), then mirrors.

Every command goes through ``ensure_local``; when nothing can deliver, the one FetchError says what was
tried and how to name a local file instead.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from qwenkit.catalog.schema import Mirror, Variant
from qwenkit.errors import FetchError, ModelNotFoundError
from qwenkit.models import hub, store
from qwenkit.models.made import find_made
from qwenkit.models.mirrors import fetch_from_mirror
from qwenkit.models.ref import ModelFormat, ModelRef, resolve, shard_names

_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class LocalModel:
    """A model on this machine. ``source`` says where it came from; ``downloaded`` if it came just now."""

    path: Path
    format: ModelFormat
    variant: Variant | None
    quant: str | None
    sha256: str | None = None
    source: str = "local path"
    downloaded: bool = False


class _Unavailable(Exception):
    def __init__(self, reason: str, *, not_found: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.not_found = not_found


def mirrors_for(ref: ModelRef) -> tuple[Mirror, ...]:
    """The catalog's mirrors that hold exactly the file ``ref`` names."""
    if ref.variant is None or ref.format is not ModelFormat.GGUF:
        return ()
    return tuple(
        m for m in ref.variant.mirrors
        if m.filename == ref.filename or (ref.filename is None and m.quant == ref.quant)
    )


def known_sha256(ref: ModelRef) -> str | None:
    return next((m.sha256.lower() for m in mirrors_for(ref) if m.sha256), None)


def _hub_sha(path: Path) -> str | None:
    """The sha256 the Hub gave an LFS file: its blob in the HF cache is named after it."""
    name = path.resolve().name
    return name if _SHA256_RE.match(name) else None


def _model(ref: ModelRef, path: Path, sha: str | None, source: str, downloaded: bool = False) -> LocalModel:
    return LocalModel(path, ref.format, ref.variant, ref.quant, sha, source, downloaded)


def _store_repo(ref: ModelRef) -> str:
    return ref.repo_id or (ref.variant.hf_repo if ref.variant else "local")


def find_local(ref: ModelRef) -> LocalModel | None:
    """The model if it is already on this machine; never touches the network."""
    if ref.path is not None:
        return _model(ref, ref.path, None, "local path")
    if ref.repo_id is None:
        return None
    if ref.format is ModelFormat.SAFETENSORS:
        snapshot = hub.cached_snapshot(ref.repo_id)
        return _model(ref, snapshot, None, "hf-cache") if snapshot else None
    if ref.filename is None:
        cached = hub.cached_gguf(ref.repo_id, ref.quant or "")
        return _model(ref, cached, _hub_sha(cached), "hf-cache") if cached else _made(ref)
    shards = [hub.cached_file(ref.repo_id, name) for name in shard_names(ref.filename)]
    if shards[0] is not None and None not in shards:
        return _model(ref, shards[0], _hub_sha(shards[0]), "hf-cache")
    stored = store.find_in_store(ref.repo_id, ref.filename)
    if stored is not None:
        return _model(ref, stored, store.recorded_sha256(stored), "qwenkit-store")
    return _made(ref)


def _made(ref: ModelRef) -> LocalModel | None:
    """A file of this catalog entry and quant that qwenkit convert/quantize made here."""
    made = find_made(ref.variant.id, ref.quant) if ref.variant is not None and ref.quant else None
    return _model(ref, made, None, "made-locally") if made is not None else None


def _from_cache(ref: ModelRef, progress: bool) -> LocalModel:
    found = find_local(ref)
    if found is None:
        raise _Unavailable(f"not in the HF cache ({store.hub_cache_dir()}) nor in {store.store_root()}")
    return found


def _verify_hub_download(ref: ModelRef, path: Path) -> str | None:
    expected = known_sha256(ref)
    if expected is None:
        return _hub_sha(path)
    actual = store.sha256_file(path)
    if actual != expected:
        blob = path.resolve()
        path.unlink(missing_ok=True)
        blob.unlink(missing_ok=True)
        raise _Unavailable(f"the downloaded file has sha256 {actual}, expected {expected}; removed it")
    return actual


def _from_hub(ref: ModelRef, progress: bool) -> LocalModel:
    if ref.repo_id is None:
        raise _Unavailable("no Hub repo for this model")
    try:
        hub.check_reachable()
        if ref.format is ModelFormat.SAFETENSORS:
            return _model(ref, hub.download_snapshot(ref.repo_id, progress=progress), None, "hub", True)
        filename = ref.filename or hub.find_gguf_filename(ref.repo_id, ref.quant or "")
        paths = [hub.download_file(ref.repo_id, name, progress=progress) for name in shard_names(filename)]
        path = paths[0]  # llama.cpp finds the other shards next to the first
    except hub.HubMiss as miss:
        raise _Unavailable(miss.reason, not_found=miss.not_found) from None
    return _model(ref, path, _verify_hub_download(ref, path), "hub", True)


def _from_mirrors(ref: ModelRef, progress: bool) -> LocalModel:
    mirrors = mirrors_for(ref)
    if not mirrors:
        raise _Unavailable("the catalog lists no mirror for this file")
    reasons = []
    for mirror in mirrors:
        dest = store.store_path(_store_repo(ref), mirror.filename)
        try:
            fetch_from_mirror(mirror, dest, progress=progress)
        except FetchError as exc:
            reasons.append(f"{mirror.kind}: {exc.message}")
            continue
        store.write_record(dest, mirror.sha256.lower(), f"mirror:{mirror.kind}")
        return _model(ref, dest, mirror.sha256.lower(), f"mirror:{mirror.kind}", True)
    raise _Unavailable("; ".join(reasons))


Source = Callable[[ModelRef, bool], LocalModel]
SOURCES: tuple[tuple[str, Source], ...] = (
    ("local cache", _from_cache),
    ("Hugging Face Hub", _from_hub),
    ("mirrors", _from_mirrors),
)


def _what(ref: ModelRef) -> str:
    file = f"{ref.repo_id}/{ref.filename}" if ref.filename else str(ref.repo_id)
    return ref.display if ref.display == file else f"{ref.display} ({file})"


def _no_source(ref: ModelRef, attempts: list[str], not_found: bool) -> FetchError | ModelNotFoundError:
    name = ref.filename or "model-directory"
    hint = (
        f"If you have the model, give its path instead of the id: /path/to/{name}"
        + ("" if ref.filename else " (config.json, *.safetensors and tokenizer files)")
        + ". For the Hub: check the network, set HF_TOKEN for gated repos or HF_ENDPOINT for a Hub mirror."
    )
    message = f"could not get {_what(ref)}. Tried, in order: " + "; ".join(attempts) + "."
    if not_found:
        return ModelNotFoundError(message, hint=hint)
    return FetchError(message, hint=hint)


def ensure_local(ref: str | ModelRef, *, progress: bool = True) -> LocalModel:
    """The model on this machine, downloading it from the first source that can deliver it."""
    model_ref = resolve(ref) if isinstance(ref, str) else ref
    if model_ref.is_local_path:
        return _from_cache(model_ref, progress)
    attempts: list[str] = []
    not_found = False
    for label, source in SOURCES:
        try:
            return source(model_ref, progress)
        except _Unavailable as miss:
            attempts.append(f"{label}: {miss.reason}")
            not_found = not_found or miss.not_found
    raise _no_source(model_ref, attempts, not_found and not mirrors_for(model_ref))
