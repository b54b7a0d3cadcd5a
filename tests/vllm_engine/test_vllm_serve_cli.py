"""``qwenkit serve --backend vllm`` as users start it (a subprocess of the installed entry point): the
openai SDK's streamed and non-streamed answers agree, and a SIGTERM stops it with vLLM's engine process."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from _serve_process import serve_process
from test_vllm_backend import build_model


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory, qwen3_tokenizer_dir: Path) -> Path:
    return build_model(tmp_path_factory.mktemp("vllm-serve-cli"), qwen3_tokenizer_dir)


def test_serve_backend_vllm_answers_the_openai_sdk_and_stops_whole(model_dir: Path) -> None:
    import openai
    import psutil

    with serve_process(model_dir, "--gpu-memory-utilization", "0.3", backend="vllm") as server:
        engine_processes = psutil.Process(server.proc.pid).children(recursive=True)
        assert engine_processes, "vLLM's engine core runs in a process of its own"
        client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0, timeout=120)
        model = client.models.list().data[0]
        assert model.model_extra["backend"] == "vllm"  # type: ignore[index]
        messages = [{"role": "user", "content": "Say hi"}]
        kwargs = {"model": model.id, "messages": messages, "max_tokens": 8, "temperature": 0}
        reply = client.chat.completions.create(**kwargs)  # type: ignore[call-overload]
        chunks = list(
            client.chat.completions.create(**kwargs, stream=True, stream_options={"include_usage": True})
        )
        assert reply.usage.completion_tokens == chunks[-1].usage.completion_tokens == 8
        streamed = "".join(
            (c.choices[0].delta.content or "")
            + (getattr(c.choices[0].delta, "reasoning_content", None) or "")
            for c in chunks
            if c.choices
        )
        message = reply.choices[0].message
        assert streamed == (message.content or "") + (getattr(message, "reasoning_content", None) or "")
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(timeout=120) == 0, server.stderr_text()
    _, alive = psutil.wait_procs(engine_processes, timeout=60)
    assert not alive, f"left running: {alive}"
