"""Where a new request should run so that it recomputes as little of its prompt as possible, and
evicts as little of what other requests may reuse.

Each slot remembers the tokens whose KV it holds. A request continues in place in the free slot that
holds the longest prefix of its prompt when it keeps most of that slot's cache (a conversation's next
turn). Otherwise it takes the free slot that is cheapest to evict, an empty one first, then the least
recently used, and the longest cached prefix found in any slot, free or busy, is copied there: a new
conversation that shares only the chat template's system prompt with a cached one no longer overwrites
that conversation while other slots stand empty (vLLM's block cache, likewise, evicts nothing while
free blocks remain). At least the last prompt token is always recomputed: its logits choose the first
output token.
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

    cached: Sequence[int]  # tokens whose KV the slot holds, from position 0, as this request sees them
    last_used: float
    free: bool
    held: int | None = None  # tokens the slot holds, when some cannot serve this request (an adapter)

    @property
    def size(self) -> int:
        """What evicting the slot would lose."""
        return len(self.cached) if self.held is None else self.held


@dataclass(frozen=True)
class Placement:
    slot: int
    reuse: int  # prompt tokens whose KV is kept (or copied)
    copy_from: int | None = None  # another slot (free or busy) to copy the first ``reuse`` positions from


def place(prompt: Sequence[int], slots: Sequence[SlotView]) -> Placement:
    """The slot for ``prompt`` and how much of it is already cached (see the module docstring).

    "Keeps most of the slot's cache": it would evict no more of the slot's tokens than it reuses.
    """
    limit = len(prompt) - 1
    shared = [min(limit, common_prefix(prompt, s.cached)) for s in slots]
    free = [i for i, s in enumerate(slots) if s.free]
    if not free:
        raise ValueError("no free slot to place a request in")
    reuse = max(shared)
    continues = [i for i in free if shared[i] == reuse and slots[i].size - shared[i] <= shared[i]]
    if continues:
        return Placement(min(continues, key=lambda i: slots[i].last_used), reuse)
    target = min(free, key=lambda i: (slots[i].size > 0, slots[i].last_used))
    if shared[target] == reuse:
        return Placement(target, reuse)
    donor = max(range(len(slots)), key=lambda i: (shared[i], slots[i].free))
    return Placement(target, reuse, copy_from=donor)
