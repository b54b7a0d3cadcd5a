"""The ``qwenkit`` command: thin commands over library functions.

Each command group lives in its own module and registers itself on ``app``; ``main`` is the one
place where errors turn into a clear line on stderr and an exit code. Every run imports all of these
modules (Typer builds every command, ``--help`` too), so they import the engine, the chat layer, the
server and the model store inside the commands that use them (tests/unit/test_cli_import_cost.py).
"""

from __future__ import annotations

import sys

from qwenkit.cli.app import app, run_app

# Importing a module registers its commands on ``app``.
from qwenkit.cli import (  # noqa: F401  isort: skip
    catalog_cmds,
    select_cmd,
    model_cmds,
    run_cmds,
    serve_cmd,
    bench_cmds,
    eval_cmds,
    convert_cmds,
    tune_cmds,
)


def main(argv: list[str] | None = None) -> int:
    return run_app(argv if argv is not None else sys.argv[1:])


__all__ = ["app", "main"]
