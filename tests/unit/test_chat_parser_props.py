"""Streaming equals non-streaming, for any chunking of the text and any grouping of token ids.

Plus the one timed test the issue asks for: adversarial megabyte outputs parse in linear time.
"""

from __future__ import annotations

import json
import random
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import TypeVar

import pytest
from _chat_tokenizer import real_qwen_tokenizer
from hypothesis import given, settings
from hypothesis import strategies as st

from qwenkit.chat.detokenize import TokenStreamParser
from qwenkit.chat.events import ContentDelta, Event, ReasoningDelta, ToolCallIds, coalesce
from qwenkit.chat.parser import OutputParser, parse_output


@dataclass(frozen=True)
class Case:
    name: str
    text: str
    starts_in_reasoning: bool
    reasoning: str
    content: str
    calls: tuple[tuple[str, dict[str, object]], ...] = ()
    finish: str = "stop"
    parse_tools: bool = True

    @property
    def expected_finish(self) -> str:
        return "tool_calls" if self.calls and self.finish == "stop" else self.finish


_WEATHER = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'
_TIME = '<tool_call>\n{"name": "get_time", "arguments": {"tz": "Asia/Tokyo", "fmt": "24h"}}\n</tool_call>'
_BAD = '<tool_call>\n{"name": "f", "arguments": {oops}\n</tool_call>'
_NOT_MARKERS = "Use <thi, </thin, <tool_cal, </tool_call and <think later; a < b <<tool"

CASES = [
    Case("reasoning_answer", "<think>\nThe user asks 2+2.\n\nThat is 4.\n</think>\n\nThe answer is **4**.\n",
         False, "The user asks 2+2.\n\nThat is 4.", "The answer is **4**."),
    Case("tool_call", f"<think>\nNeed the weather.\n</think>\n\n{_WEATHER}", False, "Need the weather.", "",
         (("get_weather", {"city": "Paris"}),)),
    Case("several_tool_calls", f"Checking both.\n{_WEATHER}\n{_TIME}\n", False, "", "Checking both.",
         (("get_weather", {"city": "Paris"}), ("get_time", {"tz": "Asia/Tokyo", "fmt": "24h"}))),
    Case("tool_call_in_think", f"<think>\nMaybe {_WEATHER} later.\n</think>\n\nNo call needed.", False,
         f"Maybe {_WEATHER} later.", "No call needed."),
    Case("malformed_json", f"Trying.\n{_BAD}\nDone.", False, "", f"Trying.\n{_BAD}\nDone."),
    Case("truncated_think", "Let me consider n even, so n = 2k and </thi", True,
         "Let me consider n even, so n = 2k and </thi", "", finish="length"),
    Case("only_close_think", "We need the capital.\n</think>\n\nParis.", True, "We need the capital.",
         "Paris."),
    Case("unicode", "<think>\n考虑一下 🤔 émoji 👨‍👩‍👧\n</think>\n\n答案是 42 🎉 — ça marche", False,
         "考虑一下 🤔 émoji 👨‍👩‍👧", "答案是 42 🎉 — ça marche"),
    Case("not_markers", _NOT_MARKERS, False, "", _NOT_MARKERS),
    Case("not_markers_in_think", f"<think>{_NOT_MARKERS}</think>ok", False, _NOT_MARKERS, "ok"),
    Case("unterminated_call", 'Sure.\n<tool_call>\n{"name": "f", "arguments": {"a": 1', False, "",
         'Sure.\n<tool_call>\n{"name": "f", "arguments": {"a": 1', finish="length"),
    Case("tools_off", f"Plain.\n{_WEATHER}", False, "", f"Plain.\n{_WEATHER}", parse_tools=False),
]
IDS = [c.name for c in CASES]


def _parser(case: Case) -> OutputParser:
    return OutputParser(
        starts_in_reasoning=case.starts_in_reasoning,
        parse_tools=case.parse_tools,
        tool_ids=ToolCallIds(seed=11),
    )


T = TypeVar("T")


def _chunks(items: Sequence[T], cuts: list[int]) -> list[Sequence[T]]:
    bounds = [0, *sorted(set(cuts)), len(items)]
    return [items[start:end] for start, end in pairwise(bounds)]


def _whole(case: Case) -> list[Event]:
    out = parse_output(
        case.text,
        starts_in_reasoning=case.starts_in_reasoning,
        parse_tools=case.parse_tools,
        finish_reason=case.finish,
        tool_ids=ToolCallIds(seed=11),
    )
    return coalesce(out.events)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_whole_parse_gives_the_expected_split(case: Case) -> None:
    out = parse_output(
        case.text, starts_in_reasoning=case.starts_in_reasoning, parse_tools=case.parse_tools,
        finish_reason=case.finish,
    )
    assert out.reasoning == case.reasoning
    assert out.content == case.content
    assert [(c.name, json.loads(c.arguments)) for c in out.tool_calls] == list(case.calls)
    assert out.finish_reason == case.expected_finish


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=IDS)
@settings(max_examples=1000, deadline=None)
@given(data=st.data())
def test_any_text_split_streams_the_same_events(case: Case, data: st.DataObject) -> None:
    cuts = data.draw(st.lists(st.integers(0, len(case.text)), max_size=40))
    parser = _parser(case)
    events: list[Event] = []
    for chunk in _chunks(case.text, cuts):
        events += parser.feed(str(chunk))
    events += parser.finish(case.finish)
    assert all(e.text for e in events if isinstance(e, (ReasoningDelta, ContentDelta)))
    assert coalesce(events) == _whole(case)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_one_character_at_a_time_streams_the_same_events(case: Case) -> None:
    parser = _parser(case)
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
    stream = TokenStreamParser(
        tok, starts_in_reasoning=case.starts_in_reasoning, parse_tools=case.parse_tools,
        tool_ids=ToolCallIds(seed=11),
    )
    events: list[Event] = []
    for group in _chunks(ids, cuts):
        events += stream.feed_ids(group)
    events += stream.finish(case.finish)
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
}


@pytest.mark.slow
@pytest.mark.parametrize("reasoning", [False, True])
@pytest.mark.parametrize("name", list(ADVERSARIAL))
def test_adversarial_megabyte_parses_in_linear_time(name: str, reasoning: bool) -> None:
    """One feed of 1 MB must take under 1 s; small feeds (1..64 chars) too.

    Feeding one byte at a time is a million Python calls, so its bound is per call (10 µs, several
    times the measured cost); a quadratic parser would be hours over the bound, not a few percent.
    CPU time, not wall time, so that a busy test machine does not fail it.
    """
    text = ADVERSARIAL[name]
    whole = OutputParser(starts_in_reasoning=reasoning, parse_tools=True)
    started = time.process_time()
    whole.feed(text)
    whole.finish("length")
    assert time.process_time() - started < 1.0

    rng = random.Random(5)
    small = OutputParser(starts_in_reasoning=reasoning, parse_tools=True)
    started = time.process_time()
    pos = 0
    while pos < len(text):
        step = rng.randint(1, 64)
        small.feed(text[pos : pos + step])
        pos += step
    small.finish("length")
    assert time.process_time() - started < 1.0

    single = OutputParser(starts_in_reasoning=reasoning, parse_tools=True)
    started = time.process_time()
    for ch in text:
        single.feed(ch)
    single.finish("length")
    assert time.process_time() - started < 10e-6 * len(text)
