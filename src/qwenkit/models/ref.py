"""What a model reference names, decided once for every command.

A reference is a catalog id (optionally ``:quant``), a Hub repo id (optionally ``:quant`` for a
GGUF repo), a local directory with safetensors + config + tokenizer, or a ``.gguf`` file. Resolving
never touches the network: it only says *what* is meant; ``ensure_local`` decides *where* it comes from.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Protocol

from qwenkit.catalog.schema import Variant
from qwenkit.errors import ModelFormatError, ModelNotFoundError, UsageError

DEFAULT_QUANT = "q4_k_m"

_QUANT_RE = re.compile(r"^[A-Za-z0-9_.]+$")
_REPO_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9_.-]+$")
_FILE_QUANT_RE = re.compile(r"[-_.]((?:i?q\d(?:_[a-z0-9]+)*)|bf16|f16|f32)(?:-\d{5}-of-\d{5})?$")
_TOKENIZER_FILES = (("tokenizer.json",), ("vocab.json", "merges.txt"))
_SHARD_RE = re.compile(r"^(?P<stem>.+)-(?P<index>\d{5})-of-(?P<total>\d{5})\.gguf$")


class CatalogLike(Protocol):
    """What the resolver needs from the catalog (``qwenkit.catalog.load_catalog()`` provides it)."""

    def get(self, model_id: str) -> Variant: ...

    def all(self) -> Sequence[Variant]: ...


class RefKind(str, Enum):
    CATALOG = "catalog"
    HUB = "hub"
    LOCAL_DIR = "local-dir"
    GGUF_FILE = "gguf-file"


class ModelFormat(str, Enum):
    """How a model's weights are stored: which backends can read it."""

    GGUF = "gguf"
    SAFETENSORS = "safetensors"


@dataclass(frozen=True)
class ModelRef:
    """A resolved reference. ``filename`` is None for a safetensors repo (the whole snapshot is meant)."""

    kind: RefKind
    variant: Variant | None
    quant: str | None
    repo_id: str | None
    filename: str | None
    path: Path | None
    text: str = ""

    @property
    def format(self) -> ModelFormat:
        if self.kind == RefKind.GGUF_FILE or self.quant or (self.filename or "").endswith(".gguf"):
            return ModelFormat.GGUF
        return ModelFormat.SAFETENSORS

    @property
    def is_local_path(self) -> bool:
        return self.kind in (RefKind.LOCAL_DIR, RefKind.GGUF_FILE)

    @property
    def display(self) -> str:
        if self.path is not None:
            return str(self.path)
        if self.variant is not None:
            return f"{self.variant.id}:{self.quant}" if self.quant else self.variant.id
        return f"{self.repo_id}:{self.quant}" if self.quant else str(self.repo_id)


def default_catalog() -> CatalogLike:
    from qwenkit.catalog import load_catalog

    catalog: CatalogLike = load_catalog()
    return catalog


def quant_from_filename(name: str) -> str | None:
    """``qwen2.5-7b-instruct-q4_k_m.gguf`` -> ``q4_k_m`` (the Qwen/llama.cpp naming convention)."""
    stem = name.lower().removesuffix(".gguf")
    match = _FILE_QUANT_RE.search(stem)
    return match.group(1) if match else None


def shard_names(filename: str) -> list[str]:
    """Every file of a split GGUF given its first shard (``x-00001-of-00003.gguf``); else just the file."""
    match = _SHARD_RE.match(filename)
    if match is None:
        return [filename]
    total = int(match.group("total"))
    return [f"{match.group('stem')}-{i:05d}-of-{total:05d}.gguf" for i in range(1, total + 1)]


def _split_quant(text: str) -> tuple[str, str | None]:
    base, sep, quant = text.rpartition(":")
    if not sep or not base or not _QUANT_RE.match(quant) or "/" in quant:
        return text, None
    return base, quant.lower()


def _local_dir_ref(path: Path, text: str) -> ModelRef:
    missing = []
    if not (path / "config.json").is_file():
        missing.append("config.json")
    if not any(path.glob("*.safetensors")):
        missing.append("*.safetensors weights")
    if not any(all((path / name).is_file() for name in group) for group in _TOKENIZER_FILES):
        missing.append("tokenizer.json (or vocab.json + merges.txt)")
    if missing:
        ggufs = sorted(p.name for p in path.glob("*.gguf"))
        hint = f"it holds GGUF files; give one of them instead: {path / ggufs[0]}" if ggufs else None
        raise ModelFormatError(f"{path} is not a model directory: missing {', '.join(missing)}", hint=hint)
    return ModelRef(RefKind.LOCAL_DIR, None, None, None, None, path, text)


