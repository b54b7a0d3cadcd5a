"""Model references, fetching, the local store and reading model files without loading weights."""

from __future__ import annotations

from qwenkit.defaults import DEFAULT_MODEL
from qwenkit.models.fetch import LocalModel, ensure_local, find_local
from qwenkit.models.gguf_reader import GGUFMetadata, SpecialToken, read_gguf_metadata
from qwenkit.models.inspect import ModelInfo, inspect_path, template_family
from qwenkit.models.inventory import LocalEntry, RemovalReport, list_local, remove
from qwenkit.models.ref import ModelRef, RefKind, resolve

__all__ = [
    "DEFAULT_MODEL",
    "GGUFMetadata",
    "LocalEntry",
    "LocalModel",
    "ModelInfo",
    "ModelRef",
    "RefKind",
    "RemovalReport",
    "SpecialToken",
    "ensure_local",
    "find_local",
    "inspect_path",
    "list_local",
    "read_gguf_metadata",
    "remove",
    "resolve",
    "template_family",
]
