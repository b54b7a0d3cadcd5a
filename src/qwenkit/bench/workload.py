"""What a benchmark runs: concurrency levels x prompt lengths, and prompts of an exact token count.

Prompts are random vocabulary words, each ``" word"`` one token on its own; Qwen's (and GPT-style)
pre-tokenizer splits text before every space-led word, so the count of a prompt is additive and a
few corrections reach the exact target. Every request gets its own words, so that no request can
reuse another's prompt from a prefix cache (the chat template's own prefix is shared, as in real use).

Counting: in-process, our tokenizer and chat template (exact). For a URL, the server's ``/tokenize``
when it has one (exact); otherwise one probe request's ``usage.prompt_tokens`` gives the template's
overhead and each word is assumed to be one token (an approximation: common English words are single
tokens in every Qwen/Llama vocabulary). The counts reported always come from the server's usage.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from qwenkit.chat.tokenizer import Tokenizer
from qwenkit.errors import UsageError

Messages = list[dict[str, Any]]
CountFn = Callable[[Messages], Awaitable[int]]

MAX_FIT_ROUNDS = 8

# Common English words, each a single token (with its leading space) in Qwen's vocabulary: the
# word pool for a server whose tokenizer we do not have.
_WORDS = """
time year people way day man thing woman life child world school state family student group
country problem hand part place case week company system program question work government
number night point home water room mother area money story fact month lot right study book eye
job word business issue side kind head house service friend father power hour game line end
member law car city community name president team minute idea body information back parent
face others level office door health person art war history party result change morning reason
research girl guy moment air teacher force education foot boy age policy music market sense
nation plan college interest death experience effect class control care field development role
effort rate heart drug show leader light voice wife police mind price report decision son view
relationship town road arm difference value building action model season society tax director
position player record paper space ground form event official matter center couple site
project activity star table need court oil situation cost industry figure street image phone
data picture practice piece land product doctor wall patient worker news test movie north love
support technology step baby computer type attention film tree source organization hair window
evidence population river cloud stone green blue small large early young important public bad
same able
"""
COMMON_WORDS: tuple[str, ...] = tuple(f" {w}" for w in _WORDS.split())


def parse_int_list(text: str, name: str, *, minimum: int = 1) -> tuple[int, ...]:
    """``"1,2,4"`` -> (1, 2, 4): positive, distinct, in the order given."""
    values: list[int] = []
    for part in text.split(","):
        item = part.strip()
        if not item:
            continue
        try:
            value = int(item)
        except ValueError:
            raise UsageError(f"{name} must be comma-separated integers, got {text!r}", param=name) from None
        if value < minimum:
            raise UsageError(f"{name} values must be at least {minimum}, got {value}", param=name)
        if value not in values:
            values.append(value)
    if not values:
        raise UsageError(f"{name} needs at least one value", param=name)
    return tuple(values)


@dataclass(frozen=True)
class Level:
    """One measured point: ``requests`` requests of ``prompt_tokens``, ``concurrency`` at a time."""

    concurrency: int
    prompt_tokens: int
    requests: int


@dataclass(frozen=True)
class Workload:
    """The whole run. ``requests`` per level defaults to the level's concurrency (one wave)."""

    concurrency: tuple[int, ...] = (1,)
    prompt_tokens: tuple[int, ...] = (128,)
    output_tokens: int = 64
    requests: int | None = None
    warmup: int = 1
    temperature: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.output_tokens < 1:
            raise UsageError("--output-tokens must be at least 1", param="output_tokens")
        if self.requests is not None and self.requests < 1:
            raise UsageError("--requests must be at least 1", param="requests")
        if self.warmup < 0:
            raise UsageError("--warmup must not be negative", param="warmup")
        if not 0.0 <= self.temperature <= 2.0:
            raise UsageError("--temperature must be in [0, 2]", param="temperature")
        if not self.concurrency or not self.prompt_tokens:
            raise UsageError("a workload needs at least one concurrency and one prompt length")

    def levels(self) -> list[Level]:
        """Prompt length outer, concurrency inner: the plot's x axis is concurrency."""
        return [
            Level(c, p, self.requests if self.requests is not None else c)
            for p in self.prompt_tokens
            for c in self.concurrency
        ]

    @property
    def max_concurrency(self) -> int:
        return max(self.concurrency)

    @property
    def max_sequence(self) -> int:
        """Most tokens one sequence holds: the longest prompt plus its whole answer."""
        return max(self.prompt_tokens) + self.output_tokens


def vocabulary_words(tokenizer: Tokenizer, limit: int = 4096) -> tuple[str, ...]:
    """Single-token words of this tokenizer: a leading space and 3-10 lowercase ASCII letters."""
    words: list[str] = []
    for token_id in range(tokenizer.vocab_size):
        raw = tokenizer.token_bytes(token_id)
        if 4 <= len(raw) <= 11 and raw[:1] == b" " and raw[1:].isalpha() and raw[1:].islower():
            words.append(raw.decode("ascii"))
            if len(words) >= limit:
                break
    if len(words) < 16:
        return COMMON_WORDS
    return tuple(words)


def user_messages(words: Sequence[str]) -> Messages:
    return [{"role": "user", "content": "".join(words)}]


@dataclass(frozen=True)
class Prompt:
    """Messages for one request; ``tokens`` as counted, ``exact`` when it equals the target."""

    messages: Messages
    tokens: int
    exact: bool


class PromptFactory:
    """Builds prompts of a target length from random words, counted by ``count`` when given.

    Without a counter the template overhead must be given (``overhead``), and each word is
    taken as one token.
    """

    def __init__(
        self, words: Sequence[str], count: CountFn | None, *, seed: int = 0, overhead: int = 0
    ) -> None:
        if not words:
            raise UsageError("the prompt word pool is empty")
        self._words = tuple(words)
        self._count = count
        self._rng = random.Random(seed)
        self._overhead: int | None = None if count is not None else overhead

    async def overhead(self) -> int:
        """Tokens the chat template adds around the user's text."""
        if self._overhead is None and self._count is not None:
            self._overhead = await self._count(user_messages(self._words[:1])) - 1
        return self._overhead or 0

    def _draw(self, n: int) -> list[str]:
        return [self._rng.choice(self._words) for _ in range(n)]

    async def make(self, target: int) -> Prompt:
        overhead = await self.overhead()
        if target <= overhead:
            raise UsageError(
                f"--prompt-tokens {target} is not more than the chat template's own {overhead} tokens",
                param="prompt_tokens",
            )
        pool = self._draw(target - overhead)
        if self._count is None:
            return Prompt(user_messages(pool), target, exact=False)
        return await self._fit(pool, target, self._count)

    async def _fit(self, pool: list[str], target: int, count: CountFn) -> Prompt:
        """Add or drop words until the count is exact; the closest try when it never is."""
        k = len(pool)
        messages = user_messages(pool)
        counted = await count(messages)
        best = Prompt(messages, counted, exact=counted == target)
        for _ in range(MAX_FIT_ROUNDS):
            if best.exact:
                break
            k = max(1, k + target - counted)
            if k > len(pool):
                pool.extend(self._draw(k - len(pool)))
            messages = user_messages(pool[:k])
            counted = await count(messages)
            if abs(counted - target) < abs(best.tokens - target):
                best = Prompt(messages, counted, exact=counted == target)
        return best
