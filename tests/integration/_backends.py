"""The two servers the stress battery runs against.

A tiny random-weight Qwen on the transformers backend (fast, exercises the server's own logic) and the
real Qwen2.5-Coder-0.5B-Instruct GGUF on llama.cpp: the default path, the one most users run.
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


def served_model(request: pytest.FixtureRequest, backend: str, tiny: str = "tiny_qwen3_dir") -> Path:
    """The model file or folder that ``backend`` serves in these tests."""
    return Path(request.getfixturevalue("real_model_path" if backend == LLAMACPP else tiny))


def load_served(
    request: pytest.FixtureRequest, backend: str, *, tiny: str = "tiny_qwen3_dir", **options: object
) -> LLM:
    options = {"context": 512, "parallel": 2, **options}
    if backend == LLAMACPP:
        options.setdefault("threads", 2)
    return load(str(served_model(request, backend, tiny)), backend=backend, progress=False, **options)  # type: ignore[arg-type]
