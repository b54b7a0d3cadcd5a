"""Where a new request should run so that it recomputes as little of its prompt as possible, and
evicts as little of what other requests may reuse.

Each slot remembers the tokens whose KV it holds. A request continues in place in the free slot that
holds the longest prefix of its prompt when it keeps most of that slot's cache (a conversation's next
turn). Otherwise it takes the free slot that is cheapest to evict, an empty one first, then the least
recently used, and the longest cached prefix found in any slot, free or busy, is copied there: a new
conversation that shares only the chat template's system prompt with a cached one no longer overwrites
that conversation while other slots stand empty (vLLM's block cache, likewise, evicts nothing while
free blocks remain). Placement reuses at most all but the last prompt token, whose logits choose the
first output token; the runner serves that one from cache too when the slot kept those logits
(``llama_slots.SlotCache.rows``).

With a KV stream per sequence, llama.cpp runs a step's sequences in one pass over the weights only
while their ids follow each other (``split_equal`` with ``sequential``); busy slots 0, 1, 6 and 7 take
two passes a step where 2 to 5 take one. So, ``together``, a request that would open a new run of busy
slots goes beside the busy ones instead: its reused prefix is copied there, and what that slot held
moves (``park``) to where the rule above would have evicted, so the cache loses what it lost before.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def runs(ids: Iterable[int]) -> int:
    """How many runs of consecutive ids ``ids`` makes: {2, 3, 4, 5} one, {0, 1, 6, 7} two."""
    ordered = sorted(set(ids))
    return sum(1 for k, i in enumerate(ordered) if k == 0 or ordered[k - 1] != i - 1)


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

    @property
    def eviction_cost(self) -> tuple[bool, float]:
        """Empty first, then the least recently used."""
        return self.size > 0, self.last_used


@dataclass(frozen=True)
class Placement:
    slot: int
    reuse: int  # prompt tokens whose KV is kept (or copied)
    copy_from: int | None = None  # another slot (free or busy) to copy the first ``reuse`` positions from
    park: int | None = None  # a free slot to copy ``slot``'s cache to first, so that it is not lost


def place(prompt: Sequence[int], slots: Sequence[SlotView], *, together: bool = False) -> Placement:
    """The slot for ``prompt`` and how much of it is already cached (see the module docstring).

    "Keeps most of the slot's cache": it would evict no more of the slot's tokens than it reuses.
    """
    placement = _by_cache(prompt, slots)
    return _beside_busy(placement, slots) if together else placement


def _by_cache(prompt: Sequence[int], slots: Sequence[SlotView]) -> Placement:
    limit = len(prompt) - 1
    shared = [min(limit, common_prefix(prompt, s.cached)) for s in slots]
    free = [i for i, s in enumerate(slots) if s.free]
    if not free:
        raise ValueError("no free slot to place a request in")
    reuse = max(shared)
    continues = [i for i in free if shared[i] == reuse and slots[i].size - shared[i] <= shared[i]]
    if continues:
        return Placement(min(continues, key=lambda i: slots[i].last_used), reuse)
    target = min(free, key=lambda i: slots[i].eviction_cost)
    if shared[target] == reuse:
        return Placement(target, reuse)
    donor = max(range(len(slots)), key=lambda i: (shared[i], slots[i].free))
    return Placement(target, reuse, copy_from=donor)


def _beside_busy(chosen: Placement, slots: Sequence[SlotView]) -> Placement:
    """``chosen`` moved next to the busy slots when it would start a run of its own."""
    busy = [i for i, s in enumerate(slots) if not s.free]
    free = [i for i, s in enumerate(slots) if s.free]
    runs_with = {i: runs([*busy, i]) for i in free}
    fewest = min(runs_with.values())
    if runs_with[chosen.slot] == fewest:
        return chosen
    home = min((i for i in free if runs_with[i] == fewest), key=lambda i: slots[i].eviction_cost)
    source = (chosen.slot if chosen.copy_from is None else chosen.copy_from) if chosen.reuse else None
    copy_from = None if source == home else source
    if not slots[home].size:
        return Placement(home, chosen.reuse, copy_from)
    spare = [i for i in free if i not in (home, source)]
    park = min(spare, key=lambda i: slots[i].eviction_cost, default=None)
    if park is not None and slots[park].eviction_cost >= slots[home].eviction_cost:
        park = None  # what it holds is worth more than what ``home`` holds: ``home`` is evicted instead
    return Placement(home, chosen.reuse, copy_from, park)
