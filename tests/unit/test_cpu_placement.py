"""Pinning llama.cpp's threads one per core: the topology read from sysfs, when pinning applies, and how
the engine thread finds the workers it started (they inherit its name)."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from qwenkit.engine import cpu_placement
from qwenkit.engine.cpu_placement import WorkerPlacement, cores, pin_one_per_core, placement_enabled


def fake_sysfs(root: Path, topology: dict[int, tuple[int, int] | None]) -> Path:
    """cpuN/topology/{physical_package_id,core_id}; None: a CPU without topology files."""
    for cpu, where in topology.items():
        folder = root / f"cpu{cpu}" / "topology"
        folder.mkdir(parents=True)
        if where is not None:
            (folder / "physical_package_id").write_text(f"{where[0]}\n")
            (folder / "core_id").write_text(f"{where[1]}\n")
    return root


@pytest.mark.parametrize(
    ("topology", "allowed", "expected"),
    [
        ({0: (0, 0), 1: (0, 1)}, {0, 1}, [{0}, {1}]),
        ({0: (0, 0), 1: (0, 1), 2: (0, 0), 3: (0, 1)}, {0, 1, 2, 3}, [{0, 2}, {1, 3}]),  # siblings together
        ({0: (0, 0), 1: (0, 1), 2: (0, 0), 3: (0, 1)}, {2, 3}, [{2}, {3}]),  # only the allowed CPUs
        ({0: (0, 0), 1: (1, 0)}, {0, 1}, [{0}, {1}]),  # same core id on two packages: two cores
        ({0: None, 1: None}, {0, 1}, [{0}, {1}]),  # no topology: each CPU a core
    ],
)
def test_cpus_are_grouped_by_physical_core(
    tmp_path: Path, topology: dict[int, tuple[int, int] | None], allowed: set[int], expected: list[set[int]]
) -> None:
    assert cores(allowed, fake_sysfs(tmp_path, topology)) == [frozenset(c) for c in expected]


def test_threads_are_pinned_only_one_to_one_with_cores() -> None:
    calls: list[tuple[int, frozenset[int]]] = []

    def pin(tid: int, cpus: frozenset[int]) -> None:
        calls.append((tid, cpus))

    two = [frozenset({0}), frozenset({1})]
    assert pin_one_per_core([11], two, pin) == {}  # fewer threads than cores: the scheduler chooses
    assert pin_one_per_core([11, 12, 13], two, pin) == {}  # more: no one-to-one
    assert pin_one_per_core([11], [frozenset({0})], pin) == {}  # one thread has nothing to spread
    assert calls == []
    assert pin_one_per_core([11, 12], two, pin) == {11: two[0], 12: two[1]}
    assert calls == [(11, two[0]), (12, two[1])]


@pytest.mark.parametrize(
    ("environ", "enabled"),
    [
        ({}, True),
        ({"GOMP_SPINCOUNT": "1000"}, True),  # the wait policy is the user's, placement still ours
        ({"QWENKIT_OMP_POLICY": "off"}, False),
        ({"OMP_PROC_BIND": "close"}, False),
        ({"OMP_PLACES": "cores"}, False),
        ({"GOMP_CPU_AFFINITY": "0 1"}, False),
    ],
)
def test_the_user_placing_threads_or_turning_the_policy_off_wins(
    environ: dict[str, str], enabled: bool
) -> None:
    assert placement_enabled(environ) is enabled


def _on_a_thread(body: object) -> object:
    result: list[object] = []
    thread = threading.Thread(target=lambda: result.append(body()))  # type: ignore[operator]
    thread.start()
    thread.join()
    return result[0]


def test_the_engine_thread_finds_the_workers_it_started(monkeypatch: pytest.MonkeyPatch) -> None:
    """Workers started after naming carry the engine's name; threads started elsewhere do not."""
    three = [frozenset({0}), frozenset({1}), frozenset({2})]
    monkeypatch.setattr(cpu_placement, "cores", lambda allowed: three)
    release = threading.Event()
    bystander = threading.Thread(target=release.wait)
    bystander.start()
    pinned: list[tuple[int, frozenset[int]]] = []

    def engine() -> tuple[int, list[int], WorkerPlacement]:
        assert WorkerPlacement.name_engine_thread()
        workers = [threading.Thread(target=release.wait) for _ in range(2)]
        for w in workers:
            w.start()
        placement = WorkerPlacement.spread({}, pin=lambda tid, cpus: pinned.append((tid, cpus)))
        return threading.get_native_id(), sorted(w.native_id or 0 for w in workers), placement

    try:
        me, workers, placement = _on_a_thread(engine)  # type: ignore[misc]
    finally:
        release.set()
        bystander.join()
    assert [tid for tid, _ in pinned] == [me, *workers]  # the engine thread first, the bystander not
    assert placement.pinned == {me: frozenset({0}), workers[0]: frozenset({1}), workers[1]: frozenset({2})}


def test_an_unnamed_thread_or_a_disabled_policy_pins_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cpu_placement, "cores", lambda allowed: [frozenset({0})])

    def refuse(tid: int, cpus: frozenset[int]) -> None:
        raise AssertionError("nothing may be pinned")

    assert _on_a_thread(lambda: WorkerPlacement.spread({}, pin=refuse)) == WorkerPlacement({})

    def named_but_off() -> WorkerPlacement:
        WorkerPlacement.name_engine_thread()
        return WorkerPlacement.spread({"QWENKIT_OMP_POLICY": "off"}, pin=refuse)

    assert _on_a_thread(named_but_off) == WorkerPlacement({})


def test_a_refused_pin_leaves_every_thread_free(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cpu_placement, "cores", lambda allowed: [frozenset({0}), frozenset({1})])
    release = threading.Event()
    calls: list[tuple[int, frozenset[int]]] = []

    def pin(tid: int, cpus: frozenset[int]) -> None:
        calls.append((tid, cpus))
        if len(calls) == 2:
            raise OSError("the worker ended")

    def engine() -> WorkerPlacement:
        WorkerPlacement.name_engine_thread()
        worker = threading.Thread(target=release.wait)
        worker.start()
        try:
            return WorkerPlacement.spread({}, pin=pin)
        finally:
            release.set()
            worker.join()

    assert _on_a_thread(engine) == WorkerPlacement({})
    allowed = frozenset(os.sched_getaffinity(0))
    assert [cpus for _, cpus in calls[2:]] == [allowed, allowed]  # both set back to every allowed CPU


def test_pins_says_whether_an_engine_of_that_many_threads_would_be_pinned() -> None:
    count = len(cores(os.sched_getaffinity(0)))
    assert cpu_placement.pins(count, {}) is (count >= 2)
    assert cpu_placement.pins(count + 1, {}) is False
    assert cpu_placement.pins(1, {}) is False
    assert cpu_placement.pins(count, {"QWENKIT_OMP_POLICY": "off"}) is False
