"""The thinking-budget sweep on a real engine: the tiny random Qwen3 on transformers.

Random weights never write ``<think>`` by themselves, so the template opens it when thinking is on
(as Qwen3-Thinking-2507's does) and closes it when off (Qwen3's non-thinking mode). The answers are
random, so only the token accounting is checked: none at budget 0, about the budget otherwise.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from qwenkit.bench.progress import NullProgress
from qwenkit.bench.target import TargetInfo
from qwenkit.engine.llm import load
from qwenkit.eval.report import EvalReport
from qwenkit.eval.runner import EvalConfig, evaluate_target
from qwenkit.eval.sweep import sweep_of
from qwenkit.eval.targets import InProcessEvalTarget
from qwenkit.eval.tasks.gsm8k import GSM8K

THINK_SWITCH_TEMPLATE = (
    "{%- for m in messages %}{{ '<|im_start|>' + m.role + '\\n' + m.content + '<|im_end|>\\n' }}{%- endfor %}"
    "{%- if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}"
    "{%- if enable_thinking is defined and enable_thinking is false %}{{ '<think>\\n\\n</think>\\n\\n' }}"
    "{%- else %}{{ '<think>\\n' }}{%- endif %}{%- endif %}"
)
BUDGETS = (0, 8, 24)


def run_sweep(model_dir: Path, data: Path) -> list[EvalReport]:
    llm = load(str(model_dir), backend="transformers", context=512, parallel=2, progress=False,
               template=THINK_SWITCH_TEMPLATE)
    target = InProcessEvalTarget(llm, TargetInfo(kind="in-process", model="tiny-qwen3"))
    task = GSM8K(data, max_tokens=12)
    config = EvalConfig(concurrency=2)

    async def go() -> list[EvalReport]:
        try:
            return await evaluate_target(target, task, task.items(), config, BUDGETS, NullProgress())
        finally:
            await target.aclose()

    return asyncio.run(go())


def test_sweep_on_the_tiny_qwen3(tiny_qwen3_dir: Path, tmp_path: Path) -> None:
    data = tmp_path / "gsm8k.jsonl"
    data.write_text("".join(json.dumps({"question": f"{n} + 1?", "answer": f"#### {n + 1}"}) + "\n"
                            for n in range(2)))
    reports = run_sweep(tiny_qwen3_dir, data)
    sweep = sweep_of(reports)
    assert [p.budget for p in sweep.points] == list(BUDGETS)
    reasoning = [p.reasoning_tokens_mean for p in sweep.points]
    assert reasoning[0] == 0
    # The budget (perhaps one token more, sampled before the injection lands), then Qwen's early-stop
    # text, the same length at every budget.
    assert 8 < reasoning[1] < reasoning[2]
    assert 24 - 8 - 1 <= reasoning[2] - reasoning[1] <= 24 - 8 + 1
    assert [r.config.max_tokens for r in reports] == [12, 12 + 8 + 64, 12 + 24 + 64]
    assert all(p.completion_tokens_mean > p.reasoning_tokens_mean for p in sweep.points[1:])
