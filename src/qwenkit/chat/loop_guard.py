"""Notices a thinking section that has started going round in circles.

Small reasoning models sometimes repeat the same sentence or paragraph until the token budget runs
out. The engine feeds reasoning deltas here and, on a report, closes thinking early instead of
burning the rest of the budget. Text is cut into blocks at line and sentence ends; each block is
normalised once and compared by value against a short, fixed-size history, so the cost is linear in
the text however it is chunked.
"""

from __future__ import annotations

import math
import re
from collections import Counter, deque
from dataclasses import dataclass

from qwenkit.errors import UsageError

_BOUNDARY = re.compile(r"[\n.!?。！？]")


def _primitive(unit: list[str]) -> bool:
    """False when ``unit`` is itself a shorter unit repeated: short blocks must not add up to a long one."""
    size = len(unit)
    return not any(
        size % d == 0 and all(unit[k] == unit[k % d] for k in range(size)) for d in range(1, size)
    )


@dataclass(frozen=True)
class LoopReport:
    """The block that keeps coming back, how often, and how it was caught.

    ``kind`` is ``"consecutive"`` (the same unit of one or more blocks ``repeats`` times in a row)
    or ``"window"`` (one block dominating the recent window while other text is interleaved).
    ``at_char`` is how many reasoning characters had been fed when the loop was noticed.
    """

    block: str
    repeats: int
    kind: str
    at_char: int


class ThinkingLoopDetector:
    """Feed reasoning text with ``feed``; the first report sticks and is returned from then on.

    Units shorter than ``min_block_chars`` never count, so bullets, "Wait." and short formula lines
    can repeat freely.
    """

    def __init__(
        self,
        *,
        min_block_chars: int = 40,
        repeats: int = 3,
        max_unit_blocks: int = 8,
        window_blocks: int = 24,
        dominance: float = 0.5,
    ) -> None:
        if min_block_chars < 1:
            raise UsageError("min_block_chars must be at least 1")
        if repeats < 2:
            raise UsageError("repeats must be at least 2: one occurrence is not a loop")
        if max_unit_blocks < 1 or window_blocks < 2:
            raise UsageError("max_unit_blocks must be >= 1 and window_blocks >= 2")
        if not 0.0 < dominance <= 1.0:
            raise UsageError("dominance is a fraction of the window, in (0, 1]")
        self._min_chars = min_block_chars
        self._repeats = repeats
        self._max_unit = max_unit_blocks
        self._window_size = window_blocks
        self._window_threshold = max(repeats, math.ceil(dominance * window_blocks))
        self._history: deque[str] = deque(maxlen=max(max_unit_blocks * repeats, 1))
        self._window: deque[str] = deque()
        self._counts: Counter[str] = Counter()
        self._partial: list[str] = []
        self._chars = 0
        self._report: LoopReport | None = None

    @property
    def report(self) -> LoopReport | None:
        return self._report

    def feed(self, text: str) -> LoopReport | None:
        if self._report is not None:
            return self._report
        base = self._chars
        self._chars += len(text)
        start = 0
        for match in _BOUNDARY.finditer(text):
            self._partial.append(text[start : match.end()])
            start = match.end()
            if self._end_block(base + start):
                return self._report
        self._partial.append(text[start:])
        return None

    def finish(self) -> LoopReport | None:
        """End of reasoning: judge the last, unterminated block too."""
        if self._report is None and self._partial:
            self._end_block(self._chars)
        return self._report

    def _end_block(self, at_char: int) -> bool:
        block = " ".join("".join(self._partial).split())
        self._partial.clear()
        if not block:
            return False
        self._history.append(block)
        self._report = self._consecutive(at_char) or self._dominant(block, at_char)
        return self._report is not None

    def _consecutive(self, at_char: int) -> LoopReport | None:
        blocks = list(self._history)
        for period in range(1, self._max_unit + 1):
            span = period * self._repeats
            if span > len(blocks):
                break
            unit = blocks[-period:]
            if sum(len(b) for b in unit) < self._min_chars or not _primitive(unit):
                continue
            tail = blocks[-span:]
            if all(tail[k] == tail[k % period] for k in range(span)):
                return LoopReport(" ".join(unit), self._repeats, "consecutive", at_char)
        return None

    def _dominant(self, block: str, at_char: int) -> LoopReport | None:
        self._window.append(block)
        self._counts[block] += 1
        if len(self._window) > self._window_size:
            old = self._window.popleft()
            self._counts[old] -= 1
            if not self._counts[old]:
                del self._counts[old]
        if len(block) >= self._min_chars and self._counts[block] >= self._window_threshold:
            return LoopReport(block, self._counts[block], "window", at_char)
        return None
