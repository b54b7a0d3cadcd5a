"""One exception hierarchy for every user-facing failure.

Each class carries its CLI exit code and its HTTP status / OpenAI error type, so that the
mapping lives here and nowhere else: the CLI and the server only ask the exception.
"""

from __future__ import annotations

from typing import Any, ClassVar

EXIT_FAILED = 1
EXIT_USAGE = 2


class QwenkitError(Exception):
    """Base of every error qwenkit raises on purpose; never shown as a traceback."""

    exit_code: ClassVar[int] = EXIT_FAILED
    http_status: ClassVar[int] = 500
    error_type: ClassVar[str] = "server_error"
    code: ClassVar[str | None] = None

    def __init__(self, message: str, *, param: str | None = None, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n{self.hint}"

    def to_openai(self) -> dict[str, Any]:
        """The body OpenAI clients expect: {"error": {message, type, param, code}}."""
        return {
            "error": {
                "message": self.message,
                "type": self.error_type,
                "param": self.param,
                "code": self.code,
            }
        }


class UsageError(QwenkitError):
    """The caller asked for something malformed or impossible."""

    exit_code = EXIT_USAGE
    http_status = 400
    error_type = "invalid_request_error"


class ContextLengthError(UsageError):
    code = "context_length_exceeded"


class TemplateError(UsageError):
    """A chat template failed to render, or tried to leave its sandbox."""

    code = "template_error"


class ImageError(UsageError):
    """An image in a request is not one qwenkit will read (format, size, corrupt data)."""

    code = "invalid_image"


class ImageFetchRefusedError(UsageError):
    """An image URL was not fetched: fetching is off, or the URL, its address or its answer broke a rule."""

    code = "image_fetch_refused"


class ModelNotFoundError(QwenkitError):
    """A model reference names nothing known locally, in the catalog or on a reachable source."""

    http_status = 404
    error_type = "invalid_request_error"
    code = "model_not_found"


class FetchError(QwenkitError):
    """No source for a model could be reached, or what came back failed verification."""

    http_status = 503
    code = "fetch_failed"


class ModelFormatError(QwenkitError):
    """A model file is truncated, corrupt or not what its name says."""

    code = "model_format_error"


class ConversionError(QwenkitError):
    """Converting, quantizing or scoring a model file failed (the tool's reason is in the message)."""

    code = "conversion_failed"


class MissingDependencyError(QwenkitError):
    """An optional extra (llama, hf, serve) is needed for this path but not installed."""

    code = "missing_dependency"

    @classmethod
    def for_extra(cls, module: str, extra: str) -> MissingDependencyError:
        return cls(
            f"this needs the Python package '{module}', which is not installed",
            hint=f"install it with: pip install 'qwenkit[{extra}]'",
        )


class AuthenticationError(QwenkitError):
    http_status = 401
    error_type = "authentication_error"
    code = "invalid_api_key"


class RateLimitError(QwenkitError):
    http_status = 429
    error_type = "rate_limit_error"
    code = "rate_limit_exceeded"

    def __init__(self, message: str, *, retry_after: float, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.retry_after = retry_after


class OverloadedError(QwenkitError):
    http_status = 503
    error_type = "server_error"
    code = "overloaded"

    def __init__(self, message: str, *, retry_after: float = 1.0, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.retry_after = retry_after


class CancelledError(QwenkitError):
    """A generation was cancelled by its caller (disconnect, stop button, timeout)."""

    http_status = 499
    code = "cancelled"
