"""The README's Python example runs as written against the real default model."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


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
