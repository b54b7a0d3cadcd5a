"""Where a new request should run so that it recomputes as little of its prompt as possible.

Each slot remembers the tokens whose KV it holds. A request goes to the free slot sharing the
longest prefix with its prompt (ties: the least recently used, so fresh caches survive longer);
when a busy slot shares a longer prefix than any free one, that prefix is copied from it into the
least recently used free slot. At least the last prompt token is always recomputed: its logits
choose the first output token.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


@dataclass(frozen=True)
class SlotView:
    """What placement needs to know about one slot."""

    cached: Sequence[int]  # tokens whose KV the slot holds, from position 0
    last_used: float
    free: bool


@dataclass(frozen=True)
class Placement:
    slot: int
    reuse: int  # prompt tokens whose KV is kept (or copied)
    copy_from: int | None = None  # a busy slot to copy the first ``reuse`` positions from


def place(prompt: Sequence[int], slots: Sequence[SlotView]) -> Placement:
    limit = len(prompt) - 1
    shared = [min(limit, common_prefix(prompt, s.cached)) for s in slots]
    free = [i for i, s in enumerate(slots) if s.free]
    if not free:
        raise ValueError("no free slot to place a request in")
    best = max(free, key=lambda i: (shared[i], -slots[i].last_used))
    donors = [i for i, s in enumerate(slots) if not s.free and shared[i] > shared[best]]
    if not donors:
        return Placement(best, shared[best])
    donor = max(donors, key=lambda i: shared[i])
    target = min(free, key=lambda i: slots[i].last_used)
    return Placement(target, shared[donor], copy_from=donor)
