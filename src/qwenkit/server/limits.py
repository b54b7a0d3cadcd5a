"""Per-key rate limits: requests per minute, tokens per minute, concurrent requests.

Use (inside the code that actually runs the generation, e.g. the streaming generator, so the lease
lives exactly as long as the work)::

    limiter = RateLimiter(KeyLimits(requests_per_minute=60, tokens_per_minute=100_000,
                                    max_concurrent=4), on_limited=metrics.rate_limited)
    async with limiter.admit(key_name, prompt_tokens, max_tokens) as lease:   # 429 raised here
        ...generate...
        lease.settle(completion_tokens)   # refunds max_tokens - completion_tokens

``admit`` checks and records all three limits atomically (no ``await`` in between, so it is safe
under asyncio; a lock also makes it thread-safe). Over any limit -> ``RateLimitError`` (429) with
``retry_after`` seconds and ``on_limited(key_name)`` is called; nothing is recorded for a rejected
request. ``limiter.acquire(...)`` returns the same ``Lease`` without the ``async with``, for code
that must hand the lease on (call ``lease.release()`` in a ``finally``); ``release`` is idempotent
and the context exit ALWAYS releases (exception, cancellation, timeout), so the concurrency count
cannot leak.

Windows are sliding logs: a request or token charge admitted at time ``t`` counts until
``t + window`` inclusive, so NO closed interval of ``window`` seconds ever holds more than the limit.
Tokens: ``prompt_tokens + max_tokens`` is reserved at admission; ``settle(completion_tokens)``
lowers that charge to ``prompt_tokens + completion_tokens`` (a lease never settled keeps its full
reservation: the conservative choice after a disconnect). A request whose reservation alone
exceeds the token limit can never pass and gets a 429 saying so. ``clock`` is injectable
(monotonic seconds) so tests need no sleeping.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import TracebackType

from qwenkit.errors import RateLimitError, UsageError

Clock = Callable[[], float]
WINDOW_SECONDS = 60.0
CONCURRENCY_RETRY_AFTER = 1.0
# A hair past the edge of the window, so that a retry at now + retry_after is admitted.
_EDGE = 1e-6


@dataclass(frozen=True)
class KeyLimits:
    """Limits for one key; None means unlimited."""

    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    max_concurrent: int | None = None
    window: float = WINDOW_SECONDS

    def __post_init__(self) -> None:
        for name in ("requests_per_minute", "tokens_per_minute", "max_concurrent"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise UsageError(f"{name} must be at least 1 (or unset for no limit)", param=name)
        if self.window <= 0:
            raise UsageError("the rate-limit window must be positive", param="window")

    @property
    def unlimited(self) -> bool:
        return (self.requests_per_minute, self.tokens_per_minute, self.max_concurrent) == (None, None, None)


@dataclass
class _Charge:
    at: float
    tokens: int


@dataclass
class _KeyState:
    requests: deque[float] = field(default_factory=deque)
    charges: deque[_Charge] = field(default_factory=deque)
    concurrent: int = 0

    def expire(self, now: float, window: float) -> None:
        # Written as `at + window < now` (not `at < now - window`): the same rounding as the
        # definition "counts until at + window inclusive", so float edges cannot let one extra in.
        while self.requests and self.requests[0] + window < now:
            self.requests.popleft()
        while self.charges and self.charges[0].at + window < now:
            self.charges.popleft()

    @property
    def idle(self) -> bool:
        return not self.requests and not self.charges and self.concurrent == 0


@dataclass(frozen=True)
class KeyUsage:
    """What one key holds right now (for tests, /metrics or debugging)."""

    requests_in_window: int
    tokens_in_window: int
    concurrent: int


class Lease:
    """One admitted request; an async context manager whose exit always releases."""

    def __init__(self, limiter: RateLimiter, key: str, prompt_tokens: int, max_tokens: int,
                 charge: _Charge | None) -> None:
        self.key = key
        self.prompt_tokens = prompt_tokens
        self.max_tokens = max_tokens
        self._limiter = limiter
        self._charge = charge
        self.released = False
        self.settled_tokens: int | None = None

    @property
    def reserved_tokens(self) -> int:
        return self.prompt_tokens + self.max_tokens

    def settle(self, completion_tokens: int) -> None:
        """Charge ``prompt + completion_tokens`` instead of the reservation (refund the rest)."""
        if completion_tokens < 0:
            raise ValueError("completion_tokens cannot be negative")
        self.settled_tokens = self.prompt_tokens + completion_tokens
        self._limiter._settle(self, self.settled_tokens)

    def release(self) -> None:
        """Give back the concurrency slot; safe to call any number of times."""
        if not self.released:
            self.released = True
            self._limiter._release(self)

    async def __aenter__(self) -> Lease:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        self.release()


class _Admission:
    """What ``admit`` returns: checks limits on enter, so the 429 surfaces inside ``async with``."""

    def __init__(self, limiter: RateLimiter, key: str, prompt_tokens: int, max_tokens: int) -> None:
        self._args = (limiter, key, prompt_tokens, max_tokens)
        self._lease: Lease | None = None

    async def __aenter__(self) -> Lease:
        limiter, key, prompt_tokens, max_tokens = self._args
        self._lease = limiter.acquire(key, prompt_tokens, max_tokens)
        return self._lease

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        if self._lease is not None:
            self._lease.release()


class RateLimiter:
    """Per-key sliding-window limits; ``limits`` is the default, ``overrides`` per key name."""

    def __init__(self, limits: KeyLimits | None = None, *, overrides: Mapping[str, KeyLimits] | None = None,
                 clock: Clock = time.monotonic, on_limited: Callable[[str], object] | None = None) -> None:
        self.default = limits or KeyLimits()
        self._overrides = dict(overrides or {})
        self._clock = clock
        self._on_limited = on_limited
        self._keys: dict[str, _KeyState] = {}
        self._lock = threading.Lock()

    def limits_for(self, key: str) -> KeyLimits:
        return self._overrides.get(key, self.default)

    def admit(self, key: str, prompt_tokens: int, max_tokens: int) -> _Admission:
        """``async with limiter.admit(...) as lease``: raises RateLimitError on enter when over a limit."""
        return _Admission(self, key, prompt_tokens, max_tokens)

    def acquire(self, key: str, prompt_tokens: int, max_tokens: int) -> Lease:
        """Check and record a request now; the caller must ``release()`` the lease."""
        if prompt_tokens < 0 or max_tokens < 0:
            raise ValueError("token counts cannot be negative")
        limits = self.limits_for(key)
        with self._lock:
            state = self._keys.setdefault(key, _KeyState())
            now = self._clock()
            state.expire(now, limits.window)
            refusal = self._refusal(state, limits, now, prompt_tokens + max_tokens)
            if refusal is None:
                return self._record(state, limits, key, now, prompt_tokens, max_tokens)
            if state.idle:
                del self._keys[key]
        if self._on_limited is not None:
            self._on_limited(key)
        raise refusal

    def usage(self, key: str) -> KeyUsage:
        with self._lock:
            state = self._keys.get(key)
            if state is None:
                return KeyUsage(0, 0, 0)
            state.expire(self._clock(), self.limits_for(key).window)
            return KeyUsage(len(state.requests), sum(c.tokens for c in state.charges), state.concurrent)

    @property
    def concurrent_total(self) -> int:
        with self._lock:
            return sum(s.concurrent for s in self._keys.values())

    # -- internals -----------------------------------------------------------------------------

    @staticmethod
    def _refusal(state: _KeyState, limits: KeyLimits, now: float, reserve: int) -> RateLimitError | None:
        if limits.max_concurrent is not None and state.concurrent >= limits.max_concurrent:
            return RateLimitError(
                f"too many concurrent requests for this API key (limit {limits.max_concurrent})",
                retry_after=CONCURRENCY_RETRY_AFTER,
            )
        rpm = limits.requests_per_minute
        if rpm is not None and len(state.requests) >= rpm:
            # The oldest of the last `rpm` admissions must leave the window first.
            wait = state.requests[len(state.requests) - rpm] + limits.window - now + _EDGE
            return RateLimitError(
                f"rate limit reached: {rpm} requests per {limits.window:g} s for this API key",
                retry_after=max(wait, _EDGE),
            )
        tpm = limits.tokens_per_minute
        if tpm is not None:
            return _token_refusal(state, limits, tpm, now, reserve)
        return None

    def _record(self, state: _KeyState, limits: KeyLimits, key: str, now: float,
                prompt_tokens: int, max_tokens: int) -> Lease:
        if limits.requests_per_minute is not None:
            state.requests.append(now)
        charge = None
        if limits.tokens_per_minute is not None:
            charge = _Charge(now, prompt_tokens + max_tokens)
            state.charges.append(charge)
        state.concurrent += 1
        return Lease(self, key, prompt_tokens, max_tokens, charge)

    def _settle(self, lease: Lease, tokens: int) -> None:
        with self._lock:
            if lease._charge is not None:
                lease._charge.tokens = tokens

    def _release(self, lease: Lease) -> None:
        with self._lock:
            state = self._keys.get(lease.key)
            if state is None:
                return
            state.concurrent -= 1
            if state.idle:
                del self._keys[lease.key]


def _token_refusal(state: _KeyState, limits: KeyLimits, tpm: int, now: float,
                   reserve: int) -> RateLimitError | None:
    if reserve > tpm:
        return RateLimitError(
            f"request too large: it reserves {reserve} tokens (prompt + max_tokens) but this API key "
            f"may use {tpm} tokens per {limits.window:g} s; lower max_tokens or shorten the prompt",
            retry_after=limits.window,
        )
    used = sum(c.tokens for c in state.charges)
    if used + reserve <= tpm:
        return None
    freed, wait = 0, limits.window
    for charge in state.charges:
        freed += charge.tokens
        if used - freed + reserve <= tpm:
            wait = charge.at + limits.window - now + _EDGE
            break
    return RateLimitError(
        f"rate limit reached: {tpm} tokens per {limits.window:g} s for this API key "
        f"({used} in use, this request reserves {reserve})",
        retry_after=max(wait, _EDGE),
    )
