"""Progress reporting for long runs: rich progress bars on stderr, or nothing (``--json`` to stdout)."""

from __future__ import annotations

from typing import Protocol

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


class ProgressSink(Protocol):
    def begin(self, description: str, total: int) -> None: ...

    def advance(self) -> None: ...

    def end(self) -> None: ...


class NullProgress:
    def begin(self, description: str, total: int) -> None:
        pass

    def advance(self) -> None:
        pass

    def end(self) -> None:
        pass


class RichProgress:
    """One bar per phase (warm-up, each level), kept on screen when done."""

    def __init__(self, console: Console | None = None) -> None:
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console or Console(stderr=True),
            transient=False,
        )
        self._task: int | None = None
        self._started = False

    def begin(self, description: str, total: int) -> None:
        if not self._started:
            self._progress.start()
            self._started = True
        self._task = self._progress.add_task(description, total=total)

    def advance(self) -> None:
        if self._task is not None:
            self._progress.advance(self._task)  # type: ignore[arg-type]

    def end(self) -> None:
        self._task = None

    def close(self) -> None:
        if self._started:
            self._progress.stop()
            self._started = False
