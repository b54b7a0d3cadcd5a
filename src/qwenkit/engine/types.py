"""Types shared by every backend: what a generation asks for and what it yields.

The chat layer turns messages into prompt ids; a backend turns prompt ids into a stream of
``TokenEvent``; the chat layer turns those back into reasoning, content and tool calls.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from enum import Enum, Flag, auto
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from qwenkit.chat.tokenizer import Tokenizer
from qwenkit.defaults import MAX_CONTEXT, MIN_CONTEXT
from qwenkit.engine.reasoning_budget import ReasoningBudget
from qwenkit.engine.vllm_settings import VllmSettings
from qwenkit.errors import ContextLengthError, UsageError

if TYPE_CHECKING:
    from qwenkit.media import PreparedImage


class FinishReason(str, Enum):
    STOP = "stop"  # an end-of-generation token or a stop sequence
    LENGTH = "length"  # max_tokens reached, or the context is full
    CANCELLED = "cancelled"


def _check_range(name: str, value: float, low: float, high: float) -> None:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and low <= value <= high):
        raise UsageError(f"{name} must be a finite number in [{low}, {high}], got {value!r}", param=name)


MAX_LOGIT_BIAS = 100.0


def check_logit_bias(bias: Sequence[tuple[int, float]], vocab_size: int | None = None) -> None:
    """Token ids must be ids of the vocabulary; biases finite and in [-100, 100], as OpenAI enforces."""
    for token_id, value in bias:
        if isinstance(token_id, bool) or not isinstance(token_id, int) or token_id < 0:
            raise UsageError(f"logit_bias key {token_id!r} is not a token id", param="logit_bias")
        if vocab_size is not None and token_id >= vocab_size:
            raise UsageError(
                f"logit_bias names token id {token_id}, outside the vocabulary (0..{vocab_size - 1})",
                param="logit_bias",
            )
        _check_range(f"logit_bias[{token_id}]", value, -MAX_LOGIT_BIAS, MAX_LOGIT_BIAS)


def check_prompt(prompt_ids: Sequence[int], vocab_size: int, context_length: int) -> list[int]:
    """A prompt every backend can take: not empty, ids of the vocabulary, room left for an answer."""
    prompt = [int(t) for t in prompt_ids]
    if not prompt:
        raise UsageError("the prompt is empty", param="prompt")
    bad = next((t for t in prompt if not 0 <= t < vocab_size), None)
    if bad is not None:
        raise UsageError(f"prompt token id {bad} is outside the vocabulary", param="prompt")
    if len(prompt) >= context_length:
        raise ContextLengthError(
            f"the prompt has {len(prompt)} tokens; the context holds {context_length} including the answer",
            param="messages",
            hint="shorten the conversation or load the model with a larger --context",
        )
    return prompt


@dataclass(frozen=True)
class SamplingParams:
    """Token-level sampling for one sequence. ``temperature == 0`` means greedy."""

    temperature: float = 0.7
    top_p: float = 1.0
    top_k: int = 0  # 0: off
    min_p: float = 0.0
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    repetition_penalty: float = 1.0
    seed: int | None = None
    max_tokens: int = 512
    stop_token_ids: frozenset[int] = frozenset()  # ends generation; never emitted as output text
    ignore_eos: bool = False
    logprobs: bool = False
    top_logprobs: int = 0
    grammar: str | None = None  # GBNF (llama.cpp) constraining every sampled token
    # Added to a token's logit before sampling (OpenAI's logit_bias: -100 bans, +100 forces).
    logit_bias: tuple[tuple[int, float], ...] = ()
    adapter: str | None = None  # a LoRA adapter loaded by name (BackendOptions.lora); None: the base
    # Qwen's thinking budget, counted as tokens are made (engine/reasoning_budget.py); set by LLM.
    reasoning_budget: ReasoningBudget | None = None

    def __post_init__(self) -> None:
        _check_range("temperature", self.temperature, 0.0, 2.0)
        _check_range("top_p", self.top_p, 0.0, 1.0)
        _check_range("min_p", self.min_p, 0.0, 1.0)
        _check_range("presence_penalty", self.presence_penalty, -2.0, 2.0)
        _check_range("frequency_penalty", self.frequency_penalty, -2.0, 2.0)
        _check_range("repetition_penalty", self.repetition_penalty, 0.01, 10.0)
        if not isinstance(self.top_k, int) or self.top_k < 0:
            raise UsageError(f"top_k must be a non-negative integer, got {self.top_k!r}", param="top_k")
        if not isinstance(self.max_tokens, int) or self.max_tokens < 1:
            raise UsageError(
                f"max_tokens must be a positive integer, got {self.max_tokens!r}", param="max_tokens"
            )
        if not 0 <= self.top_logprobs <= 20:
            raise UsageError("top_logprobs must be in [0, 20]", param="top_logprobs")
        check_logit_bias(self.logit_bias)

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0


@dataclass(frozen=True)
class TokenEvent:
    """One token of one sequence. ``forced`` tokens were injected, not sampled."""

    token_id: int
    logprob: float | None = None
    top_logprobs: tuple[tuple[int, float], ...] = ()
    forced: bool = False


@dataclass
class Timings:
    """Monotonic timestamps (time.perf_counter) of one generation's life."""

    submitted: float = 0.0
    started: float = 0.0  # admitted to a slot
    first_token: float = 0.0
    finished: float = 0.0
    prompt_tokens: int = 0
    cached_prompt_tokens: int = 0  # reused from an earlier sequence's KV
    completion_tokens: int = 0
    finished_step: int | None = None  # the engine step that freed the sequence's slot

    @property
    def time_to_first_token(self) -> float:
        return max(0.0, self.first_token - self.submitted) if self.first_token else 0.0

    @property
    def queue_time(self) -> float:
        return max(0.0, self.started - self.submitted) if self.started else 0.0

    @property
    def decode_tokens_per_second(self) -> float:
        span = self.finished - self.first_token
        return (self.completion_tokens - 1) / span if self.completion_tokens > 1 and span > 0 else 0.0


