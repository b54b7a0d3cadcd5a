"""Run the ``qwenkit`` command as people do: the console script installed next to this Python.

``make`` installs the project (editable) into .venv, which puts ``.venv/bin/qwenkit`` beside
``sys.executable``; a missing script fails the test, since the entry point is what is under test.
``QWENKIT_CLI=module`` runs ``python -m qwenkit`` instead, for a checkout whose installed script
imports another tree (setting PYTHONPATH to this tree's src works as well: the script only imports
``qwenkit``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def qwenkit_command() -> list[str]:
    if os.environ.get("QWENKIT_CLI") == "module":
        return [sys.executable, "-m", "qwenkit"]
    script = Path(sys.executable).parent / "qwenkit"
    if not script.is_file():
        pytest.fail(f"the qwenkit entry point is not installed at {script} (run `make install`)")
    return [str(script)]


def offline_env(root: Path) -> dict[str, str]:
    """Empty caches under ``root`` and no network: a command that tried to fetch would fail with 1."""
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE")}
    env.update(
        HF_HOME=str(root / "hf"), QWENKIT_HOME=str(root / "qwenkit"), HF_HUB_OFFLINE="1",
        HF_ENDPOINT="http://127.0.0.1:9", QWENKIT_HUB_TIMEOUT="3", COLUMNS="200", NO_COLOR="1",
    )
    return env


def run_qwenkit(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*qwenkit_command(), *args], capture_output=True, text=True, timeout=timeout,
        env=env if env is not None else dict(os.environ), input=stdin,
    )
