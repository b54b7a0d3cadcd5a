"""``qwenkit eval`` end to end: open the target, answer every item (C at once), grade, report.

Generation runs as asyncio tasks over the target (the in-process engine batches them; a server gets C
requests in flight); grading runs in worker threads, because executing code blocks. Every graded
answer is appended to the results file at once, so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from qwenkit.bench.memory import MemorySampler
from qwenkit.bench.progress import NullProgress, ProgressSink
from qwenkit.bench.report import describe_machine, now_iso
from qwenkit.bench.runner_inprocess import InProcessTarget
from qwenkit.catalog.hardware import detect_hardware
from qwenkit.errors import UsageError
from qwenkit.eval.report import EvalReport, RunConfig, Speed, failure_reasons, per_item, score_records
from qwenkit.eval.results import ItemRecord, ResultStore
from qwenkit.eval.sandbox import network_isolation
from qwenkit.eval.targets import Answer, EvalTarget, GenSettings, HttpEvalTarget, InProcessEvalTarget
from qwenkit.eval.tasks import Item, Metric, Task

GRADERS = 2  # sandboxed programs at once: the cores also decode
CONTEXT_STEP = 256
PROMPT_ROOM = 1024  # the longest HumanEval/GSM8K prompt is well under this


@dataclass(frozen=True)
class TargetSpec:
    ref: str | None = None
    url: str | None = None
    api_key: str | None = None
    served_model: str | None = None
    backend: str = "auto"
    context: int | None = None
    threads: int | None = None


@dataclass(frozen=True)
class EvalConfig:
    samples: int = 1
    temperature: float = 0.0
    max_tokens: int | None = None
    concurrency: int = 1
    limit: int | None = None
    thinking: bool | None = None
    out: Path | None = None
    resume: bool = False
    seed: int = 0

    def settings(self, task: Task, budget: int | None) -> GenSettings:
        """Greedy (or T with top-p 0.95) and no repetition penalty: the settings published scores use."""
        sampling = {"temperature": self.temperature, "top_p": 1.0 if self.temperature == 0 else 0.95,
                    "top_k": 0, "min_p": 0.0, "repetition_penalty": 1.0}
        thinking = self.thinking
        if budget == 0:
            thinking = False  # Qwen's non-thinking mode
        elif budget is not None and thinking is None:
            thinking = True  # a budget is for thinking
        max_tokens = self.max_tokens or task.max_tokens + (budget + 64 if budget else 0) + (
            4096 if thinking and not budget else 0)
        return GenSettings(max_tokens, sampling, thinking, budget)


def needed_context(config: EvalConfig, task: Task, budgets: Sequence[int | None]) -> int:
    longest = max(config.settings(task, b).max_tokens for b in budgets) + PROMPT_ROOM
    return -(-longest // CONTEXT_STEP) * CONTEXT_STEP


async def open_target(spec: TargetSpec, *, parallel: int, context: int, progress: bool) -> EvalTarget:
    if spec.url is not None:
        http = HttpEvalTarget(spec.url, api_key=spec.api_key, model=spec.served_model)
        await http.connect()
        return http
    if spec.ref is None:
        raise UsageError("name a model to load (REF) or a server to evaluate (--url)")
    loaded = await asyncio.to_thread(
        InProcessTarget.load, spec.ref, backend=spec.backend, context=spec.context or context,
        threads=spec.threads, parallel=parallel, progress=progress,
    )
    return InProcessEvalTarget(loaded.llm, loaded.info)


def opening(item: Item, settings: GenSettings) -> str:
    """The pre-filled start of the answer, unless the model thinks first: a continued Qwen3 answer
    comes after an empty reasoning block, so a pre-fill would switch thinking off."""
    return "" if settings.thinking else item.prefill


def _record(
    item: Item, sample: int, budget: int | None, answer: Answer, task: Task, prefill: str
) -> ItemRecord:
    """One graded answer; a pre-filled opening counts as the answer's start (the record keeps both)."""
    text = prefill + answer.content
    if answer.error is not None:
        correct, reason, extracted = False, f"generation failed: {answer.error}", None
    else:
        grade = task.grade(item, text)
        correct, reason, extracted = grade.correct, grade.reason, grade.extracted
    return ItemRecord(
        item=item.id, sample=sample, prompt_hash=item.prompt_hash, thinking_budget=budget, correct=correct,
        reason=reason, answer=text, reasoning=answer.reasoning, extracted=extracted,
        prompt_tokens=answer.prompt_tokens, completion_tokens=answer.completion_tokens,
        reasoning_tokens=answer.reasoning_tokens, seconds=round(answer.seconds, 4),
        decode_tps=answer.decode_tps, finish_reason=answer.finish_reason, error=answer.error,
    )


