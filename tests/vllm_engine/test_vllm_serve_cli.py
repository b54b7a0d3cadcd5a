"""``qwenkit serve --backend vllm`` as users start it (a subprocess of the installed entry point): the
openai SDK's streamed and non-streamed answers agree, and a SIGTERM stops it with vLLM's engine process."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from _serve_process import serve_process
from test_vllm_backend import assert_streamed_and_whole_answers_agree, build_model


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory, qwen3_tokenizer_dir: Path) -> Path:
    return build_model(tmp_path_factory.mktemp("vllm-serve-cli"), qwen3_tokenizer_dir)


def test_serve_backend_vllm_answers_the_openai_sdk_and_stops_whole(model_dir: Path) -> None:
    import openai
    import psutil

    with serve_process(model_dir, "--gpu-memory-utilization", "0.15", backend="vllm") as server:
        engine_processes = psutil.Process(server.proc.pid).children(recursive=True)
        assert engine_processes, "vLLM's engine core runs in a process of its own"
        client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0, timeout=120)
        assert_streamed_and_whole_answers_agree(client, tokens=8)
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(timeout=120) == 0, server.stderr_text()
    _, alive = psutil.wait_procs(engine_processes, timeout=60)
    assert not alive, f"left running: {alive}"
