"""What the chat and completion endpoints share: the served model's names, sampling fields, usage,
logprobs, and ``RequestRun``: one request's generations, admitted, driven, and always cleaned up."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from qwenkit.chat.encode import EncodedPrompt
from qwenkit.chat.events import Event
from qwenkit.chat.messages import normalize_messages
from qwenkit.engine.chat_run import ChatResult, TokenLogprob
from qwenkit.engine.llm import LLM, ChatStream
from qwenkit.engine.params import ChatParams
from qwenkit.errors import ModelNotFoundError, OverloadedError, QwenkitError, UsageError
from qwenkit.server.auth import key_name_of
from qwenkit.server.errors import error_body
from qwenkit.server.logs import log_event, text_field
from qwenkit.server.protocol_chat import SamplingFields
from qwenkit.server.protocol_common import (
    ChoiceLogprobs,
    CompletionTokensDetails,
    PromptTokensDetails,
    TokenLogprobInfo,
    TopLogprob,
    UsageInfo,
)
from qwenkit.server.sse import DONE, SSE_HEADERS, Deadline, drive, sse_data
from qwenkit.server.state import ServerState, Ticket

SEED_MODULUS = 2**63


def completion_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex}"


def now() -> int:
    return int(time.time())


def server_state(request: Request) -> ServerState:
    """The running server's state; 503 while the model is not (or no longer) loaded."""
    state: ServerState | None = getattr(request.app.state, "server", None)
    if state is None:
        raise OverloadedError("the model is not loaded", retry_after=5)
    return state


def check_model(state: ServerState, name: str | None) -> str:
    """The served model's id (an adapter's name for an adapter); an unknown name is 404
    ``model_not_found``, as OpenAI answers."""
    if name is not None and name in state.adapters:
        return name
    if name is None or name in state.model_names:
        return state.model_id
    raise ModelNotFoundError(
        f"The model '{name}' does not exist; this server serves '{state.model_id}'", param="model"
    )


def adapter_of(state: ServerState, served: str) -> str | None:
    """The LoRA adapter a request runs with: the one its ``model`` named, else none (the base)."""
    return served if served in state.adapters else None


def refuse_template(req: SamplingFields, kwargs: dict[str, Any] | None = None) -> None:
    if "chat_template" in req.model_fields_set or (kwargs and "chat_template" in kwargs):
        raise UsageError("chat templates cannot be supplied by requests", param="chat_template")


def choice_seed(seed: int | None, index: int) -> int | None:
    """Choice 0 keeps the caller's seed; the others get their own, so ``n`` choices differ."""
    return seed if seed is None or index == 0 else (seed + index) % SEED_MODULUS


def usage_info(results: Sequence[ChatResult]) -> UsageInfo:
    prompt = results[0].usage.prompt_tokens if results else 0
    cached = results[0].usage.cached_prompt_tokens if results else 0
    completion = sum(r.usage.completion_tokens for r in results)
    reasoning = sum(r.usage.reasoning_tokens for r in results)
    return UsageInfo(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=prompt + completion,
        prompt_tokens_details=PromptTokensDetails(cached_tokens=cached),
        completion_tokens_details=CompletionTokensDetails(reasoning_tokens=reasoning),
    )


def _utf8(text: str) -> list[int]:
    return list(text.encode("utf-8", errors="replace"))


def chat_logprobs(entries: Sequence[TokenLogprob] | None) -> ChoiceLogprobs | None:
    if entries is None:
        return None
    content = [
        TokenLogprobInfo(
            token=e.token,
            logprob=e.logprob,
            bytes=_utf8(e.token),
            top_logprobs=[TopLogprob(token=t, logprob=lp, bytes=_utf8(t)) for t, lp in e.top],
        )
        for e in entries
    ]
    return ChoiceLogprobs(content=content)


