"""Test doubles for the benchmark: a timed fake engine behind a real ``LLM``, and a fake ``Target``.

``PacedBackend`` produces tokens on its own thread at a fixed pace through the real
``QueuedHandle``, honours ``ignore_eos`` (without it, it "emits EOS" after ``eos_after`` tokens) and
``max_tokens``, so the in-process runner is exercised exactly as with llama.cpp.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from pathlib import Path

from _chat_tokenizer import real_qwen_tokenizer

from qwenkit.bench.target import RequestResult, TargetInfo
from qwenkit.bench.workload import Messages
from qwenkit.chat.template import TemplateFamily
from qwenkit.chat.tokenizer import Tokenizer
from qwenkit.engine.handle import QueuedHandle
from qwenkit.engine.llm import LLM, ModelFacts
from qwenkit.engine.types import BackendKind, Capability, FinishReason, SamplingParams, TokenEvent


class PacedBackend:
    kind = BackendKind.TRANSFORMERS  # a stand-in: what /v1/models and bench report
    capabilities = Capability.LOGPROBS

    def __init__(self, tokenizer: Tokenizer, *, delay: float = 0.002, eos_after: int | None = None,
                 context_length: int = 4096) -> None:
        self.tokenizer = tokenizer
        self.context_length = context_length
        self.delay = delay
        self.eos_after = eos_after
        self.word_ids = tokenizer.encode_text(" alpha beta gamma delta")
        self.submitted: list[tuple[list[int], SamplingParams]] = []
        self._threads: list[threading.Thread] = []

    def _produce(self, handle: QueuedHandle, params: SamplingParams) -> None:
        limit = params.max_tokens
        if not params.ignore_eos and self.eos_after is not None:
            limit = min(limit, self.eos_after)
        for i in range(limit):
            if handle.cancelled:
                return
            time.sleep(self.delay)
            handle.push(TokenEvent(self.word_ids[i % len(self.word_ids)]))
        handle.finish(FinishReason.LENGTH if limit == params.max_tokens else FinishReason.STOP)

    def submit(self, prompt_ids: Sequence[int], params: SamplingParams) -> QueuedHandle:
        self.submitted.append((list(prompt_ids), params))
        handle = QueuedHandle(vocab_size=self.tokenizer.vocab_size)
        handle.timings.prompt_tokens = len(prompt_ids)
        thread = threading.Thread(target=self._produce, args=(handle, params), daemon=True)
        self._threads.append(thread)
        thread.start()
        return handle

    def close(self) -> None:
        for thread in self._threads:
            thread.join()


def paced_llm(**kwargs: object) -> tuple[LLM, PacedBackend]:
    backend = PacedBackend(real_qwen_tokenizer(), **kwargs)  # type: ignore[arg-type]
    facts = ModelFacts(path=Path("paced"), variant=None, template_family=TemplateFamily.QWEN3)
    return LLM(backend, facts), backend


class FakeTarget:
    """A target with scripted timings: each token takes ``per_token`` s, the first ``first`` s more.

    ``fail_every``: every n-th request fails. ``count``: whether it can count prompts exactly
    (one token per word plus ``overhead``); ``probe``: whether a one-token request reports usage.
    """

    def __init__(self, *, per_token: float = 0.001, first: float = 0.005, overhead: int = 12,
                 fail_every: int = 0, count: bool = True, probe: bool = True, cap: int | None = None) -> None:
        self.info = TargetInfo(kind="fake", model="fake-model")
        self.per_token, self.first, self.overhead = per_token, first, overhead
        self.fail_every, self.can_count, self.can_probe, self.cap = fail_every, count, probe, cap
        self.calls: list[int] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.closed = False

    def _tokens(self, messages: Messages) -> int:
        return self.overhead + len(str(messages[0]["content"]).split())

    async def count_prompt(self, messages: Messages) -> int | None:
        return self._tokens(messages) if self.can_count else None

    async def probe_prompt_tokens(self, messages: Messages) -> int | None:
        return self._tokens(messages) if self.can_probe else None

    async def generate(self, messages: Messages, output_tokens: int, temperature: float) -> RequestResult:
        import asyncio

        self.calls.append(self._tokens(messages))
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        start = time.perf_counter()
        try:
            if self.fail_every and len(self.calls) % self.fail_every == 0:
                return RequestResult(start, time.perf_counter(), requested_tokens=output_tokens,
                                     error="HTTP 503: overloaded")
            produced = min(output_tokens, self.cap) if self.cap else output_tokens
            await asyncio.sleep(self.first)
            chunks = []
            for _ in range(produced):
                await asyncio.sleep(self.per_token)
                chunks.append(time.perf_counter())
            return RequestResult(start, time.perf_counter(), tuple(chunks), self._tokens(messages), produced,
                                 requested_tokens=output_tokens)
        finally:
            self.in_flight -= 1

    def server_pids(self) -> Sequence[int]:
        import os

        return (os.getpid(),)

    async def aclose(self) -> None:
        self.closed = True
