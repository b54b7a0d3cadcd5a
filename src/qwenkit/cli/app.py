"""The Typer application and the single error-to-exit-code boundary of the CLI."""

from __future__ import annotations

import json
import sys
from typing import Any

import click
import typer
from rich.console import Console

from qwenkit.errors import EXIT_FAILED, EXIT_USAGE, QwenkitError

app = typer.Typer(
    name="qwenkit",
    help="Choose, fetch, run, serve and measure Qwen models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

console = Console()
err_console = Console(stderr=True)


def print_json(data: Any) -> None:
    """Machine output: plain JSON on stdout, nothing else."""
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


def report_error(exc: QwenkitError) -> int:
    err_console.print(f"[bold red]error:[/] {exc.message}", highlight=False, soft_wrap=True)
    if exc.hint:
        err_console.print(exc.hint, highlight=False, soft_wrap=True)
    return exc.exit_code


def run_app(argv: list[str]) -> int:
    """Run the CLI; user mistakes become one line and an exit code, never a traceback."""
    try:
        result = app(args=argv, prog_name="qwenkit", standalone_mode=False)
    except QwenkitError as exc:
        return report_error(exc)
    except click.exceptions.Abort:
        err_console.print("aborted")
        return EXIT_FAILED
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code if exc.exit_code else EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    return result if isinstance(result, int) else 0
