"""The two servers the stress battery runs against.

A tiny random-weight Qwen on the transformers backend (fast, exercises the server's own logic) and the
real Qwen2.5-Coder-0.5B-Instruct GGUF on llama.cpp: the default path, the one most users run. The
schema fuzzer, whose thousand cases test the server's contract and not the model, runs llama.cpp on the
tiny Qwen3 converted to GGUF.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from qwenkit.engine.llm import LLM, load

TRANSFORMERS = "transformers"
LLAMACPP = "llamacpp"
SERVED = [
    pytest.param(TRANSFORMERS, id="tiny-transformers"),
    pytest.param(LLAMACPP, id="real-llamacpp", marks=pytest.mark.realmodel),
]
# Both backends on tiny random weights (llama.cpp on ``tiny_qwen3_gguf``): for batteries that test the
# server's contract over many requests, where the real model's compute would only add time.
TINY_SERVED = [
    pytest.param(TRANSFORMERS, id="tiny-transformers"),
    pytest.param(LLAMACPP, id="tiny-llamacpp"),
]


def served_model(
    request: pytest.FixtureRequest, backend: str, tiny: str = "tiny_qwen3_dir", gguf: str = "real_model_path"
) -> Path:
    """The model file or folder that ``backend`` serves in these tests (``gguf``: the llama.cpp one)."""
    return Path(request.getfixturevalue(gguf if backend == LLAMACPP else tiny))


def load_served(
    request: pytest.FixtureRequest,
    backend: str,
    *,
    tiny: str = "tiny_qwen3_dir",
    gguf: str = "real_model_path",
    **options: object,
) -> LLM:
    options = {"context": 512, "parallel": 2, **options}
    if backend == LLAMACPP:
        options.setdefault("threads", 2)
    return load(str(served_model(request, backend, tiny, gguf)), backend=backend, progress=False, **options)  # type: ignore[arg-type]
