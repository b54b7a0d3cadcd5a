"""The evaluation tasks by name: each builds its items (prompts) and grades one answer."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType

from qwenkit.errors import UsageError
from qwenkit.eval.sandbox import SandboxLimits
from qwenkit.eval.tasks.base import Grade, Item, Metric, Published, Task, TaskName
from qwenkit.eval.tasks.gsm8k import GSM8K
from qwenkit.eval.tasks.humaneval import HumanEval

TaskFactory = Callable[[Path | None, SandboxLimits], Task]

TASKS: Mapping[TaskName, TaskFactory] = MappingProxyType({
    TaskName.HUMANEVAL: lambda data, limits: HumanEval(data, limits),
    TaskName.GSM8K: lambda data, limits: GSM8K(data),
})


def make_task(name: str, data: Path | None = None, limits: SandboxLimits | None = None) -> Task:
    try:
        key = TaskName(name.lower())
    except ValueError:
        names = ", ".join(t.value for t in TaskName)
        raise UsageError(f"unknown task {name!r}; choose one of: {names}", param="task") from None
    return TASKS[key](data, limits or SandboxLimits())


__all__ = ["TASKS", "Grade", "Item", "Metric", "Published", "Task", "TaskName", "make_task"]
