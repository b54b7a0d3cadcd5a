"""The ASGI layer in front of every route: request ids, draining, the body guard and the access log.

The body guard reads a POST body once, before FastAPI does: over the size cap -> 413; not UTF-8,
not JSON, NaN/Infinity, nesting too deep, or a lone surrogate in any string -> 400. All in OpenAI's
error shape, so no malformed body can reach a route (or turn into a 5xx inside the framework).
"""

from __future__ import annotations

import json
import logging
import sys
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from qwenkit.server.auth import ANONYMOUS
from qwenkit.server.errors import error_body
from qwenkit.server.logs import RequestTimer, log_event

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# Paths that keep answering while the server drains (probes, metrics).
ALWAYS_OPEN = frozenset({"/health", "/ready", "/metrics"})
# Deeper than any real request (a tool's JSON schema included); deeper ones would reach recursive code
# behind the routes (pydantic, message normalisation) and fail there with a RecursionError.
MAX_JSON_DEPTH = 100


class BadBody(Exception):
    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code


def _reject_constant(name: str) -> Any:
    raise BadBody(400, f"the request body contains {name}, which is not a JSON number")


def _surrogate_path(value: Any, path: str = "") -> str | None:
    """The path of the first string (or key) holding a lone surrogate, if any."""
    stack: list[tuple[Any, str]] = [(value, path)]
    while stack:
        item, where = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return where or "body"
        elif isinstance(item, dict):
            for key, sub in item.items():
                stack.append((key, where or "body"))
                stack.append((sub, f"{where}.{key}" if where else str(key)))
        elif isinstance(item, list):
            stack.extend((sub, f"{where}[{i}]") for i, sub in enumerate(item))
    return None


def _too_deep(value: Any, limit: int) -> bool:
    """True if arrays and objects nest more than ``limit`` levels (iteratively: no recursion to exhaust)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            if depth > limit:
                return True
            children = item.values() if isinstance(item, dict) else item
            stack.extend((sub, depth + 1) for sub in children if isinstance(sub, (dict, list)))
    return False


def check_json_body(body: bytes) -> None:
    """Raise BadBody unless ``body`` is UTF-8 JSON with finite numbers and well-formed strings."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadBody(400, f"the request body is not valid UTF-8 (byte {exc.start})") from exc
    try:
        data = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise BadBody(400, f"the request body is not valid JSON: {exc.msg} at position {exc.pos}") from exc
    except RecursionError as exc:
        raise BadBody(400, "the request body is nested too deeply") from exc
    except ValueError as exc:  # an integer of more digits than Python converts (sys.set_int_max_str_digits)
        limit = sys.get_int_max_str_digits()
        raise BadBody(400, f"the request body holds an integer of more than {limit} digits") from exc
    if _too_deep(data, MAX_JSON_DEPTH):
        raise BadBody(400, f"the request body is nested too deeply (more than {MAX_JSON_DEPTH} levels)")
    if "\\u" in text or "\\U" in text:
        where = _surrogate_path(data)
        if where is not None:
            raise BadBody(400, f"{where} contains a lone UTF-16 surrogate, which is not valid Unicode", where)


async def _read_body(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise BadBody(400, "the client disconnected before sending the body")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BadBody(413, f"the request body is larger than {limit} bytes", code="request_too_large")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def send_json(
    send: Send, status: int, body: dict[str, Any], headers: dict[str, str] | None = None
) -> None:
    raw = json.dumps(body).encode("utf-8")
    head = [(b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode())]
    head += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send({"type": "http.response.body", "body": raw})


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


class RequestContextMiddleware:
    """Outermost: request id, the draining gate (503 + Retry-After) and one access-log line."""

    def __init__(self, app: ASGIApp, state: Any) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = _header(scope, b"x-request-id") or ""
        rid = rid[:128] if rid and rid.isprintable() else f"req-{uuid.uuid4().hex[:20]}"
        scope.setdefault("state", {})["request_id"] = rid
        timer, status = RequestTimer(), [0]

        async def tracked_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", rid.encode())]
            await send(message)

        try:
            if getattr(self.state, "draining", False) and scope["path"] not in ALWAYS_OPEN:
                body = error_body("the server is shutting down", "server_error", None, "shutting_down")
                await send_json(tracked_send, 503, body, {"Retry-After": "5", "Connection": "close"})
                return
            await self.app(scope, receive, tracked_send)
        finally:
            self._access_log(scope, rid, status[0], timer)

    @staticmethod
    def _access_log(scope: Scope, rid: str, status: int, timer: RequestTimer) -> None:
        state = scope.get("state", {})
        fields = {
            "request_id": rid,
            "method": scope.get("method"),
            "path": scope.get("path"),
            "status": status,
            "key": state.get("key_name") or ANONYMOUS,
            "duration_ms": timer.elapsed_ms(),
        }
        log_event("request", fields, logging.WARNING if status >= 500 else logging.INFO)


class BodyGuardMiddleware:
    """Reads and checks every POST body (see module docstring) before the routes see it."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        try:
            body = await _read_body(receive, self.max_bytes)
            check_json_body(body)
        except BadBody as exc:
            await send_json(
                send, exc.status, error_body(exc.message, "invalid_request_error", exc.param, exc.code)
            )
            return
        headers = [(k, v) for k, v in scope.get("headers", []) if bytes(k).lower() != b"content-type"]
        scope["headers"] = [*headers, (b"content-type", b"application/json")]
        await self.app(scope, _replay(body, receive), send)


def _replay(body: bytes, receive: Receive) -> Receive:
    """The body once, then the real channel (so disconnects are still seen)."""
    sent = [False]

    async def replay() -> Message:
        if not sent[0]:
            sent[0] = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
