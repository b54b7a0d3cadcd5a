"""Lazy access to llama-cpp-python's low-level bindings, so the base package imports without them."""

from __future__ import annotations

import ctypes
import functools
import logging
import os
import sys
from collections.abc import MutableMapping
from types import ModuleType
from typing import Any

from qwenkit.errors import MissingDependencyError

# How llama.cpp's OpenMP worker threads wait for each other (chosen by benchmarks/bench_contention.py):
# OpenMP reads these when llama.cpp's library loads, so they are set just before the first import, and
# only where the user set neither (QWENKIT_OMP_POLICY=off keeps OpenMP's own defaults).
OMP_POLICY: dict[str, str] = {"GOMP_SPINCOUNT": "10000"}
OMP_VARIABLES = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")


def apply_omp_policy(environ: MutableMapping[str, str] = os.environ) -> bool:
    """Set qwenkit's OpenMP wait policy in ``environ``; False when the user's settings stand instead,
    or when llama.cpp is already loaded (then it is too late to change)."""
    if environ.get("QWENKIT_OMP_POLICY") == "off" or any(k in environ for k in OMP_VARIABLES):
        return False
    if "llama_cpp.llama_cpp" in sys.modules:
        logging.getLogger("qwenkit.llama").debug("llama.cpp was loaded before qwenkit set its thread policy")
        return False
    environ.update(OMP_POLICY)
    return True


@functools.lru_cache(maxsize=1)
def llama_lib() -> ModuleType:
    """``llama_cpp.llama_cpp`` with the backend initialised and llama.cpp's load chatter muted."""
    apply_omp_policy()
    try:
        import llama_cpp.llama_cpp as lib
    except ImportError as exc:
        raise MissingDependencyError.for_extra("llama_cpp", "llama") from exc
    lib.llama_log_set(_log_router(lib), ctypes.c_void_p(0))
    lib.llama_backend_init()
    return lib


# ggml_log_level (ggml.h): 0 none, 1 debug, 2 info, 3 warn, 4 error, 5 continuation of the previous line.
_LEVELS = {1: logging.DEBUG, 2: logging.INFO, 3: logging.WARNING, 4: logging.ERROR}


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


def log_callback() -> Any:
    """The callback that routes llama.cpp's log lines to ``qwenkit.llama``, for its other libraries
    (``mtmd``'s vision encoder logs every image it reads)."""
    return _log_router(llama_lib())
