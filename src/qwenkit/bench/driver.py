"""Runs a workload against a target: calibrate prompts, warm up, then each level under a semaphore.

Prompts are built before a level starts, so tokenizing them is never timed; every level's peak
memory is sampled while it runs. Levels run one after another, never overlapping.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass

from qwenkit.bench.memory import MemorySampler
from qwenkit.bench.progress import NullProgress, ProgressSink
from qwenkit.bench.stats import LevelSummary, summarize_level
from qwenkit.bench.target import RequestResult, Target
from qwenkit.bench.workload import (
    CountFn,
    Level,
    Messages,
    Prompt,
    PromptFactory,
    Workload,
    user_messages,
)


@dataclass(frozen=True)
class Calibration:
    factory: PromptFactory
    exact: bool
    note: str


async def calibrate(target: Target, words: Sequence[str], seed: int) -> Calibration:
    """The most exact prompt counting the target allows (see ``workload``'s docstring)."""
    probe = user_messages(words[:1])
    if await target.count_prompt(probe) is not None:
        return Calibration(
            PromptFactory(words, _strict_count(target), seed=seed), True, "prompt lengths counted exactly"
        )
    probed = await target.probe_prompt_tokens(probe)
    if probed is not None:
        note = "prompt lengths approximate: template overhead from a probe's usage, one token per word"
        return Calibration(PromptFactory(words, None, seed=seed, overhead=probed - 1), False, note)
    note = "prompt lengths approximate: one token per word, template overhead unknown (taken as 0)"
    return Calibration(PromptFactory(words, None, seed=seed, overhead=0), False, note)


def _strict_count(target: Target) -> CountFn:
    async def count(messages: Messages) -> int:
        value = await target.count_prompt(messages)
        if value is None:
            raise RuntimeError("the target stopped counting prompts")
        return value

    return count


async def run_requests(
    target: Target,
    prompts: Sequence[Prompt],
    concurrency: int,
    workload: Workload,
    progress: ProgressSink,
) -> list[RequestResult]:
    """All prompts, at most ``concurrency`` in flight; results in prompt order."""
    gate = asyncio.Semaphore(concurrency)

    async def one(prompt: Prompt) -> RequestResult:
        async with gate:
            result = await target.generate(prompt.messages, workload.output_tokens, workload.temperature)
        progress.advance()
        return result

    return list(await asyncio.gather(*(one(p) for p in prompts)))


async def build_prompts(factory: PromptFactory, target_tokens: int, n: int) -> list[Prompt]:
    return [await factory.make(target_tokens) for _ in range(n)]


async def run_level(
    target: Target,
    level: Level,
    prompts: Sequence[Prompt],
    workload: Workload,
    *,
    gpu: bool,
    progress: ProgressSink,
) -> LevelSummary:
    progress.begin(f"prompt {level.prompt_tokens:>5} x{level.concurrency:<3}", len(prompts))
    with MemorySampler(target.server_pids(), gpu=gpu) as memory:
        start = time.perf_counter()
        results = await run_requests(target, prompts, level.concurrency, workload, progress)
        wall = time.perf_counter() - start
    progress.end()
    return summarize_level(level, results, wall, memory.peak)


@dataclass(frozen=True)
class DriverResult:
    levels: tuple[LevelSummary, ...]
    notes: tuple[str, ...]


async def run_workload(
    target: Target,
    workload: Workload,
    words: Sequence[str],
    *,
    gpu: bool = False,
    progress: ProgressSink | None = None,
) -> DriverResult:
    """Calibrate, warm up (not measured), then every level of ``workload`` in order."""
    sink = progress or NullProgress()
    calibration = await calibrate(target, words, workload.seed)
    notes = [calibration.note]
    if workload.warmup:
        warm = await build_prompts(calibration.factory, min(workload.prompt_tokens), workload.warmup)
        sink.begin("warm-up", len(warm))
        await run_requests(target, warm, 1, workload, sink)
        sink.end()
    summaries = []
    for level in workload.levels():
        prompts = await build_prompts(calibration.factory, level.prompt_tokens, level.requests)
        summaries.append(await run_level(target, level, prompts, workload, gpu=gpu, progress=sink))
    if any(s.short_outputs for s in summaries):
        notes.append("some answers ended before --output-tokens: the target did not honour ignore_eos")
    return DriverResult(tuple(summaries), tuple(notes))
