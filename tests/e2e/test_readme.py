"""The README's Python example runs as written against the real default model."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from _cli import offline_env, run_qwenkit

README = Path(__file__).resolve().parents[2] / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def command_line_section() -> str:
    text = README.read_text()
    start = text.index("## The command line")
    return text[start : text.index("\n## ", start + 1)]


def test_readme_command_line_covers_every_command_and_threads() -> None:
    import typer

    from qwenkit.cli import app

    section = command_line_section()
    commands = set(getattr(typer.main.get_command(app), "commands", {}))
    assert commands >= {"serve", "bench", "doctor"}
    assert {c for c in commands if f".venv/bin/qwenkit {c} " not in section} == set()
    assert "--threads" in section and "physical cores" in section and "--version" in section


def test_readme_command_line_examples_parse(tmp_path: Path) -> None:
    """Each example's options exist: ``-h`` after them must print the help, not a usage error."""
    examples = re.findall(r"^\.venv/bin/qwenkit (.+?)(?:\s+#.*)?$", command_line_section(), flags=re.M)
    assert len(examples) >= 11
    env = offline_env(tmp_path)
    for example in examples:
        proc = run_qwenkit(*shlex.split(example), "-h", env=env)
        assert (proc.returncode, proc.stderr) == (0, ""), example


def test_readme_starts_with_the_contract() -> None:
    commands = re.findall(r"^(make \w+)", README.read_text(), flags=re.M)
    assert commands[:2] == ["make serve", "make test"]


@pytest.mark.realmodel
@pytest.mark.slow
def test_readme_python_example_runs(real_model_path: Path) -> None:
    blocks = python_blocks()
    assert blocks
    for block in blocks:
        proc = subprocess.run([sys.executable, "-c", block], capture_output=True, text=True, timeout=900)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert "tok/s" in proc.stdout
