"""The vLLM backend on a tiny random Qwen2 (Qwen2.5's architecture: biased q/k/v projections, no q/k
norms), as test_vllm_backend.py does on Qwen3: greedy tokens equal the transformers backend's, and chat
through the server with the openai SDK."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from test_vllm_backend import (
    assert_chat_through_the_server,
    assert_greedy_tokens_equal_the_transformers_backend,
    build_model,
    load_vllm,
)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory, qwen3_tokenizer_dir: Path) -> Path:
    out = build_model(tmp_path_factory.mktemp("vllm-qwen2"), qwen3_tokenizer_dir, "qwen2.5-0.5b-instruct")
    assert '"model_type": "qwen2"' in (out / "config.json").read_text()
    return out


@pytest.fixture(scope="module")
def backend(model_dir: Path) -> Iterator[object]:
    with load_vllm(model_dir, parallel=2) as loaded:
        yield loaded


def test_greedy_tokens_equal_the_transformers_backend(backend: object, model_dir: Path) -> None:
    assert_greedy_tokens_equal_the_transformers_backend(backend, model_dir)


def test_chat_through_the_server_with_the_openai_sdk(backend: object, model_dir: Path) -> None:
    assert_chat_through_the_server(backend, model_dir)
