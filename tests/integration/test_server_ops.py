"""Operating the server: settings precedence, structured logs without raw text, draining and SIGTERM."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from _server_harness import live_server

from _ports import free_port
from qwenkit.engine.llm import LLM, load
from qwenkit.errors import UsageError
from qwenkit.server.logs import JSONFormatter
from qwenkit.server.settings import load_settings

SECRET = "my-very-private-prompt-text"


def test_settings_precedence_flags_over_env_over_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "qwenkit.toml"
    config.write_text("[server]\nport = 9001\nparallel = 3\ncontext = 1024\nlog-prompts = true\n")
    monkeypatch.setenv("QWENKIT_PARALLEL", "5")
    monkeypatch.setenv("QWENKIT_CONTEXT", "2048")
    monkeypatch.setenv("QWENKIT_API_KEYS", "a:k1, k2")
    settings = load_settings(config_file=config, context=512, port=None)
    assert (settings.port, settings.parallel, settings.context) == (9001, 5, 512)
    assert settings.log_prompts is True and settings.api_keys == ["a:k1", "k2"]
    assert load_settings().port == 8000  # defaults, no file


def test_yaml_config_and_bad_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "serve.yaml"
    config.write_text("host: 0.0.0.0\nrequest_timeout: 5\n")
    monkeypatch.setenv("QWENKIT_CONFIG_FILE", str(config))
    settings = load_settings()
    assert (settings.host, settings.request_timeout) == ("0.0.0.0", 5.0)
    config.write_text("prot: 1\n")
    with pytest.raises(UsageError, match="unknown setting"):
        load_settings()
    monkeypatch.delenv("QWENKIT_CONFIG_FILE")
    with pytest.raises(UsageError, match="port"):
        load_settings(port=70000)
    with pytest.raises(UsageError, match="must end in"):
        load_settings(config_file=tmp_path / "x.ini")


@pytest.fixture(scope="module")
def tiny_llm(tiny_qwen3_dir: Path) -> Iterator[LLM]:
    llm = load(str(tiny_qwen3_dir), backend="transformers", context=512, parallel=2, progress=False)
    yield llm
    llm.close()


def _json_lines(records: list[logging.LogRecord]) -> list[dict[str, object]]:
    formatter = JSONFormatter()
    return [json.loads(formatter.format(r)) for r in records if r.name.startswith("qwenkit.server")]


@pytest.mark.slow
@pytest.mark.parametrize("log_prompts", [False, True])
def test_logs_are_json_and_hide_text(
    tiny_llm: LLM, caplog: pytest.LogCaptureFixture, log_prompts: bool
) -> None:
    caplog.set_level(logging.INFO, logger="qwenkit.server")
    with live_server(tiny_llm, log_prompts=log_prompts) as srv:
        body = {"messages": [{"role": "user", "content": SECRET}], "max_tokens": 2}
        reply = httpx.post(f"{srv.base_url}/v1/chat/completions", json=body, timeout=60)
        assert reply.status_code == 200
    lines = _json_lines(caplog.records)
    generation = next(line for line in lines if line["msg"] == "generation")
    access = next(
        line for line in lines if line["msg"] == "request" and line["path"] == "/v1/chat/completions"
    )
    assert generation["request_id"] == access["request_id"] == reply.headers["x-request-id"]
    assert generation["prompt_tokens"] and generation["completion_tokens"] == 2 and "ttft_ms" in generation
    assert access["status"] == 200 and access["key"] == "anonymous"
    raw = "\n".join(json.dumps(line) for line in lines)
    assert (SECRET in raw) is log_prompts
    prompt = generation["prompt"]
    assert isinstance(prompt, dict) and (("sha256" in prompt) is not log_prompts)


@pytest.mark.slow
def test_draining_answers_503_with_retry_after(tiny_llm: LLM) -> None:
    with live_server(tiny_llm) as srv:
        srv.app.state.draining = True
        reply = httpx.post(f"{srv.base_url}/v1/chat/completions", json={"messages": []}, timeout=30)
        assert reply.status_code == 503 and reply.headers["retry-after"] == "5"
        assert reply.json()["error"]["code"] == "shutting_down"
        assert httpx.get(f"{srv.base_url}/ready", timeout=30).status_code == 503
        assert httpx.get(f"{srv.base_url}/health", timeout=30).status_code == 200
        srv.app.state.draining = False


SERVE = "import sys; from qwenkit.cli import serve_cmd, main; sys.exit(main(sys.argv[1:]))"


def _wait_ready(url: str, proc: subprocess.Popen[bytes], seconds: float = 240) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited early: {proc.stderr.read().decode() if proc.stderr else ''}")
        try:
            if httpx.get(f"{url}/ready", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise AssertionError("server did not become ready")


@pytest.mark.slow
def test_sigterm_drains_in_flight_stream_and_exits_cleanly(tiny_qwen3_dir: Path) -> None:
    import psutil
    port = free_port()
    args = [str(tiny_qwen3_dir), "--backend", "transformers", "--port", str(port), "--context", "512"]
    env = {**os.environ, "QWENKIT_DRAIN_TIMEOUT": "120"}
    proc = subprocess.Popen([sys.executable, "-c", SERVE, "serve", *args], env=env, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, proc)
        events: list[str] = []
        started = threading.Event()

        def stream() -> None:
            body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 12, "stream": True}
            with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, timeout=120) as response:
                for line in response.iter_lines():
                    started.set()
                    if line:
                        events.append(line)

        worker = threading.Thread(target=stream)
        worker.start()
        assert started.wait(60)
        assert psutil.Process(proc.pid).children(recursive=True) == []
        proc.send_signal(signal.SIGTERM)
        worker.join(120)
        assert proc.wait(timeout=120) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert events[-1] == "data: [DONE]"
    finishes = [json.loads(e[6:])["choices"][0].get("finish_reason") for e in events[1:-1]]
    assert finishes[-1] in ("length", "stop")
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/health", timeout=5)
