"""Behaviour of the incremental output parser on the shapes Qwen models actually produce."""

from __future__ import annotations

import json
import re

import pytest

from qwenkit.chat.events import (
    ContentDelta,
    Done,
    ParsedOutput,
    ReasoningDelta,
    ToolCall,
    ToolCallIds,
    coalesce,
)
from qwenkit.chat.parser import OutputParser, Phase, parse_output
from qwenkit.chat.tool_parsers import HermesParser, partial_marker_len
from qwenkit.errors import UsageError

CALL = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris", "unit": "c"}}\n</tool_call>'


def parse(text: str, *, reasoning: bool = False, tools: bool = True, finish: str = "stop") -> ParsedOutput:
    """The whole-text parse, with reproducible tool call ids."""
    return parse_output(
        text,
        starts_in_reasoning=reasoning,
        tool_parser=HermesParser() if tools else None,
        finish_reason=finish,
        tool_ids=ToolCallIds(seed=7),
    )


def test_model_opened_think_is_split_and_qwen_newlines_are_stripped() -> None:
    out = parse("<think>\nThe user wants 2+2.\n\nThat is 4.\n</think>\n\nThe answer is **4**.\n")
    assert out.reasoning == "The user wants 2+2.\n\nThat is 4."
    assert out.content == "The answer is **4**."
    assert out.tool_calls == ()
    assert out.finish_reason == "stop"


def test_prompt_opened_think_only_close_in_output() -> None:
    out = parse("We need the capital of France.\n</think>\n\nParis.", reasoning=True)
    assert (out.reasoning, out.content) == ("We need the capital of France.", "Paris.")


def test_prompt_opened_think_tolerates_a_repeated_open_marker() -> None:
    out = parse("<think>\nstep one\n</think>\n\ndone", reasoning=True)
    assert (out.reasoning, out.content) == ("step one", "done")


def test_thinking_disabled_has_no_reasoning_and_late_think_is_text() -> None:
    out = parse("Sure. Here <think> is just text </think> too.")
    assert out.reasoning == ""
    assert out.content == "Sure. Here <think> is just text </think> too."


def test_leading_whitespace_before_think_still_opens_reasoning() -> None:
    out = parse("\n \n<think>x</think>y")
    assert (out.reasoning, out.content) == ("x", "y")


def test_truncated_inside_thinking_returns_reasoning_and_empty_content() -> None:
    out = parse("<think>\nFirst, consider n even, so </thi", finish="length")
    assert out.reasoning == "First, consider n even, so </thi"
    assert out.content == ""
    assert out.finish_reason == "length"
    assert out.truncated_in_reasoning


def test_one_tool_call_becomes_a_typed_call_with_json_string_arguments() -> None:
    out = parse("Let me check.\n\n" + CALL)
    assert out.content == "Let me check."
    (call,) = out.tool_calls
    assert call.name == "get_weather"
    assert json.loads(call.arguments) == {"city": "Paris", "unit": "c"}
    assert call.arguments_dict() == {"city": "Paris", "unit": "c"}
    assert call.index == 0
    assert re.fullmatch(r"call_[0-9a-f]{24}", call.id)
    assert out.finish_reason == "tool_calls"


def test_several_tool_calls_keep_order_and_distinct_ids() -> None:
    second = '<tool_call>\n{"name": "get_time", "arguments": {"tz": "Europe/Paris"}}\n</tool_call>'
    out = parse(f"{CALL}\n{second}\n")
    assert [c.name for c in out.tool_calls] == ["get_weather", "get_time"]
    assert [c.index for c in out.tool_calls] == [0, 1]
    assert len({c.id for c in out.tool_calls}) == 2
    assert out.content == ""


def test_ids_are_reproducible_with_a_seed_and_random_without() -> None:
    first = parse(CALL + CALL).tool_calls
    again = parse(CALL + CALL).tool_calls
    assert [c.id for c in first] == [c.id for c in again]
    unseeded = [
        parse_output(CALL, starts_in_reasoning=False, tool_parser=HermesParser()).tool_calls[0].id
        for _ in range(3)
    ]
    assert len(set(unseeded)) == 3
    assert ToolCallIds(seed=1, prefix="t-", hex_chars=8).next_id().startswith("t-")


def test_tool_call_written_inside_think_stays_reasoning() -> None:
    out = parse(f"<think>\nI could do {CALL} here.\n</think>\n\nNo call needed.")
    assert out.tool_calls == ()
    assert CALL in out.reasoning
    assert out.content == "No call needed."