def _gguf_file_ref(path: Path, quant: str | None, text: str, catalog: CatalogLike | None) -> ModelRef:
    """A local GGUF file; the catalog entry it belongs to is attached when its file name says so."""
    variant = None
    for candidate in (catalog if catalog is not None else default_catalog()).all():
        for file_quant, name in candidate.gguf_files.items():
            if name == path.name:
                variant, quant = candidate, quant or file_quant
    quant = quant or quant_from_filename(path.name)
    return ModelRef(RefKind.GGUF_FILE, variant, quant, None, None, path, text)


def _resolve_path(text: str, catalog: CatalogLike | None) -> ModelRef | None:
    """A reference that names something on disk, or None when it does not look like a path."""
    base, quant = _split_quant(text)
    for candidate, q in ((text, None), (base, quant)):
        path = Path(candidate).expanduser()
        if path.is_dir():
            return _local_dir_ref(path.resolve(), text)
        if path.is_file():
            if path.suffix.lower() != ".gguf":
                raise ModelFormatError(
                    f"{path} is not a .gguf file",
                    hint="a model reference is a .gguf file, a model directory, a catalog id or a Hub repo",
                )
            return _gguf_file_ref(path.resolve(), q, text, catalog)
    looks_like_path = text.startswith(("/", "./", "../", "~")) or base.lower().endswith(".gguf")
    if looks_like_path:
        raise ModelNotFoundError(f"no such file or directory: {base}")
    return None


def _pick_quant(variant: Variant, quant: str | None) -> str | None:
    if quant is None:
        if not variant.gguf_files:
            return None
        return DEFAULT_QUANT if DEFAULT_QUANT in variant.gguf_files else next(iter(variant.gguf_files))
    if quant not in variant.gguf_files:
        known = ", ".join(variant.gguf_files) or "none (this model has no GGUF files in the catalog)"
        raise UsageError(f"{variant.id} has no quant {quant!r}; available: {known}", param="model")
    return quant


def _variant_ref(variant: Variant, quant: str | None, kind: RefKind, text: str) -> ModelRef:
    if quant is not None and quant not in variant.gguf_files:
        from qwenkit.models.made import find_made

        made = find_made(variant.id, quant)  # e.g. a Q6_K made here with qwenkit quantize
        if made is not None:
            return ModelRef(RefKind.GGUF_FILE, variant, quant, None, None, made, text)
    chosen = _pick_quant(variant, quant)
    if chosen is None:
        return ModelRef(kind, variant, None, variant.hf_repo, None, None, text)
    return ModelRef(kind, variant, chosen, variant.gguf_repo, variant.gguf_files[chosen], None, text)


def _lookup(catalog: CatalogLike, model_id: str) -> Variant | None:
    try:
        return catalog.get(model_id)
    except ModelNotFoundError:
        return None


def _resolve_repo(repo_id: str, quant: str | None, text: str, catalog: CatalogLike) -> ModelRef:
    lowered = repo_id.lower()
    for variant in catalog.all():
        if variant.gguf_repo and variant.gguf_repo.lower() == lowered:
            return _variant_ref(variant, quant, RefKind.HUB, text)
        if variant.hf_repo.lower() == lowered:
            if quant is None:
                return ModelRef(RefKind.HUB, variant, None, variant.hf_repo, None, None, text)
            return _variant_ref(variant, quant, RefKind.HUB, text)
    if quant is None and lowered.endswith("-gguf"):
        raise UsageError(
            f"{repo_id} is a GGUF repo: say which quant, e.g. {repo_id}:{DEFAULT_QUANT}", param="model"
        )
    return ModelRef(RefKind.HUB, None, quant, repo_id, None, None, text)


def resolve(ref: str, *, catalog: CatalogLike | None = None) -> ModelRef:
    """Decide what ``ref`` names, without touching the network."""
    text = ref.strip() if isinstance(ref, str) else ""
    if not text:
        raise UsageError("a model reference must not be empty", param="model")
    local = _resolve_path(text, catalog)
    if local is not None:
        return local
    catalog = catalog if catalog is not None else default_catalog()
    base, quant = _split_quant(text)
    if _REPO_RE.match(base):
        return _resolve_repo(base, quant, text, catalog)
    variant = _lookup(catalog, base.lower()) if "/" not in base else None
    if variant is not None:
        return _variant_ref(variant, quant, RefKind.CATALOG, text)
    ids = [v.id for v in catalog.all()]
    close = difflib.get_close_matches(base.lower(), ids, n=3, cutoff=0.6)
    hint = f"did you mean: {', '.join(close)}?" if close else "see `qwenkit catalog` for known ids"
    message = f"unknown model {text!r}: not a catalog id, Hub repo id or local path"
    raise ModelNotFoundError(message, hint=hint)
