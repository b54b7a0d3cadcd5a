"""The Hugging Face Hub as a source: cache lookups without network, a fast reachability check, downloads.

``huggingface_hub`` retries a failed connection five times with backoff (about 24 s on a machine
without Hub access, measured), so before any download we send one HEAD to the endpoint with a short
timeout; only when that answers do we let ``hf_hub_download`` run (with its resume and token handling).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path

from qwenkit.models.ref import quant_from_filename
from qwenkit.models.store import hub_cache_dir

DEFAULT_ENDPOINT = "https://huggingface.co"
DEFAULT_TIMEOUT_S = 5.0
SNAPSHOT_PATTERNS = ["*.json", "*.safetensors", "merges.txt", "vocab.txt", "*.jinja", "tokenizer.model"]
_TRUE = {"1", "on", "yes", "true"}


class HubMiss(Exception):
    """Why the Hub could not deliver; ``not_found`` when it answered that the repo or file does not exist."""

    def __init__(self, reason: str, *, not_found: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.not_found = not_found


def hub_endpoint() -> str:
    return (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def hub_offline() -> bool:
    names = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    return any(os.environ.get(name, "").lower() in _TRUE for name in names)


def hub_timeout() -> float:
    """Seconds to wait for the Hub to answer (``QWENKIT_HUB_TIMEOUT``, default 5)."""
    try:
        value = float(os.environ.get("QWENKIT_HUB_TIMEOUT", DEFAULT_TIMEOUT_S))
    except ValueError:
        return DEFAULT_TIMEOUT_S
    return value if value > 0 else DEFAULT_TIMEOUT_S


@contextlib.contextmanager
def _progress_bars(enabled: bool) -> Iterator[None]:
    from huggingface_hub.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars

    was_disabled = are_progress_bars_disabled()
    if enabled != (not was_disabled):
        (enable_progress_bars if enabled else disable_progress_bars)()
    try:
        yield
    finally:
        (disable_progress_bars if was_disabled else enable_progress_bars)()


def cached_file(repo_id: str, filename: str) -> Path | None:
    """The file from the HF cache, without any network access; None when it is not there."""
    from huggingface_hub import hf_hub_download

    try:
        path = hf_hub_download(repo_id, filename, cache_dir=hub_cache_dir(), local_files_only=True)
    except (OSError, ValueError):  # LocalEntryNotFoundError is an OSError; ValueError: bad repo id
        return None
    return Path(path)


def cached_snapshot(repo_id: str) -> Path | None:
    """A cached safetensors snapshot of ``repo_id`` with a config.json; None when there is none."""
    from huggingface_hub import snapshot_download

    try:
        path = Path(
            snapshot_download(
                repo_id, cache_dir=hub_cache_dir(), local_files_only=True, allow_patterns=SNAPSHOT_PATTERNS
            )
        )
    except (OSError, ValueError):
        return None
    return path if (path / "config.json").is_file() and any(path.glob("*.safetensors")) else None


def cached_gguf(repo_id: str, quant: str) -> Path | None:
    """A cached GGUF of ``repo_id`` whose name carries ``quant`` (for repos the catalog does not know)."""
    snapshots = hub_cache_dir() / f"models--{repo_id.replace('/', '--')}" / "snapshots"
    if not snapshots.is_dir():
        return None
    matches = sorted(
        p for p in snapshots.glob("*/*.gguf") if p.exists() and quant_from_filename(p.name) == quant.lower()
    )
    return matches[0] if matches else None


def check_reachable() -> None:
    """One HEAD to the endpoint with a short timeout; raises HubMiss when nothing answers."""
    if hub_offline():
        raise HubMiss("skipped: HF_HUB_OFFLINE is set")
    from huggingface_hub import get_session

    endpoint, timeout = hub_endpoint(), hub_timeout()
    try:
        get_session().head(endpoint, timeout=timeout)
    except Exception as exc:  # any transport error means: not reachable from here
        raise HubMiss(f"{endpoint} is not reachable ({type(exc).__name__}: {exc})") from None


def _miss_from(exc: Exception, what: str) -> HubMiss:
    from huggingface_hub import errors

    table: tuple[tuple[type[Exception], Callable[[Exception], HubMiss]], ...] = (
        (errors.GatedRepoError, lambda e: HubMiss(
            f"{what} is gated: accept its licence on the Hub and log in (`hf auth login`) or set HF_TOKEN")),
        (errors.RepositoryNotFoundError, lambda e: HubMiss(
            f"{what}: repository not found on the Hub (or private without a token)", not_found=True)),
        (errors.EntryNotFoundError, lambda e: HubMiss(f"{what}: file not found in the repo", not_found=True)),
        (errors.RevisionNotFoundError, lambda e: HubMiss(f"{what}: revision not found", not_found=True)),
        (errors.OfflineModeIsEnabled, lambda e: HubMiss("skipped: HF_HUB_OFFLINE is set")),
        (errors.HfHubHTTPError, lambda e: HubMiss(f"{what}: the Hub answered with an error ({e})")),
    )
    for kind, build in table:
        if isinstance(exc, kind):
            return build(exc)
    return HubMiss(f"{what}: download failed ({type(exc).__name__}: {exc})")


def download_file(repo_id: str, filename: str, *, progress: bool) -> Path:
    """Download (or resume) one file into the HF cache."""
    from huggingface_hub import hf_hub_download

    try:
        with _progress_bars(progress):
            return Path(
                hf_hub_download(
                    repo_id, filename, cache_dir=hub_cache_dir(), endpoint=hub_endpoint(),
                    etag_timeout=hub_timeout(),
                )
            )
    except Exception as exc:  # translated into a readable reason; the caller tries the next source
        raise _miss_from(exc, f"{repo_id}/{filename}") from exc


def download_snapshot(repo_id: str, *, progress: bool) -> Path:
    """Download (or resume) the safetensors, config and tokenizer files of a repo into the HF cache."""
    from huggingface_hub import snapshot_download

    try:
        with _progress_bars(progress):
            path = snapshot_download(
                repo_id, cache_dir=hub_cache_dir(), endpoint=hub_endpoint(), etag_timeout=hub_timeout(),
                allow_patterns=SNAPSHOT_PATTERNS,
            )
    except Exception as exc:
        raise _miss_from(exc, repo_id) from exc
    return Path(path)


def find_gguf_filename(repo_id: str, quant: str) -> str:
    """The GGUF file of ``quant`` in a repo the catalog does not know (asks the Hub for the file list)."""
    from huggingface_hub import HfApi

    try:
        files = HfApi(endpoint=hub_endpoint()).list_repo_files(repo_id)
    except Exception as exc:
        raise _miss_from(exc, repo_id) from exc
    matches = sorted(f for f in files if f.endswith(".gguf") and quant_from_filename(f) == quant.lower())
    if not matches:
        quants = sorted({q for f in files if f.endswith(".gguf") and (q := quant_from_filename(f))})
        have = ", ".join(quants) or "none"
        raise HubMiss(f"{repo_id} has no {quant} GGUF (it has: {have})", not_found=True)
    return matches[0]
