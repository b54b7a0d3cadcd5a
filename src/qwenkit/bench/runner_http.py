"""The benchmark target for any OpenAI-compatible server (qwenkit serve, llama-server, vLLM, Ollama).

Requests stream ``/v1/chat/completions`` with ``stream_options.include_usage`` so token counts come
from the server. ``ignore_eos: true`` and ``min_tokens`` are sent as extra body fields: vLLM and
llama.cpp honour them, the others ignore them (the report then counts "short" answers).
Prompt counting tries, in order, vLLM's ``/tokenize`` with messages (qwenkit serve has it too) and
llama.cpp's ``/apply-template`` + ``/tokenize``; the first that answers is kept.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import psutil

from qwenkit.bench.target import RequestResult, TargetInfo
from qwenkit.bench.workload import Messages
from qwenkit.errors import MissingDependencyError, UsageError

try:
    import httpx
except ImportError:  # pragma: no cover - httpx is in the bench extra
    httpx = None  # type: ignore[assignment]

TEXT_FIELDS = ("content", "reasoning_content", "reasoning")
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "0.0.0.0"})


def api_root(url: str) -> str:
    """``http://host:8000/v1/`` -> ``http://host:8000``: endpoints are joined to the server root."""
    example = "http://127.0.0.1:8000"
    refused = UsageError(f"--url must be an http(s) URL such as {example}, got {url!r}", param="url")
    try:
        parts = urlsplit(url.strip())
        parts.port  # noqa: B018  (reading it checks it: a port of 99999 or "abc" raises ValueError)
    except ValueError:
        raise refused from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise refused
    path = parts.path.rstrip("/")
    path = path.removesuffix("/v1")
    return f"{parts.scheme}://{parts.netloc}{path}"


def _first_model(resp: Any, root: str) -> str:
    """The first model id a ``/v1/models`` answer lists (OpenAI's shape: ``{"data": [{"id": ...}]}``)."""
    try:
        listed = resp.json() if resp.status_code == 200 else None
    except ValueError:  # not JSON: some other web server
        message = f"{root}/v1/models is not an OpenAI-compatible answer (not JSON)"
        raise UsageError(message, param="url") from None
    data = listed.get("data") if isinstance(listed, dict) else None
    first = data[0] if isinstance(data, list) and data else None
    if not isinstance(first, dict) or not isinstance(first.get("id"), str):
        raise UsageError(f"{root}/v1/models lists no model; name one with --model", param="model")
    return str(first["id"])


def local_server_pids(url: str) -> tuple[int, ...]:
    """The process listening on the URL's port when the server runs on this machine, else ()."""
    parts = urlsplit(url)
    if parts.hostname not in LOCAL_HOSTS:
        return ()
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        conns = psutil.net_connections(kind="tcp")
    except (psutil.Error, OSError):
        return ()
    listening = [c for c in conns if c.status == psutil.CONN_LISTEN and c.laddr]
    pids = {c.pid for c in listening if c.pid and c.laddr.port == port}
    return tuple(sorted(pids))


@dataclass
class StreamState:
    """What an SSE chat stream has delivered so far."""

    chunk_times: list[float] = field(default_factory=list)
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cached_tokens: int = 0
    error: str | None = None


def _has_text(choice: Any) -> bool:
    delta = choice.get("delta") if isinstance(choice, dict) else None
    if not isinstance(delta, dict):
        return False
    return any(isinstance(delta.get(k), str) and delta[k] for k in TEXT_FIELDS)


@dataclass(frozen=True)
class SseEvent:
    """One ``data:`` line of an OpenAI stream: the end, an error (which ends it too), or a chunk."""

    done: bool
    chunk: dict[str, Any] | None = None
    error: str | None = None


def parse_sse_line(line: str) -> SseEvent | None:
    """None for a line that carries nothing (comments, keep-alives, a non-object payload)."""
    if not line.startswith("data:"):
        return None
    payload = line[5:].strip()
    if payload == "[DONE]":
        return SseEvent(done=True)
    try:
        obj = json.loads(payload)
    except json.JSONDecodeError:
        return SseEvent(done=True, error=f"unparseable stream event: {payload[:120]!r}")
    if not isinstance(obj, dict):
        return None
    if "error" in obj:
        err = obj["error"]
        return SseEvent(done=True, error=str(err.get("message", err) if isinstance(err, dict) else err))
    return SseEvent(done=False, chunk=obj)


def feed_sse_line(state: StreamState, line: str, now: float) -> bool:
    """Apply one SSE line; True when the stream is over (``[DONE]`` or an error event)."""
    event = parse_sse_line(line)
    if event is None:
        return False
    if event.chunk is None:
        state.error = event.error or state.error
        return event.done
    obj = event.chunk
    choices = obj.get("choices") or []
    if any(_has_text(c) for c in choices):
        state.chunk_times.append(now)
    usage = obj.get("usage")
    if isinstance(usage, dict):
        state.prompt_tokens = usage.get("prompt_tokens", state.prompt_tokens)
        state.completion_tokens = usage.get("completion_tokens", state.completion_tokens)
        details = usage.get("prompt_tokens_details") or {}
        state.cached_tokens = int(details.get("cached_tokens") or 0) if isinstance(details, dict) else 0
    return False


def _error_text(status: int, body: bytes) -> str:
    try:
        obj = json.loads(body)
        err = obj.get("error", obj) if isinstance(obj, dict) else obj
        message = err.get("message", err) if isinstance(err, dict) else err
    except (json.JSONDecodeError, UnicodeDecodeError):
        message = body[:200].decode("utf-8", errors="replace")
    return f"HTTP {status}: {message}"


