"""What an evaluation asks of a target: one whole answer to one chat, with its usage and timing.

The two targets are ``qwenkit bench``'s (a model loaded in this process, or any OpenAI-compatible
server), extended with ``answer``: the bench measures fixed-length streams and drops the text, an
evaluation needs the text and lets the model stop where it wants.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from qwenkit.bench.runner_http import HttpTarget, parse_sse_line
from qwenkit.bench.runner_inprocess import InProcessTarget
from qwenkit.bench.target import TargetInfo
from qwenkit.engine.params import ChatParams
from qwenkit.engine.sampling import SamplingOptions

ChatMessages = Sequence[Mapping[str, Any]]

try:
    import httpx
except ImportError:  # pragma: no cover - httpx is in the eval extra
    httpx = None  # type: ignore[assignment]


@dataclass(frozen=True)
class GenSettings:
    """One answer's generation settings; ``sampling`` holds SamplingOptions fields."""

    max_tokens: int
    sampling: Mapping[str, Any] = field(default_factory=dict)
    thinking: bool | None = None
    thinking_budget: int | None = None

    def with_seed(self, seed: int | None) -> GenSettings:
        if seed is None:
            return self
        sampling = {**self.sampling, "seed": seed}
        return GenSettings(self.max_tokens, sampling, self.thinking, self.thinking_budget)


@dataclass(frozen=True)
class Answer:
    content: str = ""
    reasoning: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    reasoning_tokens: int = 0
    seconds: float = 0.0
    decode_tps: float | None = None
    finish_reason: str = ""
    error: str | None = None


def continues(messages: ChatMessages) -> bool:
    """A final assistant message is a pre-filled answer, to be continued (not answered)."""
    return bool(messages) and messages[-1].get("role") == "assistant"


class EvalTarget(Protocol):
    info: TargetInfo

    async def answer(self, messages: ChatMessages, settings: GenSettings) -> Answer: ...

    def server_pids(self) -> Sequence[int]: ...

    async def aclose(self) -> None: ...


class InProcessEvalTarget(InProcessTarget):
    """A model loaded here; answers share the engine's batch (``--concurrency`` streams at once)."""

    async def answer(self, messages: ChatMessages, settings: GenSettings) -> Answer:
        params = ChatParams(
            sampling=SamplingOptions.create(**settings.sampling),
            max_tokens=settings.max_tokens,
            enable_thinking=settings.thinking,
            thinking_budget=settings.thinking_budget,
            continue_final_message=continues(messages),
        )
        start = time.perf_counter()
        try:
            stream = self.llm.start_chat(messages, params)
            result = await stream.aresult()
        except Exception as exc:  # one failed answer is recorded, not the end of the run
            return Answer(seconds=time.perf_counter() - start, error=f"{type(exc).__name__}: {exc}")
        usage = result.usage
        return Answer(
            content=result.content, reasoning=result.reasoning, prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens, reasoning_tokens=usage.reasoning_tokens,
            seconds=time.perf_counter() - start, decode_tps=result.decode_tokens_per_second or None,
            finish_reason=result.finish_reason,
        )


@dataclass
class _Collected:
    content: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)
    first: float | None = None
    finish: str = ""
    usage: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


def _feed(state: _Collected, line: str, now: float) -> bool:
    """Apply one SSE line of a chat stream; True at its end."""
    event = parse_sse_line(line)
    if event is None:
        return False
    if event.chunk is None:
        state.error = event.error or state.error
        return event.done
    obj = event.chunk
    for choice in obj.get("choices") or []:
        delta = choice.get("delta") or {}
        content, reasoning = delta.get("content"), delta.get("reasoning_content") or delta.get("reasoning")
        if (content or reasoning) and state.first is None:
            state.first = now
        state.content.append(content or "")
        state.reasoning.append(reasoning or "")
        state.finish = choice.get("finish_reason") or state.finish
    if isinstance(obj.get("usage"), dict):
        state.usage = obj["usage"]
    return False


class HttpEvalTarget(HttpTarget):
    """Any OpenAI-compatible server; thinking controls go as ``chat_template_kwargs`` (vLLM, llama.cpp,
    qwenkit) and qwenkit's ``thinking_budget``. A pre-filled answer goes as the final assistant message
    with vLLM's ``continue_final_message`` (qwenkit and vLLM read it; llama-server and Ollama continue a
    final assistant message by themselves)."""

    def answer_body(self, messages: ChatMessages, settings: GenSettings) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self._model, "messages": list(messages), "max_tokens": settings.max_tokens,
            "stream": True, "stream_options": {"include_usage": True}, **settings.sampling,
        }
        if settings.thinking is not None:
            body["chat_template_kwargs"] = {"enable_thinking": settings.thinking}
        if settings.thinking_budget is not None:
            body["thinking_budget"] = settings.thinking_budget
        if continues(messages):
            body["continue_final_message"], body["add_generation_prompt"] = True, False
        return body

    async def answer(self, messages: ChatMessages, settings: GenSettings) -> Answer:
        state = _Collected()
        start = time.perf_counter()
        try:
            body = self.answer_body(messages, settings)
            url = f"{self.root}/v1/chat/completions"
            async with self._client.stream("POST", url, json=body, headers=self._headers) as resp:
                if resp.status_code != 200:
                    text = (await resp.aread())[:300].decode("utf-8", errors="replace")
                    state.error = f"HTTP {resp.status_code}: {text}"
                else:
                    async for line in resp.aiter_lines():
                        if _feed(state, line, time.perf_counter()):
                            break
        except httpx.HTTPError as exc:
            state.error = f"{type(exc).__name__}: {exc}"
        return _http_answer(state, start, time.perf_counter())


def _http_answer(state: _Collected, start: float, end: float) -> Answer:
    usage = state.usage
    completion = int(usage.get("completion_tokens") or 0)
    details = usage.get("completion_tokens_details") or {}
    span = end - state.first if state.first else 0.0
    decode = (completion - 1) / span if completion > 1 and span > 0 else None
    return Answer(
        content="".join(state.content), reasoning="".join(state.reasoning),
        prompt_tokens=int(usage.get("prompt_tokens") or 0), completion_tokens=completion,
        reasoning_tokens=int(details.get("reasoning_tokens") or 0) if isinstance(details, dict) else 0,
        seconds=end - start, decode_tps=decode, finish_reason=state.finish, error=state.error,
    )
