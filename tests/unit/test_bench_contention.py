"""Decode far below the roofline is diagnosed, with the cause and the flag that fixes it."""

from __future__ import annotations

from qwenkit.bench.contention import BUSY_PERCENT, SLOW_PERCENT, CpuLoad, diagnose_speed, sample_cpu_load


def test_plausible_speed_needs_no_diagnosis() -> None:
    assert diagnose_speed(SLOW_PERCENT + 1, CpuLoad(90.0, 2), threads=2) is None


def test_a_busy_machine_is_named_with_fewer_threads_as_the_fix() -> None:
    found = diagnose_speed(1.0, CpuLoad(60.0, 2), threads=2)
    assert found is not None
    assert "60% of the CPU busy" in found.summary and "2 threads wait" in found.summary
    assert found.recommendation.startswith("use --threads 1")
    many = diagnose_speed(5.0, CpuLoad(50.0, 16), threads=16)
    assert many is not None and "--threads 8" in many.recommendation  # the cores the others leave idle


def test_a_quiet_machine_points_at_the_build() -> None:
    found = diagnose_speed(5.0, CpuLoad(BUSY_PERCENT - 1, 2), threads=2)
    assert found is not None and "not busy" in found.summary and "doctor" in found.recommendation


def test_sampling_reports_a_share_of_the_machine() -> None:
    load = sample_cpu_load(0.1)
    assert 0.0 <= load.others_percent <= 100.0 and load.cores >= 1 and load.free_cores >= 1


def test_pinned_threads_on_a_saturated_machine_are_not_told_to_shrink() -> None:
    """One thread per core is faster than fewer when the others keep every core busy (measured), so
    the advice is about the other work; with an idle core left, fewer threads still win."""
    saturated = diagnose_speed(10.0, CpuLoad(100.0, 2), threads=2, pinned=True)
    assert saturated is not None and "--threads" not in saturated.recommendation
    assert "shares its core" in saturated.summary and "stop the other work" in saturated.recommendation
    unpinned = diagnose_speed(10.0, CpuLoad(100.0, 2), threads=2)
    assert unpinned is not None and unpinned.recommendation.startswith("use --threads 1")
    one_idle = diagnose_speed(10.0, CpuLoad(50.0, 4), threads=4, pinned=True)
    assert one_idle is not None and one_idle.recommendation.startswith("use --threads 2")
