"""The evaluation tasks by name: each builds its items (prompts) and grades one answer."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from qwenkit.errors import UsageError
from qwenkit.eval.sandbox import SandboxLimits
from qwenkit.eval.tasks.base import Grade, Item, Metric, Published, Task, TaskName
from qwenkit.eval.tasks.gsm8k import GSM8K
from qwenkit.eval.tasks.humaneval import HumanEval


@dataclass(frozen=True)
class TaskOptions:
    """What a user may set on a task: its data file, the sandbox's limits, HumanEval's pre-fill."""

    data: Path | None = None
    limits: SandboxLimits = field(default_factory=SandboxLimits)
    prefill: bool = True


TaskFactory = Callable[[TaskOptions], Task]

TASKS: Mapping[TaskName, TaskFactory] = MappingProxyType({
    TaskName.HUMANEVAL: lambda o: HumanEval(o.data, o.limits, prefill=o.prefill),
    TaskName.GSM8K: lambda o: GSM8K(o.data),
})


def make_task(
    name: str, data: Path | None = None, limits: SandboxLimits | None = None, *, prefill: bool = True
) -> Task:
    try:
        key = TaskName(name.lower())
    except ValueError:
        names = ", ".join(t.value for t in TaskName)
        raise UsageError(f"unknown task {name!r}; choose one of: {names}", param="task") from None
    return TASKS[key](TaskOptions(data, limits or SandboxLimits(), prefill))


__all__ = ["TASKS", "Grade", "Item", "Metric", "Published", "Task", "TaskName", "TaskOptions", "make_task"]
