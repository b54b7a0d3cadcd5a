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


def test_the_openmp_policy_is_set_only_where_the_user_set_none() -> None:
    from qwenkit.engine.llama_lib import OMP_POLICY, apply_omp_policy

    # llama.cpp is already loaded in this test process: too late, so nothing changes
    env: dict[str, str] = {}
    import llama_cpp.llama_cpp  # noqa: F401

    assert apply_omp_policy(env) is False and env == {}
    assert apply_omp_policy({"OMP_WAIT_POLICY": "active"}) is False
    assert apply_omp_policy({"QWENKIT_OMP_POLICY": "off"}) is False
    assert OMP_POLICY  # what a fresh process gets (checked through a subprocess below)


def test_a_fresh_process_gets_the_policy_before_llama_cpp_loads() -> None:
    import json
    import os
    import subprocess
    import sys

    code = (
        "import json, os; from qwenkit.engine.llama_lib import llama_lib, OMP_POLICY; llama_lib(); "
        "print(json.dumps({k: os.environ.get(k) for k in OMP_POLICY}))"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    from qwenkit.engine.llama_lib import OMP_POLICY

    assert json.loads(out.stdout.strip().splitlines()[-1]) == OMP_POLICY
