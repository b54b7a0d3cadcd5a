"""Qwen's thinking budget, kept where the tokens are made.

The handle counts reasoning tokens as the engine pushes them and queues Qwen's early-stop text the
moment the count reaches the budget, so every backend feeds it at the sequence's very next step. A
consumer that counted instead would inject only once it had read the budget-th token: an engine
running ahead of it (a loaded machine, vLLM's separate process) let the reasoning run past the budget
by as many tokens as the consumer was behind.

Counting is by token id: reasoning starts at the prompt's open ``<think>`` or at a generated one, and
every token from there counts (``<think>`` included) until ``</think>``, as ``ChatRun`` counts them.
"""

from __future__ import annotations

from dataclasses import dataclass

from qwenkit.errors import UsageError


@dataclass(frozen=True)
class ReasoningBudget:
    """At most ``budget`` reasoning tokens, then ``early_stop_ids`` (Qwen's text ending in ``</think>``)."""

    budget: int
    early_stop_ids: tuple[int, ...]
    open_id: int | None  # <think>; None where the tokenizer has none (reasoning only from the prompt)
    close_id: int  # </think>
    starts_in_reasoning: bool

    def __post_init__(self) -> None:
        if not isinstance(self.budget, int) or self.budget < 0:
            raise UsageError("thinking_budget must be a non-negative integer", param="thinking_budget")
        if not self.early_stop_ids or self.early_stop_ids[-1] != self.close_id:
            raise ValueError("the early-stop text must end in </think>")


class ReasoningCounter:
    """One generation's count against a ReasoningBudget; its owner (the handle) serializes the calls."""

    def __init__(self, spec: ReasoningBudget) -> None:
        self._spec = spec
        self._reasoning = spec.starts_in_reasoning
        self._count = 0
        self._over = False  # the thinking ended, or the early stop was queued, or a caller took over
        self.fired = False  # the budget queued the early stop

    def start(self) -> tuple[int, ...]:
        """What to inject before the first token: the early stop for a zero budget in open reasoning."""
        return self._check()

    def feed(self, token_id: int) -> tuple[int, ...]:
        """Count one emitted token; the early-stop ids when this one reached the budget."""
        if self._over:
            return ()
        if not self._reasoning:
            if token_id != self._spec.open_id:
                return ()
            self._reasoning = True
        elif token_id == self._spec.close_id:
            self._over = True
            return ()
        self._count += 1
        return self._check()

    def stand_down(self) -> None:
        """Another injection (the loop guard's early stop, a caller's tokens) decides from here."""
        self._over = True

    def _check(self) -> tuple[int, ...]:
        if self._over or not self._reasoning or self._count < self._spec.budget:
            return ()
        self._over = self.fired = True
        return self._spec.early_stop_ids
