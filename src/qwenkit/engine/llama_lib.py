"""Lazy access to llama-cpp-python's low-level bindings, so the base package imports without them."""

from __future__ import annotations

import ctypes
import functools
import logging
from types import ModuleType
from typing import Any

from qwenkit.errors import MissingDependencyError


@functools.lru_cache(maxsize=1)
def llama_lib() -> ModuleType:
    """``llama_cpp.llama_cpp`` with the backend initialised and llama.cpp's load chatter muted."""
    try:
        import llama_cpp.llama_cpp as lib
    except ImportError as exc:
        raise MissingDependencyError.for_extra("llama_cpp", "llama") from exc
    lib.llama_log_set(_log_router(lib), ctypes.c_void_p(0))
    lib.llama_backend_init()
    return lib


# ggml_log_level: 0 none, 1 info, 2 warn, 3 error, 4 debug, 5 continuation of the previous line.
_LEVELS = {0: logging.CRITICAL, 1: logging.INFO, 2: logging.WARNING, 3: logging.ERROR, 4: logging.DEBUG}


@functools.lru_cache(maxsize=1)
def _log_router(lib: ModuleType) -> Any:
    """Route llama.cpp's own log lines to the ``qwenkit.llama`` logger instead of raw stderr.

    llama.cpp reports quirks of a model file (e.g. "control-looking token ...") at error level while
    loading; printed raw they would break ``qwenkit run``'s clean stderr. The callback object is
    cached so that ctypes keeps it alive for as long as llama.cpp may call it.
    """
    logger = logging.getLogger("qwenkit.llama")

    @lib.llama_log_callback  # type: ignore[untyped-decorator]
    def route(level: int, text: bytes, _user_data: ctypes.c_void_p) -> None:
        message = text.decode("utf-8", errors="replace").rstrip("\n")
        if message:
            logger.log(_LEVELS.get(level, logging.DEBUG), "%s", message)

    return route
