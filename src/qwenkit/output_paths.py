"""Where a command will write its report, plot or saved data: checked before the work, not after it.

A perplexity pass, a quantization report or an evaluation takes minutes; a missing folder found only
when the result is written loses all of it. Commands check every output path they are given with
``check_output_file`` before they start.
"""

from __future__ import annotations

from pathlib import Path

from qwenkit.errors import UsageError

STDOUT = "-"


def check_output_file(target: Path | str | None, option: str, *, suffix: str | None = None) -> None:
    """UsageError unless ``target`` can be created as a file: its folder exists and it is not a folder
    itself. None and ``-`` (standard output, where the option allows it) pass; ``suffix`` (".png")
    is the one file type the option writes."""
    if target is None or str(target) == STDOUT:
        return
    path = Path(target).expanduser()
    if suffix is not None and path.suffix.lower() != suffix:
        raise UsageError(f"--{option} must name a {suffix} file, got {path}", param=option)
    if path.is_dir():
        raise UsageError(f"--{option} {path} is a folder: give a file name", param=option)
    if not path.resolve().parent.is_dir():
        raise UsageError(f"--{option} {path}: its folder does not exist", param=option)