class GuardedStream(StreamingResponse):
    """A streaming response whose cleanup runs however it ends, even if the body never started."""

    def __init__(self, content: AsyncIterator[str], on_close: Callable[[], None]) -> None:
        super().__init__(content, media_type="text/event-stream", headers=SSE_HEADERS)
        self._on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._on_close()


class RequestRun:
    """One request's generations: started together, driven together, closed exactly once."""

    def __init__(self, request: Request, state: ServerState, ticket: Ticket, kind: str) -> None:
        self.request = request
        self.state = state
        self.ticket = ticket
        self.kind = kind
        self.streams: list[ChatStream] = []
        self.results: list[ChatResult] = []
        self.deadline = Deadline(state.settings.request_timeout)
        self.prompt_text = ""
        self.output_text = ""
        self._closed = False

    @property
    def llm(self) -> LLM:
        return self.state.llm

    def start(self, make: Callable[[int], ChatStream], n: int) -> None:
        try:
            for i in range(n):
                self.streams.append(make(i))
        except BaseException:
            self.close()
            raise

    async def events(self, *, watch_client: bool = True) -> AsyncIterator[tuple[int, Event]]:
        """The choices' events. A streaming response passes ``watch_client=False``: Starlette's
        StreamingResponse listens for the disconnect itself and closes the body, which ends these."""
        disconnected = self.request.is_disconnected if watch_client else None
        async for item in drive(self.streams, self.deadline, disconnected):
            yield item

    async def collect(self) -> list[ChatResult]:
        try:
            async for _ in self.events():
                pass
            self.results = [await s.aresult() for s in self.streams]
            return self.results
        finally:
            self.close()

    async def finish_results(self) -> list[ChatResult]:
        """After streaming every event: the per-choice results (no more waiting)."""
        self.results = [await s.aresult() for s in self.streams]
        return self.results

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for stream in self.streams:
            stream.cancel()
        usage = usage_info(self.results) if self.results else None
        self.ticket.release(usage.completion_tokens if usage is not None else None)
        self.state.observe(self.kind, self.results)
        self._log(usage)

    def _log(self, usage: UsageInfo | None) -> None:
        log_prompts = self.state.settings.log_prompts
        self.output_text = self.output_text or "".join(r.content for r in self.results)
        fields: dict[str, Any] = {
            "request_id": getattr(self.request.state, "request_id", None),
            "key": key_name_of(self.request),
            "endpoint": self.kind,
            "n": len(self.streams),
            "prompt": text_field(self.prompt_text, log_prompts),
            "output": text_field(self.output_text, log_prompts),
            "finish_reasons": [r.finish_reason for r in self.results],
        }
        if usage is not None:
            fields.update(prompt_tokens=usage.prompt_tokens, completion_tokens=usage.completion_tokens)
            fields["ttft_ms"] = round(self.results[0].time_to_first_token * 1000.0, 1)
            fields["decode_tps"] = round(self.results[0].decode_tokens_per_second, 2)
        log_event("generation", fields)


async def errors_as_events(run: RequestRun, body: AsyncIterator[str]) -> AsyncIterator[str]:
    """Once a stream's headers are sent, an error can only travel as an SSE event, then [DONE]."""
    try:
        async for chunk in body:
            yield chunk
    except QwenkitError as exc:
        yield sse_data(json.dumps(exc.to_openai()))
        yield DONE
    except Exception:
        run.state.log_fault(run.request)
        body_ = error_body("internal server error", "server_error", None, "internal_error")
        yield sse_data(json.dumps(body_))
        yield DONE
    finally:
        run.close()


async def encode_request(llm: LLM, messages: Sequence[Any], params: ChatParams) -> EncodedPrompt:
    """The prompt of a chat request; one with images is encoded on a worker thread, since decoding,
    resizing (and, where allowed, fetching) them must not hold up the event loop's other requests."""
    msgs = normalize_messages(messages)  # validated once: llm.encode passes Message objects through
    if any(message.images for message in msgs):
        return await anyio.to_thread.run_sync(llm.encode, msgs, params)
    return llm.encode(msgs, params)
