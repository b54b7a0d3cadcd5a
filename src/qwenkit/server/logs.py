"""Structured JSON log lines: one object per line, with request id, key name, token counts, timings.

Prompt and output text never reach the log raw unless the operator asked (``--log-prompts``): by
default a text is logged as its length and the first 16 hex digits of its sha256.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
import time
from collections.abc import Mapping
from typing import Any

LOGGER_NAME = "qwenkit.server"
ACCESS_LOGGER = "qwenkit.server.access"
DIGEST_HEX = 16
# LogRecord attributes that are not caller-supplied ``extra`` fields.
# uvicorn adds "color_message" (the message with ANSI colours) to its records: not for JSON lines.
_RECORD_FIELDS = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "color_message"}


class JSONFormatter(logging.Formatter):
    """``{"ts", "level", "logger", "msg", ...extra}`` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _RECORD_FIELDS and not key.startswith("_"):
                data[key] = value
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return json.dumps(data, ensure_ascii=False, default=str)


def configure_logging(level: str = "info") -> logging.Handler:
    """Route qwenkit's and uvicorn's loggers to stderr as JSON lines; returns the handler."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JSONFormatter())
    for name in SERVER_LOGGERS:
        logger = logging.getLogger(name)
        logger.handlers = [handler]
        logger.setLevel(level.upper())
        logger.propagate = False
    logging.getLogger("uvicorn.access").disabled = True  # our access line carries more
    return handler


SERVER_LOGGERS = (LOGGER_NAME, "uvicorn", "uvicorn.error")


def redact_secrets(log_filter: logging.Filter) -> None:
    """Put ``log_filter`` (the keyring's ``RedactingFilter``) on every handler of the server's loggers,
    replacing an earlier one of the same class, so no API key reaches a log line."""
    for name in SERVER_LOGGERS:
        for handler in logging.getLogger(name).handlers:
            for old in [f for f in handler.filters if type(f) is type(log_filter)]:
                handler.removeFilter(old)
            handler.addFilter(log_filter)


def text_field(text: str, log_prompts: bool) -> dict[str, Any]:
    """How a prompt or output appears in the log: raw only when allowed, else a digest."""
    if log_prompts:
        return {"text": text, "chars": len(text)}
    digest = hashlib.sha256(text.encode("utf-8", errors="surrogatepass")).hexdigest()[:DIGEST_HEX]
    return {"sha256": digest, "chars": len(text)}


def messages_text(messages: Any) -> str:
    """A stable text for a request's messages (what the prompt digest is taken of)."""
    return json.dumps(messages, ensure_ascii=False, sort_keys=True, default=str)


def log_event(message: str, fields: Mapping[str, Any], level: int = logging.INFO) -> None:
    logging.getLogger(ACCESS_LOGGER).log(level, message, extra=dict(fields))


class RequestTimer:
    """Wall time of one request, in milliseconds."""

    def __init__(self) -> None:
        self.started = time.perf_counter()

    def elapsed_ms(self) -> float:
        return round((time.perf_counter() - self.started) * 1000.0, 1)
