"""One core per llama.cpp worker thread, so that a busy machine cannot stack two of them on one core.

llama.cpp's workers meet at a barrier after every operation of a step, so a step runs at the speed of
the slowest worker. When every core runs other work, the scheduler balances cores by counting runnable
threads, and both of ours on one core with the competing work on the other counts as balanced. Measured
on 2 cores with two busy processes (benchmarks/bench_contention.py): 4 tok/s in that placement against
19 with one worker per core, and which of the two a process got was chance, kept for as long as the
load lasted. Pinning each worker to its own core leaves only the good placement.

Only when the workers are exactly as many as the cores this process may use: with fewer, the
scheduler's freedom to choose idle cores is worth more; with more, there is no one-to-one. Not when the
user placed OpenMP's threads (``OMP_PROC_BIND``, ``OMP_PLACES``, ``GOMP_CPU_AFFINITY``) or turned
qwenkit's thread policy off (``QWENKIT_OMP_POLICY=off``). Linux only; elsewhere nothing is pinned.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

SYS_CPUS = Path("/sys/devices/system/cpu")
USER_PLACEMENT = ("OMP_PROC_BIND", "OMP_PLACES", "GOMP_CPU_AFFINITY")
_PR_SET_NAME = 15  # prctl(2)

Pin = Callable[[int, frozenset[int]], None]


def placement_enabled(environ: Mapping[str, str] = os.environ) -> bool:
    if not sys.platform.startswith("linux"):
        return False
    return environ.get("QWENKIT_OMP_POLICY") != "off" and not any(k in environ for k in USER_PLACEMENT)


def pins(threads: int, environ: Mapping[str, str] = os.environ) -> bool:
    """Whether a llama.cpp engine of ``threads`` threads started by this process runs pinned."""
    return placement_enabled(environ) and threads >= 2 and threads == len(cores(os.sched_getaffinity(0)))


def cores(allowed: set[int], root: Path = SYS_CPUS) -> list[frozenset[int]]:
    """The ``allowed`` CPUs grouped by physical core (hyperthread siblings together), in CPU order.
    A CPU without readable topology counts as a core of its own."""
    by_core: dict[tuple[str, str] | int, set[int]] = {}
    for cpu in sorted(allowed):
        topology = root / f"cpu{cpu}" / "topology"
        try:
            key: tuple[str, str] | int = (
                (topology / "physical_package_id").read_text().strip(),
                (topology / "core_id").read_text().strip(),
            )
        except OSError:
            key = cpu
        by_core.setdefault(key, set()).add(cpu)
    return [frozenset(c) for c in by_core.values()]


def _set_affinity(tid: int, cpus: frozenset[int]) -> None:
    os.sched_setaffinity(tid, cpus)


def pin_one_per_core(
    threads: list[int], available: list[frozenset[int]], pin: Pin = _set_affinity
) -> dict[int, frozenset[int]]:
    """Pin ``threads[i]`` to the CPUs of ``available[i]``; nothing when the counts differ."""
    if len(threads) < 2 or len(threads) != len(available):
        return {}
    placed = dict(zip(threads, available, strict=True))
    for tid, cpus in placed.items():
        pin(tid, cpus)
    return placed


def name_this_thread(name: str) -> bool:
    """Set the OS name of the calling thread (15 bytes at most); threads it starts inherit the name."""
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    return int(libc.prctl(_PR_SET_NAME, name.encode()[:15], 0, 0, 0)) == 0


def _thread_name(tid: int) -> str | None:
    try:
        return Path(f"/proc/self/task/{tid}/comm").read_text().strip()
    except OSError:  # the thread ended meanwhile
        return None


@dataclass(frozen=True)
class WorkerPlacement:
    """Where the engine thread and the worker threads it started run: thread id -> CPUs."""

    pinned: dict[int, frozenset[int]]

    @classmethod
    def name_engine_thread(cls) -> bool:
        """Call on the engine thread before its first llama_decode: the workers llama.cpp (OpenMP)
        starts from it inherit its unique name, which is how ``spread`` finds them afterwards."""
        return name_this_thread(f"qwenkit-{threading.get_native_id()}")

    @classmethod
    def spread(cls, environ: Mapping[str, str] = os.environ, pin: Pin = _set_affinity) -> WorkerPlacement:
        """On the engine thread, after a first step: one core each for it and its workers, if they are
        as many as this process's cores."""
        if not placement_enabled(environ):
            return cls({})
        me = threading.get_native_id()
        name = _thread_name(me)
        if name != f"qwenkit-{me}":  # not named by name_engine_thread: its workers cannot be told apart
            return cls({})
        tasks = (int(t) for t in os.listdir("/proc/self/task"))
        mates = [t for t in tasks if t != me and _thread_name(t) == name]
        threads, allowed = [me, *sorted(mates)], frozenset(os.sched_getaffinity(0))
        try:
            pinned = pin_one_per_core(threads, cores(set(allowed)), pin)
        except OSError as exc:  # a worker ended, or the system refuses: the scheduler places them all
            log.debug("could not pin llama.cpp's threads: %s", exc)
            for tid in threads:
                with contextlib.suppress(OSError):
                    pin(tid, allowed)
            return cls({})
        if pinned:
            log.debug("llama.cpp threads pinned one per core: %s", {t: sorted(c) for t, c in pinned.items()})
        return cls(pinned)
