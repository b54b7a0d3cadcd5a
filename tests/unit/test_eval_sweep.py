"""The thinking-budget sweep on a scripted Qwen3 backend: one curve of accuracy and tokens per budget."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

from _chat_tokenizer import real_qwen_tokenizer
from _eval_fakes import gsm8k_file
from _scripted import ScriptedBackend, ScriptedHandle

from qwenkit.bench.progress import NullProgress
from qwenkit.bench.target import TargetInfo
from qwenkit.catalog import load_catalog
from qwenkit.chat.template import TemplateFamily
from qwenkit.engine.llm import LLM, ModelFacts
from qwenkit.engine.types import SamplingParams
from qwenkit.eval.runner import EvalConfig, evaluate_target
from qwenkit.eval.sweep import SWEEP_KIND, sweep_of, write_sweep_plot
from qwenkit.eval.targets import InProcessEvalTarget
from qwenkit.eval.tasks import make_task


class ThinkingBackend(ScriptedBackend):
    """Opens ``<think>`` itself, as Qwen3 does when its prompt leaves thinking to it, and answers at once
    when the prompt closed thinking (Qwen's non-thinking mode)."""

    def submit(self, prompt_ids: Sequence[int], params: SamplingParams) -> ScriptedHandle:
        handle = super().submit(prompt_ids, params)
        if self.think_close in prompt_ids[-4:]:
            handle.reasoning = []
        return handle

    def _encode(self, text: str) -> list[int]:
        ids: list[int] = []
        for i, piece in enumerate(text.split("<think>")):
            if i:
                ids.append(self.tokenizer.special_tokens["<think>"])
            ids.extend(super()._encode(piece))
        return ids


def make_llm() -> tuple[LLM, ThinkingBackend]:
    backend = ThinkingBackend(real_qwen_tokenizer(), "<think>\n" + REASONING, ANSWER)
    facts = ModelFacts(Path("scripted"), load_catalog().get("qwen3-8b"), TemplateFamily.QWEN3)
    return LLM(backend, facts), backend


# Long reasoning that never closes by itself and holds a wrong number; the answer is right.
REASONING = "".join(f"Let me try {i} apples. " for i in range(80))
ANSWER = r"So the total is \boxed{42}."


def sweep(tmp_path: Path, budgets: tuple[int, ...]):  # type: ignore[no-untyped-def]
    llm, backend = make_llm()
    target = InProcessEvalTarget(llm, TargetInfo(kind="in-process", model="scripted-qwen3"))
    task = make_task("gsm8k", gsm8k_file(tmp_path, [42, 42, 42]))
    config = EvalConfig(concurrency=2, out=tmp_path / "sweep.jsonl")
    reports = asyncio.run(evaluate_target(target, task, task.items(), config, budgets, NullProgress()))
    return reports, backend


def test_budget_sweep_gives_one_point_per_budget(tmp_path: Path) -> None:
    reports, backend = sweep(tmp_path, (0, 8, 32))
    assert isinstance(backend, ScriptedBackend)
    prompts = [backend.tokenizer.decode(ids) for ids, _ in backend.submitted]
    assert sum(p.endswith("<think>\n\n</think>\n\n") for p in prompts) == 3  # budget 0: non-thinking
    result = sweep_of(reports)
    assert result.kind == SWEEP_KIND and [p.budget for p in result.points] == [0, 8, 32]
    # Budget 0 answers at once; a budget forces </think> after that many tokens, then the answer follows.
    assert [p.score.value for p in result.points] == [1.0, 1.0, 1.0]
    reasoning = [p.reasoning_tokens_mean for p in result.points]
    assert reasoning[0] == 0 and 8 < reasoning[1] < 32 < reasoning[2]
    tokens = [p.completion_tokens_mean for p in result.points]
    assert tokens[0] < tokens[1] < tokens[2]
    assert all(r.config.thinking is True for r in reports[1:]) and reports[0].config.thinking is False
    png = tmp_path / "sweep.png"
    write_sweep_plot(result, png)
    assert png.read_bytes().startswith(b"\x89PNG")


def test_a_resumed_sweep_keeps_each_budget_apart(tmp_path: Path) -> None:
    sweep(tmp_path, (8,))
    reports, backend = sweep_resume(tmp_path, (8, 32))
    assert len(backend.submitted) == 3  # budget 8 was done; only budget 32 ran
    assert [r.speed.generated_now for r in reports] == [0, 3]


def sweep_resume(tmp_path: Path, budgets: tuple[int, ...]):  # type: ignore[no-untyped-def]
    llm, backend = make_llm()
    target = InProcessEvalTarget(llm, TargetInfo(kind="in-process", model="scripted-qwen3"))
    task = make_task("gsm8k", gsm8k_file(tmp_path, [42, 42, 42]))
    config = EvalConfig(concurrency=2, out=tmp_path / "sweep.jsonl", resume=True)
    reports = asyncio.run(evaluate_target(target, task, task.items(), config, budgets, NullProgress()))
    return reports, backend
