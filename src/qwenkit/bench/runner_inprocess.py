"""The benchmark target for a model loaded in this process: ``LLM.start_chat`` streams, timed per event.

Requests run as asyncio tasks over the engine's own async handles, so concurrent requests really
share the engine's batch (as they would in the server), with no thread per request.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence

from qwenkit.bench.target import RequestResult, TargetInfo
from qwenkit.bench.workload import Messages
from qwenkit.chat.events import ContentDelta, ReasoningDelta
from qwenkit.engine.llm import LLM
from qwenkit.engine.params import ChatParams
from qwenkit.engine.sampling import SamplingOptions


def file_sha256(path: os.PathLike[str] | str | None, known: str | None = None) -> str | None:
    """The model file's sha256: the recorded one when known, else hashed now (single-file models)."""
    if known:
        return known
    if path is None or not os.path.isfile(path):
        return None
    from pathlib import Path

    from qwenkit.models.store import sha256_file

    return sha256_file(Path(path))


class InProcessTarget:
    """Measures an ``LLM`` directly; ``load`` resolves and loads a reference as ``qwenkit.load`` does."""

    def __init__(self, llm: LLM, info: TargetInfo) -> None:
        self.llm = llm
        self.info = info

    @classmethod
    def load(
        cls,
        ref: str,
        *,
        backend: str,
        context: int,
        threads: int | None,
        parallel: int,
        progress: bool = True,
    ) -> InProcessTarget:
        from qwenkit.engine.llm import load
        from qwenkit.models import ensure_local, resolve

        local = ensure_local(resolve(ref), progress=progress)
        llm = load(
            ref, backend=backend, context=context, threads=threads, parallel=parallel, progress=progress
        )
        info = TargetInfo(
            kind="in-process",
            model=ref,
            backend=llm.backend.kind.value,
            model_path=str(local.path),
            sha256=file_sha256(local.path, local.sha256),
            context=llm.context_length,
            parallel=parallel,
        )
        return cls(llm, info)

    async def count_prompt(self, messages: Messages) -> int | None:
        return len(self.llm.encode(messages, ChatParams()).ids)

    async def probe_prompt_tokens(self, messages: Messages) -> int | None:
        return await self.count_prompt(messages)

    async def generate(self, messages: Messages, output_tokens: int, temperature: float) -> RequestResult:
        sampling = SamplingOptions.create(temperature=temperature)
        params = ChatParams(ignore_eos=True, max_tokens=output_tokens, sampling=sampling)
        chunks: list[float] = []
        start = time.perf_counter()
        try:
            stream = self.llm.start_chat(messages, params)
            async for event in stream:
                if isinstance(event, (ContentDelta, ReasoningDelta)) and event.text:
                    chunks.append(time.perf_counter())
            end = time.perf_counter()
            result = await stream.aresult()
        except Exception as exc:  # a failed request is a measurement, not a crash of the benchmark
            return RequestResult(start, time.perf_counter(), tuple(chunks), requested_tokens=output_tokens,
                                 error=f"{type(exc).__name__}: {exc}")
        usage = result.usage
        return RequestResult(
            start=start,
            end=end,
            chunk_times=tuple(chunks),
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            cached_prompt_tokens=usage.cached_prompt_tokens,
            requested_tokens=output_tokens,
        )

    def server_pids(self) -> Sequence[int]:
        return (os.getpid(),)

    async def aclose(self) -> None:
        self.llm.close()
