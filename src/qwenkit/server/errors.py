"""Every failure leaves the server as OpenAI's error body: ``{"error": {message, type, param, code}}``.

QwenkitError carries its own status; request validation errors become 400 naming the bad field;
anything else is a real fault: 500 with a generic message, the traceback only in the log.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from qwenkit.errors import OverloadedError, QwenkitError, RateLimitError

log = logging.getLogger("qwenkit.server")

STATUS_TYPES = {
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
}


class GenerationTimeoutError(QwenkitError):
    """The request ran past the server's per-request timeout; its generation was cancelled."""

    http_status = 504
    error_type = "timeout_error"
    code = "timeout"


class DrainingError(OverloadedError):
    """The server is shutting down and takes no new requests."""

    code = "shutting_down"


def error_body(message: str, type_: str, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def error_response(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(status_code=status, content=body, headers=headers)


def qwenkit_error_response(exc: QwenkitError) -> JSONResponse:
    headers = None
    retry = getattr(exc, "retry_after", None)
    if isinstance(exc, (RateLimitError, OverloadedError)) or retry is not None:
        headers = {"Retry-After": str(max(1, round(float(retry or 1))))}
    return error_response(exc.http_status, exc.to_openai(), headers)


_UNION_MEMBER = re.compile(r".*\[|function-|constrained-|[A-Z][A-Za-z0-9]*$")


def _param(loc: Sequence[Any]) -> str | None:
    """``("body", "messages", 0, "role")`` -> ``messages[0].role``."""
    parts = [p for p in loc if p != "body"]
    # pydantic names union members (types, constrained types, models) and function validators in loc;
    # they are not fields, and the API's fields are snake_case
    parts = [p for p in parts if not (isinstance(p, str) and _UNION_MEMBER.match(p))]
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or None


def validation_message(errors: Sequence[Any]) -> tuple[str, str | None]:
    if not errors:
        return "invalid request", None
    first = errors[0]
    param = _param(first.get("loc", ()))
    msg = str(first.get("msg", "invalid value"))
    if first.get("type") == "json_invalid":
        return "the request body is not valid JSON", None
    if first.get("type") == "missing":
        return f"'{param}' is a required property", param
    return (f"{param}: {msg}" if param else msg), param


async def _on_qwenkit(request: Request, exc: QwenkitError) -> JSONResponse:
    return qwenkit_error_response(exc)


async def _on_validation(request: Request, exc: RequestValidationError) -> JSONResponse:
    message, param = validation_message(exc.errors())
    return error_response(400, error_body(message, "invalid_request_error", param))


async def _on_http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    kind = STATUS_TYPES.get(
        exc.status_code, "invalid_request_error" if exc.status_code < 500 else "server_error"
    )
    headers = dict(exc.headers) if exc.headers else None
    return error_response(exc.status_code, error_body(str(exc.detail), kind), headers)


async def _on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.error(
        "unhandled error", exc_info=exc, extra={"request_id": getattr(request.state, "request_id", None)}
    )
    return error_response(500, error_body("internal server error", "server_error", None, "internal_error"))


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(QwenkitError, _on_qwenkit)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _on_validation)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _on_http)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _on_unexpected)
