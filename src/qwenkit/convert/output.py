"""Writing a model file safely: room checked first, a temporary name, renamed only when whole.

An interrupt, a full disk or a failing tool never leaves a partial file under the name the user asked
for (nor a stray temporary one): the temporary file lives beside the target, so the final rename is
atomic on the same filesystem.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from qwenkit.errors import ConversionError, UsageError


def human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def check_room(target: Path, needed: int) -> None:
    """ConversionError unless the target's filesystem has ``needed`` bytes free."""
    free = shutil.disk_usage(target.parent).free
    if free < needed:
        raise ConversionError(
            f"not enough disk space for {target}: it needs about {human(needed)}, "
            f"{human(free)} free on {target.parent}",
            hint="free some space or write elsewhere with -o",
        )


def check_target(target: Path, source: Path) -> None:
    if target.resolve() == source.resolve():
        raise UsageError(f"the output {target} is the input; choose another name with -o", param="output")
    if target.is_dir():
        raise UsageError(f"the output {target} is a directory; give a file name", param="output")
    if not target.parent.is_dir():
        raise UsageError(f"the output's folder {target.parent} does not exist", param="output")


@contextmanager
def atomic_output(target: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; it becomes ``target`` only if the block succeeds."""
    with atomic_outputs(target) as (tmp,):
        yield tmp


@contextmanager
def atomic_outputs(*targets: Path) -> Iterator[tuple[Path, ...]]:
    """Temporary paths beside several targets that appear together or not at all (a text GGUF and
    its mmproj: one without the other is not the model that was asked for)."""
    tmps = tuple(target.with_name(f".{target.name}.partial-{os.getpid()}") for target in targets)
    try:
        yield tmps
        for tmp, target in zip(tmps, targets, strict=True):
            if not tmp.is_file():
                raise ConversionError(f"the tool finished but wrote no {target.name}")
        for tmp, target in zip(tmps, targets, strict=True):
            os.replace(tmp, target)
    finally:
        for tmp in tmps:
            tmp.unlink(missing_ok=True)


def _hold_interrupts() -> Callable[[], None]:
    """Hold Ctrl-C back (SIGINT blocked) until the returned function is called, which lets it in."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "pthread_sigmask"):
        return lambda: None
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    released = [False]

    def release() -> None:
        if not released[0]:
            released[0] = True
            signal.pthread_sigmask(signal.SIG_SETMASK, old)

    return release


@contextmanager
def child_process(command: list[str], **popen: object) -> Iterator[subprocess.Popen[str]]:
    """A tool's process that never outlives an interrupt or error of ours: Ctrl-C is held back while
    it starts (an interrupt inside Popen would leave it running, unowned) and kills it afterwards."""
    release = _hold_interrupts()
    proc: subprocess.Popen[str] | None = None
    try:
        proc = subprocess.Popen(command, text=True, **popen)  # type: ignore[call-overload]
        release()  # a Ctrl-C pressed meanwhile is raised here, with the process ours to stop
        yield proc
    finally:
        release()
        if proc is not None:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            for stream in (proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()
