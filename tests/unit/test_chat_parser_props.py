"""Streaming equals non-streaming, for any chunking of the text and any grouping of token ids.

Plus the one timed test the issue asks for: adversarial megabyte outputs parse in linear time.
"""

from __future__ import annotations

import json
import random
import re
import time
from collections.abc import Sequence
from itertools import pairwise
from typing import TypeVar

import pytest
from _chat_tokenizer import real_qwen_tokenizer
from _parser_cases import CASES, IDS, TOOLS, Case
from hypothesis import given, settings
from hypothesis import strategies as st

from qwenkit.catalog.schema import ToolFormat
from qwenkit.chat.detokenize import IncrementalDetokenizer
from qwenkit.chat.events import ContentDelta, Event, ParsedOutput, ReasoningDelta, coalesce
from qwenkit.chat.parser import OutputParser
from qwenkit.chat.tool_parsers import TOOL_PARSERS, ToolContext, ToolSet

T = TypeVar("T")


def _chunks(items: Sequence[T], cuts: list[int]) -> list[Sequence[T]]:
    bounds = [0, *sorted(set(cuts)), len(items)]
    return [items[start:end] for start, end in pairwise(bounds)]


def _whole(case: Case) -> list[Event]:
    parser = case.parser()
    return coalesce(parser.feed(case.text) + parser.finish(case.finish))


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_whole_parse_gives_the_expected_split(case: Case) -> None:
    out = ParsedOutput.from_events(_whole(case))
    assert out.reasoning == case.reasoning
    assert out.content == case.content
    assert [(c.name, json.loads(c.arguments)) for c in out.tool_calls] == list(case.calls)
    assert out.finish_reason == case.expected_finish


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=IDS)
@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_any_text_split_streams_the_same_events(case: Case, data: st.DataObject) -> None:
    cuts = data.draw(st.lists(st.integers(0, len(case.text)), max_size=40))
    parser = case.parser()
    events: list[Event] = []
    for chunk in _chunks(case.text, cuts):
        events += parser.feed(str(chunk))
    events += parser.finish(case.finish)
    assert all(e.text for e in events if isinstance(e, (ReasoningDelta, ContentDelta)))
    assert coalesce(events) == _whole(case)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_one_character_at_a_time_streams_the_same_events(case: Case) -> None:
    parser = case.parser()
    events = [e for ch in case.text for e in parser.feed(ch)] + parser.finish(case.finish)
    assert coalesce(events) == _whole(case)


_MARKER_SPLIT = re.compile(r"(</?think>|</?tool_call>)")


def _model_ids(text: str) -> list[int]:
    """Ids as a model emits them: markers as their single special token, the rest as plain text."""
    tok = real_qwen_tokenizer()
    ids: list[int] = []
    for piece in _MARKER_SPLIT.split(text):
        if piece in tok.special_tokens:
            ids.append(tok.special_tokens[piece])
        elif piece:
            ids.extend(tok.encode_text(piece))
    return ids


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=IDS)
@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_any_token_grouping_streams_the_same_events(case: Case, data: st.DataObject) -> None:
    tok = real_qwen_tokenizer()
    ids = [*_model_ids(case.text), tok.special_tokens["<|im_end|>"]]
    cuts = data.draw(st.lists(st.integers(0, len(ids)), max_size=20))
    detok, parser = IncrementalDetokenizer(tok), case.parser()
    events: list[Event] = []
    for group in _chunks(ids, cuts):
        events += parser.feed(detok.push_many(group))
    events += parser.feed(detok.flush()) + parser.finish(case.finish)
    assert not any("\ufffd" in e.text for e in events if isinstance(e, (ReasoningDelta, ContentDelta)))
    assert coalesce(events) == _whole(case)


_MB = 1_000_000
ADVERSARIAL = {
    "lt": "<" * _MB,
    "think_open": ("<think" * _MB)[:_MB],
    "tool_open_no_close": ('<tool_call>{"name": "' * _MB)[:_MB],
    "close_runs": ("</" * _MB)[:_MB],
    "think_close_prefix": ("</think" * _MB)[:_MB],
    "newlines": "\n" * _MB,
    "spaces": " " * _MB,
    "brackets": "[" * _MB,
    "json_string": ('{"name": "' + "x" * _MB)[:_MB],
    "json_numbers": ('{"a": [' + "12, " * _MB)[:_MB],
    "json_objects": ("[" + '{"name": "f", "arguments": {}}, ' * _MB)[:_MB],
    "backticks": "`" * _MB,
    "fenced_lines": ("```json\n" + "\n" * _MB)[:_MB],
    "xml_params": ("<tool_call>\n<function=f>\n" + "<parameter=a>\n1\n</parameter>\n" * _MB)[:_MB],
}
FORMATS = [ToolFormat.HERMES, ToolFormat.HERMES_JSON, ToolFormat.QWEN3_CODER]


def _fresh(fmt: ToolFormat, reasoning: bool) -> OutputParser:
    tools = TOOL_PARSERS[fmt](ToolContext(ToolSet(TOOLS), json_answers=True))
    return OutputParser(starts_in_reasoning=reasoning, tool_parser=tools)


@pytest.mark.slow
@pytest.mark.parametrize("fmt", FORMATS, ids=[f.value for f in FORMATS])
@pytest.mark.parametrize("reasoning", [False, True])
@pytest.mark.parametrize("name", list(ADVERSARIAL))
def test_adversarial_megabyte_parses_in_linear_time(name: str, reasoning: bool, fmt: ToolFormat) -> None:
    """One feed of 1 MB must take under 5 s of CPU; small feeds (1..64 chars) too.

    Fed one character at a time (its first quarter: 262,144 Python calls), the bound is per call
    (20 µs). Measured on 2 slow cores: at most 2 s for the small feeds (JSON objects, hermes-json;
    1.3 µs a character from 128 KB to 1 MB); a quadratic parser would be hours over the bounds, not a
    few percent. This thread's CPU time, not wall time nor the process's (other tests' threads), so
    that a busy test machine does not fail it.
    """
    text = ADVERSARIAL[name]
    whole = _fresh(fmt, reasoning)
    started = time.thread_time()
    whole.feed(text)
    whole.finish("length")
    assert time.thread_time() - started < 5.0

    rng = random.Random(5)
    small = _fresh(fmt, reasoning)
    started = time.thread_time()
    pos = 0
    while pos < len(text):
        step = rng.randint(1, 64)
        small.feed(text[pos : pos + step])
        pos += step
    small.finish("length")
    assert time.thread_time() - started < 5.0

    single, quarter = _fresh(fmt, reasoning), text[: len(text) // 4]  # 262,144 calls keep the suite short
    started = time.thread_time()
    for ch in quarter:
        single.feed(ch)
    single.finish("length")
    assert time.thread_time() - started < 20e-6 * len(quarter)
