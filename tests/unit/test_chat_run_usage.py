"""Reasoning-token accounting: a token is reasoning when its text went to reasoning, decided once known.

A grammar-forced call arrives as plain-text tokens ("<", "tool", "_call", ">"); the "<" is held as a
possible "<think>" until the next token shows it is not. Such held tokens count as reasoning only if
reasoning really opened.
"""

from __future__ import annotations

import pytest
from _chat_tokenizer import real_qwen_tokenizer

from qwenkit.chat.tokenizer import Tokenizer
from qwenkit.chat.tool_parsers import HermesParser
from qwenkit.engine.chat_run import ChatResult, ChatRun
from qwenkit.engine.types import FinishReason, Timings, TokenEvent

CALL = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'


def _run(ids: list[int], tok: Tokenizer, *, starts_in_reasoning: bool = False) -> ChatResult:
    run = ChatRun(tok, prompt_tokens=5, starts_in_reasoning=starts_in_reasoning, tool_parser=HermesParser())
    for token_id in ids:
        run.on_token(TokenEvent(token_id=token_id))
    run.finish(FinishReason.STOP)
    return run.result(Timings())


def _plain(tok: Tokenizer, text: str) -> list[int]:
    """Every character as plain text, as a grammar makes the model spell markers out."""
    return tok.encode_text(text)


def test_a_forced_call_spelled_in_plain_tokens_has_no_reasoning_tokens() -> None:
    tok = real_qwen_tokenizer()
    ids = _plain(tok, CALL)
    assert tok.decode(ids[:1]) == "<"  # the held-back "<" really is its own token
    result = _run(ids, tok)
    assert [c.name for c in result.tool_calls] == ["get_weather"]
    assert result.usage.reasoning_tokens == 0
    assert result.usage.completion_tokens == len(ids)


def test_whitespace_and_a_split_think_that_open_reasoning_are_reasoning() -> None:
    tok = real_qwen_tokenizer()
    head = _plain(tok, "\n <think>")  # whitespace, then "<", "think", ">" as plain tokens
    thought = _plain(tok, "\nLet me see.\n")
    close = [tok.special_tokens["</think>"]]
    answer = _plain(tok, "\n\nParis.")
    result = _run(head + thought + close + answer, tok)
    assert (result.reasoning, result.content) == ("Let me see.", "Paris.")
    assert result.usage.reasoning_tokens == len(head) + len(thought) + len(close)


def test_whitespace_before_an_answer_is_not_reasoning() -> None:
    tok = real_qwen_tokenizer()
    ids = _plain(tok, "\n\n  ") + _plain(tok, "<t") + _plain(tok, "abular data")
    result = _run(ids, tok)
    assert result.content.endswith("<tabular data")
    assert result.usage.reasoning_tokens == 0


@pytest.mark.parametrize("text", ["The answer.", "<thi"])
def test_a_prompt_opened_think_makes_every_token_reasoning_until_it_closes(text: str) -> None:
    tok = real_qwen_tokenizer()
    ids = _plain(tok, text)
    result = _run(ids, tok, starts_in_reasoning=True)
    assert result.reasoning == text
    assert result.usage.reasoning_tokens == len(ids)
