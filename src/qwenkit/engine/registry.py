"""Backends by name; ``auto`` picks by model format. Imports are lazy: extras stay optional."""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from qwenkit.engine.types import Backend, BackendOptions
from qwenkit.errors import MissingDependencyError, UsageError


@dataclass(frozen=True)
class BackendEntry:
    module: str
    cls: str
    needs: str  # the third-party module the backend imports
    extra: str  # the qwenkit extra that installs it
    formats: frozenset[str]

    def loader(self) -> Callable[[Path, BackendOptions], Backend]:
        if importlib.util.find_spec(self.needs) is None:
            raise MissingDependencyError.for_extra(self.needs, self.extra)
        backend_cls = getattr(importlib.import_module(self.module), self.cls)
        return backend_cls.load  # type: ignore[no-any-return]


BACKENDS: dict[str, BackendEntry] = {
    "llamacpp": BackendEntry(
        "qwenkit.engine.llamacpp", "LlamaCppBackend", "llama_cpp", "llama", frozenset({"gguf"})
    ),
    "transformers": BackendEntry(
        "qwenkit.engine.transformers",
        "TransformersBackend",
        "transformers",
        "hf",
        frozenset({"gguf", "safetensors"}),
    ),
}

# The first backend in this order that reads a format serves it under "auto".
AUTO_ORDER = ("llamacpp", "transformers")


def choose_backend(name: str, model_format: str) -> BackendEntry:
    if name == "auto":
        for candidate in AUTO_ORDER:
            if model_format in BACKENDS[candidate].formats:
                return BACKENDS[candidate]
        raise UsageError(f"no backend reads {model_format} models", param="backend")
    entry = BACKENDS.get(name)
    if entry is None:
        known = ", ".join(["auto", *BACKENDS])
        raise UsageError(f"unknown backend {name!r}; choose one of: {known}", param="backend")
    if model_format not in entry.formats:
        raise UsageError(f"the {name} backend cannot load {model_format} models", param="backend")
    return entry
