"""What ``run``, ``chat`` and ``serve`` tell people besides the answer, on tiny random models.

Warnings and the cut-answer marker go to stderr in text mode; ``/think`` on a model without a
thinking mode says so; ``serve`` prints one human line with the API and playground URLs.
"""

from __future__ import annotations

import io
import json
import queue
import re
import subprocess
import threading
from pathlib import Path

import httpx
import pytest
from _cli import offline_env, qwenkit_command, run_qwenkit
from rich.console import Console

from qwenkit.cli.chat_session import ChatSession, run_repl
from qwenkit.cli.serve_cmd import banner, base_url
from qwenkit.engine.llm import load

TINY = ("--backend", "transformers", "--context", "256")
BANNER = r"qwenkit: serving (\S+) at (http://\S+)/v1 \(playground: (http://\S+/)\)"
NO_THINKING_MODE = "this model's chat template has no thinking mode"
NO_THINKING = f"--think is ignored: {NO_THINKING_MODE}"


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return offline_env(tmp_path_factory.mktemp("cli-output"))


def test_run_prints_warnings_and_the_cut_marker_on_stderr(tiny_qwen2_dir: Path, env: dict[str, str]) -> None:
    args = ("run", str(tiny_qwen2_dir), "Say hi.", *TINY, "--think", "--max-tokens", "4", "--temperature=0")
    proc = run_qwenkit(*args, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.splitlines()
    assert f"warning: {NO_THINKING}" in lines
    assert lines[-1] == "[answer cut at --max-tokens 4]"
    assert "warning" not in proc.stdout and "answer cut" not in proc.stdout

    proc = run_qwenkit(*args, "--json", env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["warnings"] == [NO_THINKING]
    assert (data["finish_reason"], data["usage"]["completion_tokens"]) == ("length", 4)


def _session(model_dir: Path, max_tokens: int) -> tuple[ChatSession, io.StringIO, io.StringIO]:
    out, err = io.StringIO(), io.StringIO()
    llm = load(str(model_dir), backend="transformers", context=256, parallel=1, progress=False)
    consoles = {"console": Console(file=out, width=200), "err_console": Console(file=err, width=200)}
    session = ChatSession(llm, max_tokens=max_tokens, **consoles)
    return session, out, err


def test_chat_think_on_a_model_without_thinking_says_so(tiny_qwen2_dir: Path) -> None:
    session, out, err = _session(tiny_qwen2_dir, max_tokens=3)
    lines = iter(["/think", "hello", "/exit"])
    with session.llm:
        run_repl(session, input_fn=lambda _prompt: next(lines))
    assert session.thinking is None
    assert "thinking on" not in out.getvalue()
    assert f"warning: /think changes nothing: {NO_THINKING_MODE}\n" in err.getvalue()
    assert err.getvalue().splitlines()[-1] == "[answer cut at --max-tokens 3]"


def test_chat_think_on_a_thinking_model_turns_it_on(tiny_qwen3_dir: Path) -> None:
    session, out, err = _session(tiny_qwen3_dir, max_tokens=3)
    lines = iter(["/no_think", "/think", "/exit"])
    with session.llm:
        run_repl(session, input_fn=lambda _prompt: next(lines))
    assert session.thinking is True
    assert "thinking off" in out.getvalue() and "thinking on" in out.getvalue()
    assert "warning" not in err.getvalue()


def test_chat_command_warns_about_think_at_start(tiny_qwen2_dir: Path, env: dict[str, str]) -> None:
    proc = run_qwenkit("chat", str(tiny_qwen2_dir), *TINY, "--think", env=env, timeout=600, stdin="/exit\n")
    assert proc.returncode == 0, proc.stderr
    assert f"warning: {NO_THINKING}" in proc.stderr.splitlines()


@pytest.mark.parametrize(
    ("host", "url"),
    [("127.0.0.1", "http://127.0.0.1:8000"), ("0.0.0.0", "http://127.0.0.1:8000"), ("::", "http://[::1]:8000"),
     ("fe80::1", "http://[fe80::1]:8000"), ("example.org", "http://example.org:8000")],
)
def test_base_url_is_one_people_can_open(host: str, url: str) -> None:
    assert base_url(host, 8000) == url


def _lines(stream: io.TextIOBase, into: queue.Queue[str]) -> None:
    for line in stream:
        into.put(line.rstrip("\n"))


def test_serve_prints_one_line_with_the_api_and_playground_urls(
    tiny_qwen2_dir: Path, env: dict[str, str]
) -> None:
    """On port 0 the line carries the port the OS chose, which proves it was printed after binding."""
    command = [*qwenkit_command(), "serve", str(tiny_qwen2_dir), *TINY, "--parallel", "1", "--port", "0"]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    lines: queue.Queue[str] = queue.Queue()
    assert proc.stderr is not None
    threading.Thread(target=_lines, args=(proc.stderr, lines), daemon=True).start()
    seen: list[str] = []
    try:
        while not seen or not seen[-1].startswith("qwenkit: serving"):
            seen.append(lines.get(timeout=300))
        match = re.fullmatch(BANNER, seen[-1])
        assert match is not None, seen[-1]
        model, api, playground = match.groups()
        assert playground == api + "/" and not api.endswith(":0")
        assert seen[-1] == banner(model, "127.0.0.1", int(api.rsplit(":", 1)[1]))
        models = httpx.get(f"{api}/v1/models", timeout=30).json()
        assert [m["id"] for m in models["data"]] == [model]
        page = httpx.get(playground, timeout=30)
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        assert [line for line in seen if line.startswith("qwenkit:")] == [seen[-1]]
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    assert proc.returncode == 0