async def answer_all(target: EvalTarget, task: Task, jobs: Sequence[tuple[Item, int]], settings: GenSettings,
                     config: EvalConfig, store: ResultStore, progress: ProgressSink) -> list[ItemRecord]:
    gate, graders = asyncio.Semaphore(config.concurrency), asyncio.Semaphore(GRADERS)

    async def one(item: Item, sample: int) -> ItemRecord:
        seed = None if config.temperature == 0 else config.seed + sample
        prefill = opening(item, settings)
        async with gate:
            answer = await target.answer(item.conversation(prefill), settings.with_seed(seed))
        async with graders:
            record = await asyncio.to_thread(_record, item, sample, settings.thinking_budget, answer, task,
                                             prefill)
        store.add(record)
        progress.advance()
        return record

    return list(await asyncio.gather(*(one(item, s) for item, s in jobs)))


def header(config: EvalConfig, task: Task, target: EvalTarget) -> dict[str, object]:
    """What must match for a results file to be resumed (the thinking budget is per record)."""
    sampling = config.settings(task, None).sampling
    return {"task": task.name.value, "model": target.info.model, "model_sha256": target.info.sha256,
            "samples": config.samples, "max_tokens": config.max_tokens, "sampling": dict(sampling),
            "thinking": config.thinking, "seed": config.seed}


def _speed(records: Sequence[ItemRecord], fresh: Sequence[ItemRecord], wall: float, target: EvalTarget,
           rss: int | None) -> Speed:
    ok = [r for r in records if r.error is None] or list(records)
    decode = [r.decode_tps for r in ok if r.decode_tps]
    new_tokens = sum(r.completion_tokens for r in fresh)
    path = target.info.model_path
    return Speed(
        completion_tokens_mean=sum(r.completion_tokens for r in ok) / max(1, len(ok)),
        reasoning_tokens_mean=sum(r.reasoning_tokens for r in ok) / max(1, len(ok)),
        decode_tps_mean=sum(decode) / len(decode) if decode else None,
        aggregate_tps=new_tokens / wall if fresh and wall > 0 else None,
        seconds_per_answer=wall / len(fresh) if fresh else None,
        wall_seconds=round(wall, 2), generated_now=len(fresh), peak_rss_bytes=rss,
        model_file_bytes=os.path.getsize(path) if path and os.path.isfile(path) else None,
    )


async def run_task(target: EvalTarget, task: Task, items: Sequence[Item], config: EvalConfig,
                   budget: int | None, store: ResultStore, progress: ProgressSink) -> EvalReport:
    """One pass over the items at one thinking budget; finished answers in ``store`` are reused."""
    settings = config.settings(task, budget)
    keep: list[ItemRecord] = []
    jobs: list[tuple[Item, int]] = []
    for item in items:
        for sample in range(config.samples):
            done = store.finished((budget, item.id, sample), item.prompt_hash)
            keep.append(done) if done is not None else jobs.append((item, sample))
    label = f"{task.name.value}" + (f", thinking budget {budget}" if budget is not None else "")
    progress.begin(label, len(jobs))
    start = time.perf_counter()
    with MemorySampler(target.server_pids(), gpu=detect_hardware().has_cuda) as memory:
        fresh = await answer_all(target, task, jobs, settings, config, store, progress)
    wall = time.perf_counter() - start
    progress.end()
    records = keep + fresh
    notes = [f"{len(keep)} answers reused from {store.path}"] if keep else []
    if task.metric is Metric.PASS_AT:
        notes.append(f"generated code ran in a sandbox; network: {network_isolation()}")
    return EvalReport(
        created=now_iso(), machine=describe_machine(detect_hardware()), target=target.info,
        config=RunConfig(task.name.value, config.samples, config.temperature, settings.max_tokens,
                         config.concurrency, config.limit, settings.thinking, budget),
        metric=task.metric.value, scores=score_records(records, task.metric, config.samples),
        speed=_speed(records, fresh, wall, target, memory.peak.rss_bytes), items=per_item(records),
        failures=failure_reasons(records), errors=sum(1 for r in records if r.error is not None),
        published=task.published(target.info.model),
        sandbox=network_isolation() if task.metric is Metric.PASS_AT else None,
        results_file=str(store.path) if store.path else None, notes=tuple(notes),
    )


async def evaluate(spec: TargetSpec, task: Task, config: EvalConfig, budgets: Sequence[int | None] = (None,),
                   progress: ProgressSink | None = None, *, show_progress: bool = True) -> list[EvalReport]:
    """Load (or connect to) the target once and run the task at each thinking budget."""
    sink = progress or NullProgress()
    items = task.items()[: config.limit] if config.limit else task.items()
    context = needed_context(config, task, budgets)
    target = await open_target(spec, parallel=config.concurrency, context=context, progress=show_progress)
    try:
        return await evaluate_target(target, task, items, config, budgets, sink)
    finally:
        await target.aclose()


async def evaluate_target(target: EvalTarget, task: Task, items: Sequence[Item], config: EvalConfig,
                          budgets: Sequence[int | None], progress: ProgressSink) -> list[EvalReport]:
    """The task at each thinking budget on an open target, all answers in one results file."""
    store = ResultStore(config.out, header(config, task, target), resume=config.resume)
    try:
        return [await run_task(target, task, items, config, b, store, progress) for b in budgets]
    finally:
        store.close()
