"""`qwenkit run` and `qwenkit chat` end to end."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from qwenkit.errors import UsageError

QWENKIT = [sys.executable, "-m", "qwenkit"]


def qwenkit(
    *args: str, timeout: float = 600, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*QWENKIT, *args], capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})}
    )


@pytest.mark.realmodel
@pytest.mark.slow
def test_run_writes_a_working_add_function(real_model_path: Path, tmp_path: Path) -> None:
    proc = qwenkit(
        "run", "qwen2.5-coder-0.5b-instruct", "Write a Python function add(a, b) that returns their sum."
    )
    assert proc.returncode == 0, proc.stderr
    blocks = re.findall(r"```(?:python)?\n(.*?)```", proc.stdout, flags=re.S)
    assert blocks, proc.stdout
    script = tmp_path / "add.py"
    script.write_text(blocks[0] + "\nassert add(2, 3) == 5\nprint('ok')\n")
    check = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert check.returncode == 0 and check.stdout.strip().endswith("ok"), check.stderr


@pytest.mark.realmodel
@pytest.mark.slow
def test_run_json_has_answer_usage_and_timings(real_model_path: Path) -> None:
    proc = qwenkit("run", str(real_model_path), "Say hello.", "--max-tokens", "16", "--json", "--seed", "1")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["content"]
    assert 0 < data["usage"]["completion_tokens"] <= 16
    assert data["usage"]["prompt_tokens"] > 0
    assert data["finish_reason"] in ("stop", "length")
    assert data["timings"]["time_to_first_token"] > 0


def test_run_with_a_missing_model_file_is_one_clear_line(tmp_path: Path) -> None:
    proc = qwenkit("run", str(tmp_path / "nope.gguf"), "hi", timeout=120)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[0].startswith("error:")


def test_run_with_too_many_arguments_is_a_usage_error() -> None:
    proc = qwenkit("run", "a", "b", "c", timeout=120)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr


def test_chat_session_commands(tiny_qwen3_dir: Path, tmp_path: Path) -> None:
    from qwenkit.cli.chat_session import ChatSession, run_repl
    from qwenkit.engine.llm import load

    lines = iter(
        ["hello \\", "there", "/no_think", "again", f"/save {tmp_path / 'c.json'}", "/reset", "/exit"]
    )
    console = Console(file=open(os.devnull, "w"), width=100)  # noqa: SIM115
    with load(str(tiny_qwen3_dir), backend="transformers", context=256, parallel=1, progress=False) as llm:
        session = ChatSession(llm, max_tokens=4, console=console)
        run_repl(session, input_fn=lambda _prompt: next(lines))
        assert session.messages == []  # /reset
        assert session.thinking is False
        with pytest.raises(UsageError, match="this model reads text only"):
            session.attach(str(tmp_path / "c.json"))
        with pytest.raises(UsageError, match="no image file"):
            session.attach(str(tmp_path / "nothing.png"))
        session.images = [str(tmp_path / "c.json")]  # a turn the model refuses leaves no trace
        with pytest.raises(UsageError, match="image"):
            session.send("what is this?")
        assert session.messages == [] and session.images == [str(tmp_path / "c.json")]
    saved = json.loads((tmp_path / "c.json").read_text())["messages"]
    assert [m["role"] for m in saved] == ["user", "assistant", "user", "assistant"]
    assert saved[0]["content"] == "hello \nthere"