@runtime_checkable
class GenerationHandle(Protocol):
    """A running generation. Iterate it (sync or async) for TokenEvents until it finishes."""

    timings: Timings

    @property
    def finish_reason(self) -> FinishReason | None: ...

    def cancel(self) -> None:
        """Stop now; the slot and its KV are freed within one engine step."""

    def inject(self, token_ids: Sequence[int]) -> bool:
        """Feed these tokens next, as if sampled (e.g. Qwen's thinking early-stop text); False if the
        generation is over, or its thinking is (see ``QueuedHandle.inject``)."""

    def __iter__(self) -> Iterator[TokenEvent]: ...

    def __aiter__(self) -> AsyncIterator[TokenEvent]: ...


class BackendKind(str, Enum):
    """Which engine runs a model: the one name used by ``--backend``, the API and /v1/models."""

    LLAMACPP = "llamacpp"
    TRANSFORMERS = "transformers"
    VLLM = "vllm"

    @property
    def display(self) -> str:
        return _DISPLAY[self]


_DISPLAY = {
    BackendKind.LLAMACPP: "llama.cpp",
    BackendKind.TRANSFORMERS: "transformers",
    BackendKind.VLLM: "vLLM",
}


class Capability(Flag):
    """What a backend can do beyond plain token generation; the server asks these, never names."""

    NONE = 0
    GRAMMAR = auto()  # SamplingParams.grammar (GBNF) constrains sampling
    LOGPROBS = auto()  # TokenEvent log-probabilities
    PREFIX_CACHE = auto()  # a new sequence reuses another's cached prompt prefix
    ADAPTERS = auto()  # LoRA adapters
    IMAGES = auto()  # image inputs


class LoadedModel(Protocol):
    """What any loaded model tells its users: which engine, what it can do, its tokenizer and context."""

    @property
    def kind(self) -> BackendKind: ...

    @property
    def capabilities(self) -> Capability: ...

    @property
    def tokenizer(self) -> Tokenizer: ...

    @property
    def context_length(self) -> int:
        """Tokens one sequence may hold, prompt and output."""


@runtime_checkable
class Backend(LoadedModel, Protocol):
    """A loaded model that runs many generations at once."""

    def submit(
        self, prompt_ids: Sequence[int], params: SamplingParams, images: Sequence[PreparedImage] = ()
    ) -> GenerationHandle:
        """``images``: one per run of image pads in the prompt, in order (``Capability.IMAGES``)."""
        ...

    def close(self) -> None: ...




@dataclass(frozen=True)
class BackendOptions:
    """How to load a model; each backend takes what applies to it."""

    context: int = 4096
    threads: int | None = None  # None: physical cores
    parallel: int = 4  # sequences decoded together
    max_queue: int = 64  # waiting requests beyond the slots
    device: str = "auto"  # transformers: auto, cpu, cuda
    dtype: str = "auto"
    quantization: str | None = None  # transformers on CUDA: int8, nf4
    adapters: tuple[str, ...] = field(default_factory=tuple)
    # LoRA adapters served side by side, each chosen per request by name: (name, path) pairs.
    lora: tuple[tuple[str, str], ...] = field(default_factory=tuple)
    # llama.cpp: one KV cell pool shared by every sequence (True), or a KV stream per sequence (False);
    # None: the backend's measured default.
    kv_unified: bool | None = None
    # llama.cpp vision models: the mmproj GGUF; None: ``mmproj-NAME`` beside the model, if there is one.
    mmproj: str | None = None
    # vLLM only: parallelism, GPU memory share, quantization, prefix caching. None: vLLM's defaults.
    vllm: VllmSettings | None = None

    def __post_init__(self) -> None:
        if not MIN_CONTEXT <= self.context <= MAX_CONTEXT:
            raise UsageError(f"context must be {MIN_CONTEXT} to {MAX_CONTEXT} tokens", param="context")
        if self.parallel < 1:
            raise UsageError("parallel must be at least 1", param="parallel")
        if self.context * self.parallel >= 1 << 31:  # llama.cpp holds context x parallel in 32 bits
            raise UsageError(
                f"context {self.context} x parallel {self.parallel} is more KV cells than llama.cpp can hold",
                param="context",
            )
        if self.threads is not None and self.threads < 1:
            raise UsageError("threads must be at least 1", param="threads")
