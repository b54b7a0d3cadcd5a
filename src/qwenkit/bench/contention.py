"""Why decode runs far below the memory-bandwidth roofline, and what to change.

The usual cause on laptops and shared servers is other work on the same cores: llama.cpp's worker
threads meet after every operation of the graph, so when another process takes one thread's core the
others wait for it, and throughput falls far below what a single thread alone would give.
"""

from __future__ import annotations

from dataclasses import dataclass

import psutil

SLOW_PERCENT = 25.0  # of the roofline: below this, decode is "far below what memory bandwidth allows"
BUSY_PERCENT = 25.0  # of all cores kept busy by other processes: the machine counts as busy


@dataclass(frozen=True)
class CpuLoad:
    """How much of the machine's CPU time other processes used while we sampled."""

    others_percent: float  # 0-100, of all logical cores
    cores: int

    @property
    def busy(self) -> bool:
        return self.others_percent >= BUSY_PERCENT

    @property
    def idle_cores(self) -> int:
        """Cores the others leave idle, rounded (0 when they keep every core busy)."""
        return round(self.cores * (1.0 - self.others_percent / 100.0))

    @property
    def free_cores(self) -> int:
        """Cores the others leave idle (at least one)."""
        return max(1, self.idle_cores)


def sample_cpu_load(seconds: float = 0.5) -> CpuLoad:
    """The share of all cores that processes other than this one used during ``seconds``."""
    me = psutil.Process()
    me.cpu_percent(None)
    total = psutil.cpu_percent(interval=seconds)
    cores = psutil.cpu_count() or 1
    mine = me.cpu_percent(None) / cores
    return CpuLoad(max(0.0, total - mine), cores)


@dataclass(frozen=True)
class SpeedDiagnosis:
    summary: str
    recommendation: str


def diagnose_speed(
    percent_of_roofline: float, load: CpuLoad, threads: int, *, pinned: bool = False
) -> SpeedDiagnosis | None:
    """None when decode speed is plausible; else the likely cause and the flag that fixes it.

    ``pinned``: the threads ran one per core (``engine/cpu_placement.py``). Then, when the others keep
    every core busy, fewer threads are slower, not faster (measured on 2 cores with two busy processes:
    16.7 tok/s pinned against 15.6 on 1 thread), so the advice is about the other work."""
    if percent_of_roofline >= SLOW_PERCENT:
        return None
    speed = f"decode runs at {percent_of_roofline:.0f}% of what memory bandwidth allows"
    if load.busy and pinned and load.idle_cores == 0:
        return SpeedDiagnosis(
            f"{speed} while other processes keep {load.others_percent:.0f}% of the CPU busy: "
            f"each of llama.cpp's {threads} threads shares its core with that work",
            "stop the other work or lower its priority (nice); fewer threads would not help, "
            "qwenkit already runs one thread per core",
        )
    if load.busy:
        fewer = max(1, min(threads - 1, load.free_cores))
        return SpeedDiagnosis(
            f"{speed} while other processes keep {load.others_percent:.0f}% of the CPU busy: "
            f"llama.cpp's {threads} threads wait for each other whenever one of them loses its core",
            f"use --threads {fewer} while the machine is busy, or stop the other work",
        )
    return SpeedDiagnosis(
        f"{speed}, and the machine is not busy",
        "run qwenkit doctor: a llama.cpp build without this CPU's features, or swapping, is the usual cause",
    )
