"""Stop strings: cut the output at the first stop string and never emit any part of it.

Text that could still turn into a stop string is held back until the next delta decides.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from qwenkit.errors import UsageError

MAX_STOP_STRINGS = 16
MAX_STOP_LENGTH = 256


def validate_stops(stops: Sequence[str]) -> tuple[str, ...]:
    if len(stops) > MAX_STOP_STRINGS:
        raise UsageError(f"at most {MAX_STOP_STRINGS} stop strings are allowed", param="stop")
    for stop in stops:
        if not isinstance(stop, str) or not stop:
            raise UsageError("stop strings must be non-empty strings", param="stop")
        if len(stop) > MAX_STOP_LENGTH:
            raise UsageError(f"a stop string may have at most {MAX_STOP_LENGTH} characters", param="stop")
    return tuple(stops)


@dataclass
class StopMatch:
    text: str  # what may be emitted now
    stopped: bool  # a stop string was found; nothing after it will be emitted


class StopMatcher:
    """Feed text deltas; get back the text that is safe to emit."""

    def __init__(self, stops: Sequence[str]) -> None:
        self._stops = validate_stops(stops)
        self._held = ""
        self._stopped = False

    def _partial_suffix(self, text: str) -> int:
        """Length of the longest suffix of ``text`` that is a proper prefix of some stop string."""
        best = 0
        for stop in self._stops:
            for size in range(min(len(stop) - 1, len(text)), best, -1):
                if text.endswith(stop[:size]):
                    best = size
                    break
        return best

    def feed(self, delta: str) -> StopMatch:
        if self._stopped:
            return StopMatch("", True)
        if not self._stops:
            return StopMatch(delta, False)
        text = self._held + delta
        cut = min((i for i in (text.find(s) for s in self._stops) if i >= 0), default=-1)
        if cut >= 0:
            self._held = ""
            self._stopped = True
            return StopMatch(text[:cut], True)
        keep = self._partial_suffix(text)
        self._held = text[len(text) - keep :] if keep else ""
        return StopMatch(text[: len(text) - keep], False)

    def flush(self) -> str:
        """At the end of generation the held text was no stop string after all."""
        held, self._held = self._held, ""
        return "" if self._stopped else held