@pytest.mark.parametrize(
    "body",
    [
        '{"name": "f", "arguments": {oops}',
        '{"arguments": {"a": 1}}',
        '{"name": "", "arguments": {}}',
        '{"name": "f", "arguments": [1, 2]}',
        '["name", "f"]',
        "[" * 100_000 + "]" * 100_000,
    ],
)
def test_malformed_tool_json_is_kept_verbatim_as_content(body: str) -> None:
    text = f"Trying.\n<tool_call>\n{body}\n</tool_call>\nDone."
    out = parse(text)
    assert out.tool_calls == ()
    assert out.content == text
    assert out.finish_reason == "stop"


def test_arguments_sent_as_a_json_string_are_accepted() -> None:
    out = parse('<tool_call>{"name": "f", "arguments": "{\\"x\\": [1, 2]}"}</tool_call>')
    assert json.loads(out.tool_calls[0].arguments) == {"x": [1, 2]}


def test_missing_arguments_mean_an_empty_object() -> None:
    assert parse('<tool_call>{"name": "now"}</tool_call>').tool_calls[0].arguments == "{}"


def test_unterminated_tool_call_is_content() -> None:
    text = 'Sure.\n<tool_call>\n{"name": "f", "arguments": {"a": 1'
    out = parse(text, finish="length")
    assert out.content == text
    assert out.tool_calls == ()
    assert out.finish_reason == "length"


def test_tools_disabled_leaves_tool_markup_as_content() -> None:
    out = parse(CALL, tools=False)
    assert out.content == CALL
    assert out.tool_calls == ()


def test_content_around_calls_keeps_event_order() -> None:
    out = parse(f"Before.\n{CALL}\n\nAfter.")
    kinds = [type(e).__name__ for e in coalesce(out.events)]
    assert kinds == ["ContentDelta", "ToolCall", "ContentDelta", "Done"]
    assert out.content == "Before.\n\n\nAfter."


def test_length_finish_with_calls_is_not_rewritten() -> None:
    assert parse(CALL, finish="length").finish_reason == "length"


def test_events_are_typed_and_done_is_last() -> None:
    parser = OutputParser(starts_in_reasoning=True, tool_parser=HermesParser(), tool_ids=ToolCallIds(seed=3))
    events = parser.feed("abc</think>\n\nxyz") + parser.finish()
    assert events[:2] == [ReasoningDelta("abc"), ContentDelta("xyz")]
    assert events[-1] == Done("stop")
    assert not any(isinstance(e, ToolCall) for e in events)


def test_phase_is_undecided_until_the_parser_knows_where_text_goes() -> None:
    parser = OutputParser(starts_in_reasoning=False, tool_parser=HermesParser())
    assert parser.phase is Phase.UNDECIDED
    parser.feed("\n<thi")
    assert parser.phase is Phase.UNDECIDED and not parser.in_reasoning
    parser.feed("nk>hmm")
    assert parser.phase is Phase.REASONING and parser.in_reasoning and parser.opened_reasoning
    parser.feed("</think>")
    assert parser.phase is Phase.ANSWER and not parser.in_reasoning


def test_a_partial_think_that_turns_into_a_tool_call_was_never_reasoning() -> None:
    parser = OutputParser(starts_in_reasoning=False, tool_parser=HermesParser())
    parser.feed("<t")
    assert parser.phase is Phase.UNDECIDED
    parser.feed("ool_call>")
    assert parser.phase is Phase.ANSWER and not parser.opened_reasoning


def test_prompt_opened_reasoning_is_reasoning_from_the_first_token() -> None:
    parser = OutputParser(starts_in_reasoning=True)
    assert parser.phase is Phase.REASONING and parser.opened_reasoning


def test_misuse_is_a_usage_error() -> None:
    parser = OutputParser(starts_in_reasoning=False, tool_parser=HermesParser())
    with pytest.raises(UsageError):
        parser.finish("")
    parser.finish()
    with pytest.raises(UsageError):
        parser.feed("more")
    with pytest.raises(UsageError):
        parser.finish()
    with pytest.raises(UsageError):
        ParsedOutput.from_events([ContentDelta("no done")])
    with pytest.raises(UsageError):
        ToolCallIds(hex_chars=0)


@pytest.mark.parametrize(
    ("text", "marker", "expected"),
    [
        ("abc<", "</think>", 1),
        ("abc</thi", "</think>", 5),
        ("abc</x", "</think>", 0),
        ("<<", "<think>", 1),
        ("", "<a>", 0),
    ],
)
def test_partial_marker_len(text: str, marker: str, expected: int) -> None:
    assert partial_marker_len(text, marker) == expected
