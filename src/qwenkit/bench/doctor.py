"""``qwenkit doctor``: a registry of small checks, each returning a typed result, and one verdict.

Checks run in order and share a ``DoctorState`` (the model check records what it found for the
memory, disk and generation checks). A check that raises becomes a failed result, never a crash.
Verdict: any failure -> unhealthy (exit 1), else any warning -> degraded, else healthy (exit 0).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

from qwenkit.catalog.hardware import HardwareInfo
from qwenkit.errors import QwenkitError


class Status(str, Enum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"
    SKIP = "skip"


class Verdict(str, Enum):
    HEALTHY = "healthy"
    DEGRADED = "degraded"
    UNHEALTHY = "unhealthy"


@dataclass(frozen=True)
class CheckResult:
    name: str
    status: Status
    summary: str
    recommendation: str | None = None


@dataclass
class DoctorState:
    """What the checks are about, and what earlier checks found for later ones."""

    ref: str | None
    explicit_ref: bool
    context: int
    backend: str
    generate: bool
    hardware: HardwareInfo
    cpu_flags: frozenset[str] = frozenset()
    model_format: str | None = None
    model_quant: str | None = None
    model_path: Path | None = None
    model_ok: bool = False
    variant_id: str | None = None
    notes: list[str] = field(default_factory=list)


CheckFn = Callable[[DoctorState], CheckResult]


@dataclass(frozen=True)
class Check:
    name: str
    run: CheckFn


@dataclass(frozen=True)
class DoctorReport:
    verdict: Verdict
    checks: tuple[CheckResult, ...]
    reason: str | None  # the first failure (or warning), in one line

    @property
    def exit_code(self) -> int:
        return 1 if self.verdict is Verdict.UNHEALTHY else 0


def run_check(check: Check, state: DoctorState) -> CheckResult:
    try:
        return check.run(state)
    except QwenkitError as exc:
        return CheckResult(check.name, Status.FAIL, exc.message, exc.hint)
    except Exception as exc:  # a broken check must not hide the others' results
        return CheckResult(check.name, Status.FAIL, f"the check itself failed: {type(exc).__name__}: {exc}")


def verdict_of(results: Sequence[CheckResult]) -> tuple[Verdict, str | None]:
    for status, verdict in ((Status.FAIL, Verdict.UNHEALTHY), (Status.WARN, Verdict.DEGRADED)):
        first = next((r for r in results if r.status is status), None)
        if first is not None:
            return verdict, f"{first.name}: {first.summary}"
    return Verdict.HEALTHY, None


def run_doctor(state: DoctorState, checks: Sequence[Check]) -> DoctorReport:
    results = tuple(run_check(check, state) for check in checks)
    verdict, reason = verdict_of(results)
    return DoctorReport(verdict, results, reason)
