"""The Typer application and the single error-to-exit-code boundary of the CLI.

Every user mistake leaves the CLI the same way: ``error: <one line>`` on stderr, at most one hint
line, exit code 2 for usage errors; never a traceback. Typer raises click's exceptions, but which
click depends on the installed Typer (recent releases vendor their own copy as ``typer._click``), so
the boundary finds the exception classes from Typer's public ``BadParameter`` instead of importing
``click``.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape

import qwenkit
from qwenkit.errors import EXIT_FAILED, EXIT_USAGE, QwenkitError, UsageError

EXIT_INTERRUPTED = 130  # the shell's code for SIGINT

app = typer.Typer(
    name="qwenkit",
    help="Choose, fetch, run, serve and measure Qwen models.",
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

console = Console()
err_console = Console(stderr=True)


def package_version() -> str:
    """The installed distribution's version; the source tree's when it is not installed."""
    import importlib.metadata  # ~40 ms, for --version only

    try:
        return importlib.metadata.version("qwenkit")
    except importlib.metadata.PackageNotFoundError:
        return qwenkit.__version__


def _show_version(value: bool) -> None:
    if value:
        sys.stdout.write(f"qwenkit {package_version()}\n")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", help="print the version and exit", is_eager=True, callback=_show_version
    ),
) -> None:
    """Choose, fetch, run, serve and measure Qwen models."""


@dataclass(frozen=True)
class ClickErrors:
    """The exception classes of the click that the installed Typer raises.

    ``typer.BadParameter`` is click's ``BadParameter`` (imported from ``click`` by older Typer
    releases, from the vendored ``typer._click`` by newer ones); its bases are that click's
    ``UsageError`` and the root of every exception click shows to users.
    """

    usage: type[Exception]
    base: type[Exception]

    @classmethod
    def of_typer(cls) -> ClickErrors:
        chain = [c for c in typer.BadParameter.__mro__ if issubclass(c, Exception) and c is not Exception]
        usage = next(c for c in chain if c.__name__ == "UsageError")
        return cls(usage=usage, base=chain[-1])


CLICK_ERRORS = ClickErrors.of_typer()


def print_json(data: Any) -> None:
    """Machine output: plain JSON on stdout, nothing else."""
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


def one_line(text: str) -> str:
    return " ".join(text.split())


def print_error(message: str, hint: str | None = None) -> None:
    err_console.print(f"[bold red]error:[/] {escape(one_line(message))}", highlight=False, soft_wrap=True)
    if hint:
        err_console.print(escape(one_line(hint)), highlight=False, soft_wrap=True)


def warn(message: str) -> None:
    """A warning for people: one line on stderr, so that stdout stays the answer."""
    err_console.print(f"[yellow]warning:[/] {escape(one_line(message))}", highlight=False, soft_wrap=True)


def path_error(exc: OSError) -> UsageError:
    """A file or folder the command could not read or write (a missing output folder, a file where a
    folder belongs): the path and the system's reason, as a usage error. Commands check the paths
    they are given up front where they can; this is the net for the rest."""
    where = f"{exc.filename} -> {exc.filename2}" if exc.filename2 is not None else str(exc.filename)
    reason = exc.strerror or type(exc).__name__
    return UsageError(f"{where}: {reason}", hint="check the paths given on the command line and in its files")


def report_error(exc: QwenkitError) -> int:
    print_error(exc.message, exc.hint)
    return exc.exit_code


def _lower_first(text: str) -> str:
    """'No such option' -> 'no such option'; 'GGUF ...' stays."""
    return text[0].lower() + text[1:] if len(text) > 1 and text[1].islower() else text


def _command_path(exc: Exception, argv: list[str]) -> str:
    """'qwenkit run': from the error's context, else the first argument that names a command
    (click raises some option errors, e.g. a missing option value, without a context)."""
    path = getattr(getattr(exc, "ctx", None), "command_path", None)
    if isinstance(path, str) and path.strip():
        return path.strip()  # a group's default command has an empty name (``qwenkit tune BASE``)
    group = typer.main.get_command(app)
    commands = getattr(group, "commands", {})
    name = next((arg for arg in argv if arg in commands), None)
    return f"qwenkit {name}" if name else "qwenkit"


def report_click_error(exc: Exception, argv: list[str]) -> int:
    """click's usage errors as ours: one line, a pointer to the command's help, exit code 2."""
    format_message = getattr(exc, "format_message", None)
    message = format_message() if callable(format_message) else str(exc)
    command = _command_path(exc, argv)
    is_usage = isinstance(exc, CLICK_ERRORS.usage)
    print_error(_lower_first(message) or "invalid usage", f"try '{command} --help'" if is_usage else None)
    code = getattr(exc, "exit_code", None)
    return EXIT_USAGE if is_usage else (code if isinstance(code, int) and code else EXIT_FAILED)


def run_app(argv: list[str]) -> int:
    """Run the CLI; user mistakes become one line and an exit code, never a traceback.

    With no arguments it prints the help and exits 0.
    """
    try:
        result = app(args=list(argv) or ["--help"], prog_name="qwenkit", standalone_mode=False)
    except QwenkitError as exc:
        return report_error(exc)
    except typer.Exit as exc:
        return int(exc.exit_code or 0)
    except (typer.Abort, KeyboardInterrupt):  # older click turns Ctrl-C into Abort, newer into Exit(130)
        err_console.print("aborted")
        return EXIT_INTERRUPTED
    except OSError as exc:
        if exc.filename is None:  # not about a path the user gave: a fault, with its traceback
            raise
        return report_error(path_error(exc))
    except Exception as exc:
        if isinstance(exc, CLICK_ERRORS.base):
            return report_click_error(exc, list(argv))
        raise
    if result == EXIT_INTERRUPTED:  # newer click returns Ctrl-C as this code: said as older click's is
        err_console.print("aborted")
    return result if isinstance(result, int) else 0
