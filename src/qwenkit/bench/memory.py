"""Peak memory while a level runs: resident memory of the target's processes, and GPU memory.

A background thread samples RSS every few tens of milliseconds (a peak between samples can be
missed; llama.cpp's buffers are allocated once and stay, so the steady value is the peak).
GPU memory: ``nvidia-smi``'s used memory (every process, every GPU; sampled more slowly), and
``torch.cuda.max_memory_allocated`` when torch is already loaded in this process.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import psutil

from qwenkit.catalog.hardware import run_command

RSS_INTERVAL = 0.05
GPU_EVERY = 10  # nvidia-smi every this many RSS samples


@dataclass(frozen=True)
class MemoryPeak:
    rss_bytes: int | None
    gpu_bytes: int | None


def rss_of(pids: Sequence[int]) -> int | None:
    total, seen = 0, False
    for pid in pids:
        try:
            total += int(psutil.Process(pid).memory_info().rss)
            seen = True
        except (psutil.Error, OSError):
            continue
    return total if seen else None


def gpu_used_bytes() -> int | None:
    """Memory in use on every GPU as nvidia-smi reports it, or None without nvidia-smi."""
    out = run_command(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"], timeout=5)
    if out is None:
        return None
    total = 0
    for line in out.splitlines():
        try:
            total += int(float(line.strip())) * 1024**2
        except ValueError:
            continue
    return total


def torch_peak_bytes() -> int | None:
    """``torch.cuda.max_memory_allocated`` summed over devices, only if torch is already imported."""
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available():
        return None
    return sum(int(torch.cuda.max_memory_allocated(i)) for i in range(torch.cuda.device_count()))


def _max(a: int | None, b: int | None) -> int | None:
    if a is None:
        return b
    return a if b is None else max(a, b)


class MemorySampler:
    """``with MemorySampler(pids, gpu=...) as s: ...`` then ``s.peak``."""

    def __init__(self, pids: Sequence[int], *, gpu: bool) -> None:
        self._pids = tuple(pids)
        self._gpu = gpu
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="qwenkit-bench-memory", daemon=True)
        self._rss: int | None = None
        self._gpu_used: int | None = None

    def _sample(self, n: int) -> None:
        self._rss = _max(self._rss, rss_of(self._pids))
        if self._gpu and n % GPU_EVERY == 0:
            self._gpu_used = _max(self._gpu_used, gpu_used_bytes())

    def _run(self) -> None:
        n = 0
        while not self._stop.is_set():
            self._sample(n)
            n += 1
            self._stop.wait(RSS_INTERVAL)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample(0)

    @property
    def peak(self) -> MemoryPeak:
        gpu = _max(self._gpu_used, torch_peak_bytes()) if self._gpu else None
        return MemoryPeak(self._rss, gpu)
