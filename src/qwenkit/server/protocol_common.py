"""Pydantic models shared by the endpoints: errors, usage, models list, tokenize/detokenize.

Requests ignore unknown fields (as OpenAI does); every response model is declared on its route so the
OpenAPI document describes what the server really sends.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, model_validator

MAX_N = 8
MAX_TOKEN_IDS = 1_000_000


def _integral(value: Any) -> Any:
    """JSON has one number type: ``2.0`` is the integer 2, as JSON Schema's "integer" says."""
    if type(value) is float and value.is_integer():
        return int(value)
    if isinstance(value, list):
        return [_integral(v) for v in value]
    return value


def _holds_int(annotation: Any) -> bool:
    """``int``, ``int | None``, ``list[int]``, ``Annotated[int, ...]``: fields whose JSON numbers are ints."""
    if annotation is int:
        return True
    return any(_holds_int(arg) for arg in get_args(annotation))


_FIELD_NOTES = ("title", "description", "default")  # about the field, not its values


def _null_allowed(schema: dict[str, Any]) -> None:
    """``json_schema_extra`` of a field that also takes null (see ``null_is_default``)."""
    kept: dict[str, Any] = {key: schema.pop(key) for key in _FIELD_NOTES if key in schema}
    inner = dict(schema)
    schema.clear()
    schema.update(kept, anyOf=[inner, {"type": "null"}])


def null_is_default(default: Any, **constraints: Any) -> Any:
    """A field for which null means its default. OpenAI's API types ``n``, ``stream``, ``logprobs``
    and ``echo`` as nullable, and its clients send null for a parameter given as None."""
    return Field(default=default, json_schema_extra=_null_allowed, **constraints)


class Request(BaseModel):
    """Base of every request body: unknown fields are ignored, as OpenAI's API ignores them."""

    model_config = ConfigDict(extra="ignore")


class StrictRequest(Request):
    """Strict types: ``"0.5"`` is not a number and ``1`` is not a boolean, as in OpenAI's API; but
    ``2.0`` is the integer 2 (JSON has one number type), so integer fields take integral floats."""

    model_config = ConfigDict(extra="ignore", strict=True)

    @model_validator(mode="before")
    @classmethod
    def _integral_floats(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        names = [n for n, f in cls.model_fields.items() if _holds_int(f.annotation) and n in data]
        return {**data, **{n: _integral(data[n]) for n in names}} if names else data

    @model_validator(mode="before")
    @classmethod
    def _nulls_as_defaults(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        nullable = (n for n, f in cls.model_fields.items() if f.json_schema_extra is _null_allowed)
        nulls = {n for n in nullable if n in data and data[n] is None}
        return {k: v for k, v in data.items() if k not in nulls} if nulls else data


class Response(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorDetail(Response):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(Response):
    error: ErrorDetail


class PromptTokensDetails(Response):
    cached_tokens: int = 0


class CompletionTokensDetails(Response):
    reasoning_tokens: int = 0


class UsageInfo(Response):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    prompt_tokens_details: PromptTokensDetails | None = None
    completion_tokens_details: CompletionTokensDetails | None = None


class StreamOptions(StrictRequest):
    include_usage: bool = False


class SamplingPreset(Response):
    temperature: float
    top_p: float
    top_k: int
    min_p: float
    presence_penalty: float
    repetition_penalty: float


class ModelCard(Response):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "qwenkit"
    family: str | None = None
    quant: str | None = None
    context_length: int
    backend: str
    display_name: str | None = None
    params_total: int | None = None
    thinking: Literal["none", "hybrid", "thinking-only"] | None = None
    sampling: dict[str, SamplingPreset] | None = None  # mode ("default", "thinking", ...) -> Qwen's values
    parent: str | None = None  # a LoRA adapter: the base model it runs on


class ModelList(Response):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class TokenizeResponse(Response):
    count: int
    max_model_len: int
    tokens: list[int]
    token_strs: list[str] | None = None
    image_tokens: list[int] | None = None  # qwenkit: each image's pads among ``tokens``, in order


class DetokenizeRequest(StrictRequest):
    model: str | None = None
    tokens: list[Annotated[int, Field(ge=0)]] = Field(max_length=MAX_TOKEN_IDS)


class DetokenizeResponse(Response):
    prompt: str


class HealthResponse(Response):
    status: str


class TopLogprob(Response):
    token: str
    logprob: float
    bytes: list[int] | None = None


class TokenLogprobInfo(Response):
    token: str
    logprob: float
    bytes: list[int] | None = None
    top_logprobs: list[TopLogprob] = Field(default_factory=list)


class ChoiceLogprobs(Response):
    content: list[TokenLogprobInfo] | None = None
