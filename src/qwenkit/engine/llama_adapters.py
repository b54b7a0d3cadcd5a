"""LoRA adapters on the llama.cpp runner, chosen per request.

llama.cpp applies adapters to a whole context (``llama_set_adapters_lora``), so one ``llama_decode``
can only serve sequences that use the same adapter (or none). The runner therefore groups running
sequences by adapter and gives the groups turns, one group per step; the KV a slot caches is tagged
with the adapter that computed it, so a prefix is reused only under the same adapter.
"""

from __future__ import annotations

import ctypes
from collections.abc import Sequence as Seq
from pathlib import Path
from typing import Any

from qwenkit.engine.sequence import Sequence
from qwenkit.errors import ModelFormatError, ModelNotFoundError, UsageError


class LlamaAdapters:
    """Named GGUF LoRA adapters of one model, and which one the context has applied."""

    def __init__(self, lib: Any, model: Any, named: Seq[tuple[str, str]]) -> None:
        self._lib = lib
        self._by_name: dict[str, Any] = {}
        for name, path in named:
            if not Path(path).is_file():
                raise ModelNotFoundError(f"no GGUF adapter file at {path} (adapter {name!r})")
            ptr = lib.llama_adapter_lora_init(model, str(path).encode())
            if not ptr:
                raise ModelFormatError(f"llama.cpp could not load the LoRA adapter {path} on this model")
            self._by_name[name] = ptr
        self._active: str | None = None
        self._turn = 0
        self.switches = 0

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._by_name)

    def __bool__(self) -> bool:
        return bool(self._by_name)

    def check(self, name: str | None) -> None:
        if name is not None and name not in self._by_name:
            known = ", ".join(self._by_name) or "none"
            raise UsageError(f"no adapter named {name!r} is loaded (loaded: {known})", param="model")

    def group(self, seqs: list[Sequence]) -> list[Sequence]:
        """The sequences that run this step: one adapter's group, the groups taking turns."""
        if not self._by_name:
            return seqs
        keys = sorted({s.params.adapter or "" for s in seqs})
        if len(keys) <= 1:
            chosen = keys[0] if keys else ""
        else:
            chosen = keys[self._turn % len(keys)]
            self._turn += 1
        return [s for s in seqs if (s.params.adapter or "") == chosen]

    def apply(self, ctx: Any, name: str | None) -> None:
        """Make ``name`` (None: no adapter) the context's adapter, if it is not already."""
        if name == self._active:
            return
        lib = self._lib
        if name is None:
            status = lib.llama_set_adapters_lora(ctx, None, 0, None)
        else:
            adapters = (lib.llama_adapter_lora_p_ctypes * 1)(
                ctypes.cast(self._by_name[name], lib.llama_adapter_lora_p_ctypes)
            )
            scales = (ctypes.c_float * 1)(1.0)
            status = lib.llama_set_adapters_lora(ctx, adapters, 1, scales)
        if status != 0:
            raise ModelFormatError(f"llama.cpp could not apply the adapter {name!r} (status {status})")
        self._active = name
        self.switches += 1
