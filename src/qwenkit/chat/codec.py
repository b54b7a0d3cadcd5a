"""Private-use placeholders that keep caller text from ever becoming control tokens.

Before rendering, every added-token text inside a caller string (``<|im_start|>``, ``<think>`` ...) is
swapped for one private-use code point; after rendering, every added-token text left in the output
must be the template's own markup. Placeholders are single non-whitespace, non-cased, printable code
points, so ``json.dumps(ensure_ascii=False)``, ``strip``, ``split`` and case filters leave them as they
are. They are chosen among code points that occur nowhere in the caller's text or the template source,
so caller text that itself contains private-use characters round-trips unchanged.

Two more private-use code points bracket each caller string in a second, *marked* render; their
positions give the caller's character ranges in the prompt.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from itertools import islice

from qwenkit.errors import UsageError

# Private-use blocks: the BMP area, then planes 15 and 16.
_PRIVATE_USE = ((0xE000, 0xF8FF), (0xF0000, 0xFFFFD), (0x100000, 0x10FFFD))


def _free_code_points(used: set[str]) -> Iterator[str]:
    for low, high in _PRIVATE_USE:
        for cp in range(low, high + 1):
            ch = chr(cp)
            if ch not in used:
                yield ch


@lru_cache(maxsize=16)
def token_pattern(token_texts: tuple[str, ...]) -> re.Pattern[str] | None:
    """One alternation of every added-token text, longest first so ``</think>`` beats shorter prefixes."""
    texts = sorted((t for t in token_texts if t), key=len, reverse=True)
    return re.compile("|".join(map(re.escape, texts))) if texts else None


@dataclass(frozen=True)
class Codec:
    """Placeholders for one encode call: token text <-> private-use code point, plus two span markers."""

    pattern: re.Pattern[str] | None
    to_placeholder: Mapping[str, str]
    restore_table: Mapping[int, str]
    open_mark: str
    close_mark: str
    max_lead_ws: int = 0
    max_trail_ws: int = 0

    @classmethod
    def build(cls, token_texts: Iterable[str], caller_strings: Iterable[str], template: str) -> Codec:
        texts = tuple(sorted(set(token_texts)))
        used: set[str] = set(template)
        lead = trail = 0
        for s in caller_strings:
            used.update(s)
            if s.strip():
                lead = max(lead, len(s) - len(s.lstrip()))
                trail = max(trail, len(s) - len(s.rstrip()))
        free = list(islice(_free_code_points(used), len(texts) + 2))
        if len(free) < len(texts) + 2:
            raise UsageError("the conversation uses every private-use code point; cannot encode it safely")
        mapping = dict(zip(texts, free[: len(texts)], strict=True))
        open_mark, close_mark = free[-2], free[-1]
        return cls(
            pattern=token_pattern(texts),
            to_placeholder=mapping,
            restore_table={ord(ph): text for text, ph in mapping.items()},
            open_mark=open_mark,
            close_mark=close_mark,
            max_lead_ws=lead,
            max_trail_ws=trail,
        )

    def protect(self, text: str) -> str:
        if self.pattern is None:
            return text
        return self.pattern.sub(lambda m: self.to_placeholder[m.group()], text)

    def restore(self, text: str) -> str:
        return text.translate(self.restore_table)

    def mark(self, text: str) -> str:
        """Bracket a caller string inside its surrounding whitespace, so templates that strip whitespace
        render the marked and the plain conversation alike. Empty strings stay unmarked (and falsy)."""
        if not text:
            return text
        core = text.strip()
        if not core:
            return self.open_mark + text + self.close_mark
        lead = len(text) - len(text.lstrip())
        end = lead + len(core)
        return text[:lead] + self.open_mark + core + self.close_mark + text[end:]

    def unmark(self, text: str) -> str:
        return text.replace(self.open_mark, "").replace(self.close_mark, "")

    def marked_spans(self, marked: str) -> list[tuple[int, int]]:
        """Character ranges (in the unmarked text) between open and close marks, widened over the
        whitespace a mark may have been placed inside of."""
        unmarked = self.unmark(marked)
        spans: list[tuple[int, int]] = []
        depth = start = 0
        marks = f"[{re.escape(self.open_mark)}{re.escape(self.close_mark)}]"
        for removed, m in enumerate(re.finditer(marks, marked)):
            pos = m.start() - removed
            if m.group() == self.open_mark:
                depth += 1
                if depth == 1:
                    start = pos
            elif depth > 0:
                depth -= 1
                if depth == 0:
                    spans.append(self._widen(unmarked, start, pos))
        if depth > 0:
            spans.append(self._widen(unmarked, start, len(unmarked)))
        return merge_ranges(spans)

    def _widen(self, text: str, start: int, end: int) -> tuple[int, int]:
        low = start
        while low > 0 and start - low < self.max_lead_ws and text[low - 1].isspace():
            low -= 1
        high = end
        while high < len(text) and high - end < self.max_trail_ws and text[high].isspace():
            high += 1
        return low, high


def merge_ranges(ranges: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sort and merge overlapping or touching half-open ranges; empty ranges are dropped."""
    merged: list[tuple[int, int]] = []
    for start, end in sorted(r for r in ranges if r[1] > r[0]):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged
