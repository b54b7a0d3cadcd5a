"""Backends by kind; ``auto`` picks by model format. Imports are lazy: extras stay optional."""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from qwenkit.engine.types import Backend, BackendKind, BackendOptions
from qwenkit.engine.vllm_settings import VllmSettings
from qwenkit.errors import MissingDependencyError, UsageError
from qwenkit.models.ref import ModelFormat

AUTO = "auto"


@dataclass(frozen=True)
class BackendEntry:
    kind: BackendKind
    module: str
    cls: str
    needs: str  # the third-party module the backend imports
    extra: str  # the qwenkit extra that installs it
    formats: frozenset[ModelFormat]

    def loader(self) -> Callable[[Path, BackendOptions], Backend]:
        if importlib.util.find_spec(self.needs) is None:
            raise MissingDependencyError.for_extra(self.needs, self.extra)
        backend_cls = getattr(importlib.import_module(self.module), self.cls)
        return backend_cls.load  # type: ignore[no-any-return]


# In ``auto`` order: the first backend that reads a format serves it.
BACKENDS: dict[BackendKind, BackendEntry] = {
    BackendKind.LLAMACPP: BackendEntry(
        BackendKind.LLAMACPP,
        "qwenkit.engine.llamacpp",
        "LlamaCppBackend",
        "llama_cpp",
        "llama",
        frozenset({ModelFormat.GGUF}),
    ),
    BackendKind.TRANSFORMERS: BackendEntry(
        BackendKind.TRANSFORMERS,
        "qwenkit.engine.transformers",
        "TransformersBackend",
        "transformers",
        "hf",
        frozenset({ModelFormat.GGUF, ModelFormat.SAFETENSORS}),
    ),
    # Last: ``auto`` never picks it (GPU serving is asked for by name, or recommended by ``select``).
    BackendKind.VLLM: BackendEntry(
        BackendKind.VLLM,
        "qwenkit.engine.vllm",
        "VllmBackend",
        "vllm",
        "vllm",
        frozenset({ModelFormat.SAFETENSORS}),
    ),
}
BACKEND_CHOICES = (AUTO, *(kind.value for kind in BACKENDS))


def backend_kind(name: str) -> BackendKind | None:
    """The kind a ``--backend`` value names; None for ``auto``; UsageError for anything else."""
    if name == AUTO:
        return None
    try:
        return BackendKind(name)
    except ValueError:
        raise UsageError(
            f"unknown backend {name!r}; choose one of: {', '.join(BACKEND_CHOICES)}", param="backend"
        ) from None


def check_options(entry: BackendEntry, options: BackendOptions) -> None:
    """Settings only vLLM honours are refused elsewhere, rather than silently ignored."""
    check_vllm_settings(entry.kind.value, options.vllm)
    if options.mmproj is not None and entry.kind is not BackendKind.LLAMACPP:
        raise UsageError(
            "a vision projector (mmproj) is llama.cpp's; the transformers and vLLM backends read the "
            "vision tower from the checkpoint itself", param="mmproj",
        )


def check_vllm_settings(backend: str, settings: VllmSettings | None) -> None:
    """The same rule for a ``--backend`` value, before anything is loaded (``auto`` never picks vLLM)."""
    if backend != BackendKind.VLLM.value and settings is not None and not settings.is_default:
        raise UsageError(
            f"parallelism, GPU memory and quantization settings are vLLM's; the {backend} backend "
            "would ignore them (add --backend vllm)",
            param="backend",
        )


def choose_backend(name: str, model_format: ModelFormat) -> BackendEntry:
    kind = backend_kind(name)
    if kind is None:
        for entry in BACKENDS.values():
            if model_format in entry.formats:
                return entry
        raise UsageError(f"no backend reads {model_format.value} models", param="backend")
    entry = BACKENDS[kind]
    if model_format not in entry.formats:
        raise UsageError(f"the {kind.value} backend cannot load {model_format.value} models", param="backend")
    return entry
