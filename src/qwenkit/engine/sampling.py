"""The sampling knobs a request may set, declared once, from the HTTP request to the backend.

``SamplingOptions`` carries the ranges: the server's request models inherit it (so the OpenAPI
document states them), ``ChatParams`` carries one, and ``resolve_sampling`` (``params.py``) fills
what is unset from the model's preset into the backend's ``SamplingParams``. ``None`` always means
"the model's recommended value".
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, WithJsonSchema

from qwenkit.errors import UsageError

# Any 64-bit seed, signed or not (each backend reduces it to the width it takes).
SEED_MIN, SEED_MAX = -(2**63), 2**64 - 1
TOKEN_ID_PATTERN = r"^[0-9]{1,10}$"  # any token id; the server states its model's exact range
MAX_LOGIT_BIAS_ENTRIES = 1024
TokenIdKey = Annotated[str, Field(pattern=TOKEN_ID_PATTERN)]
Bias = Annotated[float, Field(ge=-100.0, le=100.0)]
LogitBias = Annotated[
    dict[TokenIdKey, Bias],
    Field(max_length=MAX_LOGIT_BIAS_ENTRIES),
    WithJsonSchema(
        {
            "type": "object",
            "propertyNames": {"pattern": TOKEN_ID_PATTERN},
            "additionalProperties": {"type": "number", "minimum": -100, "maximum": 100},
            "maxProperties": MAX_LOGIT_BIAS_ENTRIES,
        }
    ),
]


class SamplingOptions(BaseModel):
    """How to choose tokens; every field unset (None) takes the model's recommended value."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    temperature: float | None = Field(default=None, allow_inf_nan=False, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, allow_inf_nan=False, ge=0.0, le=1.0)
    top_k: int | None = Field(default=None, ge=-1, le=1_000_000, description="-1 or 0: off")
    min_p: float | None = Field(default=None, allow_inf_nan=False, ge=0.0, le=1.0)
    presence_penalty: float | None = Field(default=None, allow_inf_nan=False, ge=-2.0, le=2.0)
    frequency_penalty: float | None = Field(default=None, allow_inf_nan=False, ge=-2.0, le=2.0)
    repetition_penalty: float | None = Field(default=None, allow_inf_nan=False, ge=0.01, le=10.0)
    seed: int | None = Field(default=None, ge=SEED_MIN, le=SEED_MAX)
    logit_bias: LogitBias | None = Field(
        default=None,
        description="Token id (a key of the model's vocabulary) -> bias added to its logit, in [-100, 100].",
    )

    @classmethod
    def create(cls, **values: Any) -> SamplingOptions:
        """From Python keyword arguments: a bad value is a UsageError naming it; token ids may be ints."""
        bias = values.get("logit_bias")
        if isinstance(bias, dict):
            values["logit_bias"] = {str(k): v for k, v in bias.items()}
        try:
            return cls(**values)
        except ValidationError as exc:
            error = exc.errors()[0]
            where = ".".join(str(part) for part in error["loc"])
            raise UsageError(f"{where}: {error['msg']}", param=where) from None

    @classmethod
    def of(cls, request: BaseModel) -> SamplingOptions:
        """The sampling options of a request model that inherits this one (the HTTP requests)."""
        return cls.model_validate(request, from_attributes=True)

    def bias_pairs(self) -> tuple[tuple[int, float], ...]:
        """``logit_bias`` as sorted (token id, bias) pairs, as the backends take it."""
        return tuple(sorted((int(k), float(v)) for k, v in (self.logit_bias or {}).items()))

    @property
    def top_k_or_off(self) -> int | None:
        """top_k with vLLM's -1 for "off" spelled as llama.cpp's and ours: 0."""
        return 0 if self.top_k == -1 else self.top_k
