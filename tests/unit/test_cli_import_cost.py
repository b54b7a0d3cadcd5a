"""The ``qwenkit`` entry point stays light: every run (the e2e suite starts it ~250 times) imports it.

Heavy modules are imported by the commands that use them; these tests check that in a fresh process,
by which modules are loaded rather than by time. The values the CLI needs while it is built live in the
light ``qwenkit.defaults``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import qwenkit

# Not pydantic: Typer's own help rendering imports it.
HEAVY = (
    "torch", "transformers", "fastapi", "uvicorn", "httpx", "PIL", "jinja2", "llama_cpp",
    "qwenkit.engine", "qwenkit.chat", "qwenkit.models", "qwenkit.convert", "qwenkit.server",
    "qwenkit.media",
)  # fmt: skip


# A fresh process: sys.modules of this one already holds what other tests imported.
_CHILD = """
import contextlib, io, json, sys
import qwenkit.cli
argv = json.loads(sys.argv[1])
if argv is not None:
    with contextlib.redirect_stdout(io.StringIO()):
        qwenkit.cli.main(argv)
print(json.dumps(sorted(sys.modules)))
"""


def _heavy_loaded(argv: list[str] | None) -> list[str]:
    """The HEAVY modules a fresh Python loads to import this tree's CLI (and run ``argv``, if given)."""
    src = str(Path(qwenkit.__file__).parents[1])
    paths = [src, *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, json.dumps(argv)], capture_output=True, text=True, check=True,
        timeout=120, env=env,
    )
    loaded = json.loads(out.stdout.splitlines()[-1])
    return [m for m in loaded if any(m == h or m.startswith(h + ".") for h in HEAVY)]


@pytest.mark.parametrize(
    "argv", [None, ["--help"], ["run", "--help"], ["convert", "--help"], ["select", "--help"]],
    ids=["import", "help", "run-help", "convert-help", "select-help"],
)
def test_the_entry_point_imports_no_heavy_module(argv: list[str] | None) -> None:
    assert _heavy_loaded(argv) == []
