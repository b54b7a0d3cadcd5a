"""Qwen's thinking budget, kept where the tokens are made.

The handle counts reasoning tokens as the engine pushes them and queues Qwen's early-stop text the
moment the count reaches the budget, so every backend feeds it at the sequence's very next step. A
consumer that counted instead would inject only once it had read the budget-th token: an engine
running ahead of it (a loaded machine, vLLM's separate process) let the reasoning run past the budget
by as many tokens as the consumer was behind.

Counting is by token id: reasoning starts at the prompt's open ``<think>`` or at a ``<think>`` that is
the first generated token (as Qwen3 writes it), and every token from there counts (``<think>``
included) until ``</think>``, as ``ChatRun`` counts them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ReasoningBudget:
    """At most ``budget`` reasoning tokens (None: no limit, only the end of the thinking is tracked),
    then ``early_stop_ids``: Qwen's early-stop text, ``</think>`` and the blank line after it."""

    budget: int | None
    early_stop_ids: tuple[int, ...]
    open_id: int | None  # <think>; None where the tokenizer has none (reasoning only from the prompt)
    close_id: int  # </think>
    starts_in_reasoning: bool

    def __post_init__(self) -> None:
        # Structure only: the user's thinking_budget was checked where it came in (ChatParams).
        if self.budget is not None and self.budget < 0:
            raise ValueError("a reasoning budget cannot be negative")
        if self.close_id not in self.early_stop_ids:
            raise ValueError("the early-stop text must hold </think>")


class ReasoningCounter:
    """One generation's count against a ReasoningBudget; its owner (the handle) serializes the calls."""

    def __init__(self, spec: ReasoningBudget) -> None:
        self._spec = spec
        self._reasoning = spec.starts_in_reasoning
        self._first = True  # no token seen yet: only the first may open the thinking
        self._count = 0
        self._armed = spec.budget is not None
        self.fired = False  # the budget queued the early stop
        self.closed = False  # </think> was emitted (the model's own or a forced one)

    @property
    def thinking_over(self) -> bool:
        """The early stop is queued or the thinking has ended: another early stop would land in the answer."""
        return self.fired or self.closed

    def start(self) -> tuple[int, ...]:
        """What to inject before the first token: the early stop for a zero budget in open reasoning."""
        return self._check()

    def feed(self, token_id: int) -> tuple[int, ...]:
        """Count one emitted token; the early-stop ids when this one reached the budget."""
        first, self._first = self._first, False
        if self.closed:
            return ()
        if not self._reasoning:
            if not first or token_id != self._spec.open_id:
                return ()  # an answer without thinking: a <think> later in it is not one
            self._reasoning = True
        elif token_id == self._spec.close_id:
            self.closed = True
            return ()
        self._count += 1
        return self._check()

    def accept_injection(self) -> bool:
        """May another injection (the loop guard's early stop) go in? Not once the thinking is over or
        the budget's early stop is queued: read behind the engine, it would land in the answer or end
        the thinking twice. An accepted one decides from here, so the budget stands down."""
        if self.thinking_over:
            return False
        self._armed = False
        return True

    def _check(self) -> tuple[int, ...]:
        budget = self._spec.budget
        if not self._armed or not self._reasoning or budget is None or self._count < budget:
            return ()
        self._armed, self.fired = False, True
        return self._spec.early_stop_ids
