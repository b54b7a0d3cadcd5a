"""The llama.cpp backend's modules import without llama-cpp-python; using them says what to install."""

from __future__ import annotations

import sys

import pytest

from qwenkit.engine import llama_lib as llama_lib_module
from qwenkit.errors import MissingDependencyError


def test_missing_llama_cpp_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import qwenkit.engine.llamacpp as backend_module  # importing needs no llama_cpp

    monkeypatch.setitem(sys.modules, "llama_cpp", None)
    monkeypatch.setitem(sys.modules, "llama_cpp.llama_cpp", None)
    llama_lib_module.llama_lib.cache_clear()
    try:
        with pytest.raises(MissingDependencyError) as info:
            backend_module.LlamaCppBackend.load("/nonexistent.gguf")
        assert "qwenkit[llama]" in str(info.value)
    finally:
        llama_lib_module.llama_lib.cache_clear()