class HttpTarget:
    """Measures a server over HTTP. ``client`` may be injected (tests use ``httpx.MockTransport``)."""

    def __init__(
        self,
        url: str,
        *,
        api_key: str | None = None,
        model: str | None = None,
        timeout: float = 600.0,
        client: Any = None,
    ) -> None:
        if httpx is None:
            raise MissingDependencyError.for_extra("httpx", "bench")
        self.root = api_root(url)
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        timeouts = httpx.Timeout(timeout, connect=10.0)
        self._client = client or httpx.AsyncClient(timeout=timeouts, headers=headers)
        self._headers = headers
        self._model = model
        self._counter: Callable[[Messages], Awaitable[int | None]] | None = None
        self._counter_tried = False
        self._pids = local_server_pids(self.root)
        self.info = TargetInfo(kind="http", model=model or "", url=self.root)

    async def connect(self) -> None:
        """Ask the server for its model (unless given), failing clearly when nothing answers."""
        try:
            resp = await self._client.get(f"{self.root}/v1/models", headers=self._headers)
        except httpx.HTTPError as exc:
            message = f"no OpenAI-compatible server answers at {self.root}: {exc}"
            raise UsageError(message, param="url") from None
        if resp.status_code == 401:
            raise UsageError(f"{self.root} refused the API key (HTTP 401); pass --api-key", param="api_key")
        if self._model is None:
            self._model = _first_model(resp, self.root)
        self.info = TargetInfo(kind="http", model=self._model, url=self.root)

    # ----- prompt counting ------------------------------------------------------------------

    async def _post_json(self, path: str, body: dict[str, Any]) -> Any:
        try:
            resp = await self._client.post(f"{self.root}{path}", json=body, headers=self._headers)
        except httpx.HTTPError:
            return None
        if resp.status_code != 200:
            return None
        try:
            return resp.json()
        except ValueError:
            return None

    async def _count_vllm(self, messages: Messages) -> int | None:
        obj = await self._post_json("/tokenize", {"model": self._model, "messages": messages})
        if not isinstance(obj, dict):
            return None
        count = obj.get("count", len(obj.get("tokens") or []))
        return count if isinstance(count, int) and count > 0 else None

    async def _count_llama_cpp(self, messages: Messages) -> int | None:
        applied = await self._post_json("/apply-template", {"messages": messages})
        if not isinstance(applied, dict) or not isinstance(applied.get("prompt"), str):
            return None
        obj = await self._post_json("/tokenize", {"content": applied["prompt"], "parse_special": True})
        tokens = obj.get("tokens") if isinstance(obj, dict) else None
        return len(tokens) if isinstance(tokens, list) and tokens else None

    async def count_prompt(self, messages: Messages) -> int | None:
        if self._counter is not None:
            return await self._counter(messages)
        if self._counter_tried:
            return None
        self._counter_tried = True
        for counter in (self._count_vllm, self._count_llama_cpp):
            count = await counter(messages)
            if count is not None:
                self._counter = counter
                return count
        return None

    async def probe_prompt_tokens(self, messages: Messages) -> int | None:
        body = {"model": self._model, "messages": messages, "max_tokens": 1, "temperature": 0.0}
        obj = await self._post_json("/v1/chat/completions", body)
        usage = obj.get("usage") if isinstance(obj, dict) else None
        count = usage.get("prompt_tokens") if isinstance(usage, dict) else None
        return count if isinstance(count, int) and count > 0 else None

    # ----- one measured request -------------------------------------------------------------

    def request_body(self, messages: Messages, output_tokens: int, temperature: float) -> dict[str, Any]:
        return {
            "model": self._model,
            "messages": messages,
            "max_tokens": output_tokens,
            "temperature": temperature,
            "stream": True,
            "stream_options": {"include_usage": True},
            "ignore_eos": True,
            "min_tokens": output_tokens,
        }

    async def generate(self, messages: Messages, output_tokens: int, temperature: float) -> RequestResult:
        state = StreamState()
        body = self.request_body(messages, output_tokens, temperature)
        start = time.perf_counter()
        try:
            async with self._client.stream(
                "POST", f"{self.root}/v1/chat/completions", json=body, headers=self._headers
            ) as resp:
                if resp.status_code != 200:
                    state.error = _error_text(resp.status_code, await resp.aread())
                else:
                    async for line in resp.aiter_lines():
                        if feed_sse_line(state, line, time.perf_counter()):
                            break
        except httpx.HTTPError as exc:
            state.error = f"{type(exc).__name__}: {exc}"
        return self._result(state, start, time.perf_counter(), output_tokens)

    @staticmethod
    def _result(state: StreamState, start: float, end: float, requested: int) -> RequestResult:
        error = state.error
        if error is None and state.completion_tokens is None:
            error = "the server sent no usage (stream_options.include_usage unsupported?)"
        return RequestResult(
            start=start,
            end=end,
            chunk_times=tuple(state.chunk_times),
            prompt_tokens=int(state.prompt_tokens or 0),
            completion_tokens=int(state.completion_tokens or 0),
            cached_prompt_tokens=state.cached_tokens,
            requested_tokens=requested,
            error=error,
        )

    def server_pids(self) -> Sequence[int]:
        return self._pids

    async def aclose(self) -> None:
        await self._client.aclose()
