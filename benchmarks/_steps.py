"""One pipeline step in a subprocess, timed, with the peak resident memory of its process tree.

The converter and the quantizer run in processes of their own (``qwenkit convert`` starts the
converter, ``qwenkit quantize`` its worker), so the peak is sampled over the whole tree every 50 ms
with psutil: a peak shorter than that can be missed.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any

import psutil

INTERVAL = 0.05


@dataclass(frozen=True)
class Step:
    name: str
    command: list[str]
    seconds: float
    peak_rss_bytes: int
    returncode: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _tree_rss(root: psutil.Process) -> int:
    total = 0
    for proc in [root, *root.children(recursive=True)]:
        try:
            total += int(proc.memory_info().rss)
        except psutil.Error:
            continue
    return total


def run_step(name: str, args: list[str]) -> Step:
    """Run ``python -m qwenkit ARGS`` (or ``python -c`` when ARGS starts with -c); fail loudly."""
    command = [sys.executable, *(args if args[0] == "-c" else ["-m", "qwenkit", *args])]
    peak = [0]
    began = time.perf_counter()
    proc = subprocess.Popen(command)
    watched = psutil.Process(proc.pid)
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            with contextlib.suppress(psutil.Error):
                peak[0] = max(peak[0], _tree_rss(watched))
            time.sleep(INTERVAL)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    code = proc.wait()
    seconds = time.perf_counter() - began
    done.set()
    sampler.join()
    if code != 0:
        raise SystemExit(f"step {name} failed with exit code {code}: {command}")
    return Step(name, command[1:], round(seconds, 2), peak[0], code)
