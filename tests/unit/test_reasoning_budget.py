"""The thinking budget counted where tokens are made: ReasoningCounter, and QueuedHandle using it."""

from __future__ import annotations

import pytest

from qwenkit.engine.handle import QueuedHandle
from qwenkit.engine.params import ChatParams
from qwenkit.engine.reasoning_budget import ReasoningBudget, ReasoningCounter
from qwenkit.engine.types import TokenEvent
from qwenkit.errors import UsageError

OPEN, CLOSE = 151667, 151668
BLANK = 271  # Qwen's "\n\n"
EARLY_STOP = (1000, 1001, CLOSE, BLANK)  # stands for Qwen's early-stop text, </think> and a blank line


def spec(budget: int | None, *, starts_in_reasoning: bool = True) -> ReasoningBudget:
    return ReasoningBudget(budget, EARLY_STOP, OPEN, CLOSE, starts_in_reasoning)


def feed_all(counter: ReasoningCounter, tokens: list[int]) -> list[tuple[int, ...]]:
    return [counter.feed(t) for t in tokens]


def test_the_early_stop_comes_with_the_budget_th_reasoning_token_and_once() -> None:
    counter = ReasoningCounter(spec(3))
    assert counter.start() == ()
    assert feed_all(counter, [5, BLANK, 7, 8, 9]) == [(), (), EARLY_STOP, (), ()]  # a blank line counts
    assert counter.fired and counter.thinking_over


def test_without_a_budget_only_the_end_of_the_thinking_is_tracked() -> None:
    counter = ReasoningCounter(spec(None))
    assert counter.start() == () and feed_all(counter, [5] * 50) == [()] * 50
    assert not counter.thinking_over
    counter.feed(CLOSE)
    assert counter.closed and counter.thinking_over and not counter.fired


def test_counting_starts_at_a_generated_think_and_counts_it() -> None:
    counter = ReasoningCounter(spec(2, starts_in_reasoning=False))
    assert counter.start() == ()
    assert feed_all(counter, [OPEN, 7, 8]) == [(), EARLY_STOP, ()]


def test_a_think_inside_an_answer_without_thinking_is_not_counted() -> None:
    counter = ReasoningCounter(spec(1, starts_in_reasoning=False))
    assert feed_all(counter, [5, 6, OPEN, 7, 8]) == [()] * 5 and not counter.thinking_over


def test_a_thinking_that_ends_within_the_budget_is_left_alone() -> None:
    counter = ReasoningCounter(spec(3))
    assert feed_all(counter, [5, CLOSE, 6, 7, 8, 9]) == [()] * 6
    assert not counter.fired


def test_a_zero_budget_stops_before_the_first_token_of_an_open_thinking() -> None:
    assert ReasoningCounter(spec(0)).start() == EARLY_STOP
    later = ReasoningCounter(spec(0, starts_in_reasoning=False))
    assert later.start() == () and later.feed(OPEN) == EARLY_STOP


def test_another_injection_stands_the_budget_down() -> None:
    counter = ReasoningCounter(spec(2))
    counter.feed(5)
    assert counter.accept_injection()
    assert feed_all(counter, [6, 7, 8]) == [(), (), ()] and not counter.fired


@pytest.mark.parametrize("ends", ["budget", "close"])
def test_no_other_injection_once_the_thinking_is_over(ends: str) -> None:
    counter = ReasoningCounter(spec(2))
    feed_all(counter, [5, 6] if ends == "budget" else [5, CLOSE])
    assert counter.thinking_over and not counter.accept_injection()


def test_the_handle_queues_the_early_stop_at_the_budget_however_far_behind_the_reader_is() -> None:
    handle = QueuedHandle(reasoning_budget=spec(4))
    for position in range(4):  # nobody reads: the engine runs ahead
        assert not handle.has_injected
        handle.push(TokenEvent(10 + position))
    assert handle.take_injected() == list(EARLY_STOP)
    for token in EARLY_STOP:
        handle.push(TokenEvent(token, forced=True))
    handle.push(TokenEvent(20))
    assert not handle.has_injected


def test_a_zero_budget_handle_starts_with_the_early_stop_queued() -> None:
    assert QueuedHandle(reasoning_budget=spec(0)).take_injected() == list(EARLY_STOP)


def test_the_loop_guard_cannot_stop_the_thinking_twice_or_inside_the_answer() -> None:
    """The consumer's loop guard reads behind the engine: once the budget has queued the early stop,
    or the model has closed its thinking, its own is refused; one queued first turns the budget off."""
    fired = QueuedHandle(reasoning_budget=spec(1))
    fired.push(TokenEvent(10))
    assert fired.inject(list(EARLY_STOP)) is False
    assert fired.take_injected() == list(EARLY_STOP)  # once
    closed = QueuedHandle(reasoning_budget=spec(None))
    for token in (10, CLOSE, BLANK, 12):
        closed.push(TokenEvent(token))
    assert closed.inject(list(EARLY_STOP)) is False and not closed.has_injected
    guarded = QueuedHandle(reasoning_budget=spec(2))
    guarded.push(TokenEvent(10))
    assert guarded.inject(list(EARLY_STOP)) is True
    assert guarded.take_injected() == list(EARLY_STOP)
    guarded.push(TokenEvent(11))
    assert not guarded.has_injected


def test_a_budget_is_checked_where_it_is_made() -> None:
    with pytest.raises(UsageError, match="non-negative"):
        ChatParams(thinking_budget=-1)
    with pytest.raises(ValueError, match="negative"):
        spec(-1)
    with pytest.raises(ValueError, match="</think>"):
        ReasoningBudget(2, (1000, 1001, BLANK), OPEN, CLOSE, True)


def test_a_loop_guard_refused_behind_the_budget_leaves_the_budget_named() -> None:
    """The engine ran ahead: the budget queued its early stop; the loop guard, reading behind, then
    finds a loop and asks for its own. The handle refuses it, and the result names the budget."""
    from _chat_tokenizer import real_qwen_tokenizer

    from qwenkit.engine.chat_run import ChatRun, ThinkingControl
    from qwenkit.engine.llm import ChatStream
    from qwenkit.engine.params import THINKING_EARLY_STOP
    from qwenkit.engine.types import FinishReason

    tok = real_qwen_tokenizer()
    close = tok.special_tokens["</think>"]
    early_stop = (*tok.encode_text(THINKING_EARLY_STOP), close, *tok.encode_text("\n\n"))
    loop = tok.encode_text("I should check whether the number is prime by trial division. " * 12)
    budget = len(loop) - 3  # the loop is plain well before this
    handle = QueuedHandle(reasoning_budget=ReasoningBudget(budget, early_stop, None, close, True))
    for token in loop[:budget]:  # the engine's side, all before the consumer reads
        handle.push(TokenEvent(token))
    forced = handle.take_injected()
    assert forced == list(early_stop)
    for token in forced:
        handle.push(TokenEvent(token, forced=True))
    handle.finish(FinishReason.STOP)
    control = ThinkingControl(early_stop_ids=early_stop, budget=budget, loop_guard=True)
    run = ChatRun(tok, prompt_tokens=10, starts_in_reasoning=True, thinking=control)
    guarded = ChatRun(tok, prompt_tokens=10, starts_in_reasoning=True, thinking=control)
    assert any(guarded.on_token(TokenEvent(t)).inject for t in loop[:budget])  # the guard does fire here
    stream = ChatStream(handle, run)
    result = stream.result()
    assert result.thinking_stopped_early == "budget"
    assert not handle.has_injected  # the loop guard's early stop was refused
    assert result.reasoning.endswith(THINKING_EARLY_STOP.strip("\n"))
