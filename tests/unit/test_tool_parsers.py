"""The tool-parser registry, format choice by template, schema checks, and what a stream holds back."""

from __future__ import annotations

import json

import pytest
from _parser_cases import TOOLS

from qwenkit.catalog.schema import ToolFormat
from qwenkit.chat.events import ContentDelta, Done, ToolCall
from qwenkit.chat.parser import OutputParser, parse_output
from qwenkit.chat.template import builtin_template
from qwenkit.chat.tool_parsers import (
    TOOL_PARSERS,
    HermesJsonParser,
    HermesParser,
    PlainText,
    Qwen3CoderParser,
    ToolSet,
    format_for_template,
    make_tool_parser,
)
from qwenkit.chat.tool_parsers.qwen3_coder import convert_value
from qwenkit.errors import UsageError

# The lines of Qwen3-Coder's chat template that spell its call format.
QWEN3_CODER_TEMPLATE = (
    "{{- '<tool_call>\\n<function=' + tool_call.name + '>\\n' }}"
    "{{- '<parameter=' + args_name + '>\\n' }}{{- '\\n</parameter>\\n' }}{{- '</function>\\n</tool_call>' }}"
)
FENCED = '```json\n{\n    "name": "get_weather",\n    "arguments": {\n        "city": "Paris"\n    }\n}\n```'


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        (builtin_template("qwen2.5"), ToolFormat.HERMES_JSON),
        (builtin_template("qwen3"), ToolFormat.HERMES_JSON),
        (QWEN3_CODER_TEMPLATE, ToolFormat.QWEN3_CODER),
        ("{% for m in messages %}{{ m.content }}{% endfor %}", ToolFormat.NONE),
        (None, ToolFormat.NONE),
    ],
    ids=["qwen2.5", "qwen3", "qwen3-coder", "no-tools", "none"],
)
def test_format_for_template(source: str | None, expected: ToolFormat) -> None:
    assert format_for_template(source) is expected


def test_every_format_has_a_parser_and_names_choose_it() -> None:
    assert set(TOOL_PARSERS) == set(ToolFormat)
    assert isinstance(make_tool_parser("hermes-json", TOOLS, json_answers=True), HermesJsonParser)
    assert isinstance(make_tool_parser(ToolFormat.QWEN3_CODER, TOOLS), Qwen3CoderParser)
    assert isinstance(make_tool_parser("hermes", TOOLS), HermesParser)
    assert isinstance(make_tool_parser("react", TOOLS), PlainText)
    assert isinstance(make_tool_parser("hermes-json", None), PlainText)  # no tools offered: no parsing
    with pytest.raises(UsageError, match="unknown tool format 'xml'"):
        make_tool_parser("xml", TOOLS)


def _json_answer(text: str, tools: list[dict[str, object]]) -> tuple[str, list[tuple[str, object]]]:
    out = parse_output(
        text, starts_in_reasoning=False, tool_parser=make_tool_parser("hermes-json", tools, json_answers=True)
    )
    return out.content, [(c.name, json.loads(c.arguments)) for c in out.tool_calls]


def _tool(parameters: object) -> dict[str, object]:
    return {"type": "function", "function": {"name": "get_weather", "parameters": parameters}}


def test_a_schema_that_cannot_be_applied_accepts_no_json_answer() -> None:
    bare = '{"name": "get_weather", "arguments": {"city": "Paris"}}'
    assert _json_answer(bare, [_tool({"type": "nonsense"})]) == (bare, [])
    # A remote $ref is never fetched: the answer stays content rather than reaching the network.
    remote = {"$ref": "https://example.invalid/schema.json"}
    assert _json_answer(bare, [_tool(remote)]) == (bare, [])
    local = {"$defs": {"c": {"type": "string"}}, "properties": {"city": {"$ref": "#/$defs/c"}}}
    assert _json_answer(bare, [_tool(local)]) == ("", [("get_weather", {"city": "Paris"})])


def test_a_tool_without_parameters_takes_any_arguments() -> None:
    tools: list[dict[str, object]] = [{"type": "function", "function": {"name": "get_weather"}}]
    assert _json_answer(FENCED, tools) == ("", [("get_weather", {"city": "Paris"})])


def test_toolset_reads_openai_shaped_tools() -> None:
    tools = ToolSet(TOOLS)
    assert tools and not ToolSet(None) and not ToolSet([])
    weather = tools.get("get_weather")
    assert weather is not None and weather.accepts({"city": "Paris"}) and not weather.accepts({})
    assert tools.get("missing") is None


def _stream(parser: OutputParser, pieces: list[str]) -> list[list[object]]:
    return [parser.feed(p) for p in pieces]


def test_a_possible_json_call_is_held_until_finish() -> None:
    parser = OutputParser(
        starts_in_reasoning=False, tool_parser=make_tool_parser("hermes-json", TOOLS, json_answers=True)
    )
    lines = [line + "\n" for line in FENCED.split("\n")]
    assert all(events == [] for events in _stream(parser, lines))
    call, done = parser.finish()
    assert isinstance(call, ToolCall) and (call.name, call.arguments) == ("get_weather", '{"city": "Paris"}')
    assert done == Done("tool_calls")


@pytest.mark.parametrize(
    ("pieces", "released_at"),
    [
        (["```", "py", "thon\nprint(1)\n```"], 1),  # "p" cannot follow an opening fence of JSON
        (["{", " this", " is prose"], 1),  # "t" cannot follow "{ "
        (['{"name": "get_weather", "arguments": {"city": "Paris"}}', "\n", "Done."], 2),
        (["  Sure", ", here."], 0),
        ([FENCED, "\n", "Anything", " else?"], 2),
    ],
    ids=["python-fence", "prose-in-braces", "text-after-json", "prose", "text-after-fence"],
)
def test_an_answer_is_released_as_soon_as_it_cannot_be_a_call(pieces: list[str], released_at: int) -> None:
    parser = OutputParser(
        starts_in_reasoning=False, tool_parser=make_tool_parser("hermes-json", TOOLS, json_answers=True)
    )
    streamed = _stream(parser, pieces)
    assert all(events == [] for events in streamed[:released_at])
    released = streamed[released_at]
    assert released and all(isinstance(e, ContentDelta) for e in released)
    text = "".join(e.text for e in released if isinstance(e, ContentDelta))
    assert text == "".join(pieces[: released_at + 1])


@pytest.mark.parametrize(
    ("text", "schema", "expected"),
    [
        ("42", {"type": "integer"}, 42),
        ("-7", {"type": "integer"}, -7),
        ("4.0", {"type": "integer"}, "4.0"),
        ("2.5", {"type": "number"}, 2.5),
        ("3", {"type": "number"}, 3),
        ("FALSE", {"type": "boolean"}, False),
        ("null", {"type": "integer"}, None),
        ("null", {"type": "string"}, "null"),
        ('{"a": 1}', {"type": "object"}, {"a": 1}),
        ("[1]", {"type": "object"}, "[1]"),
        (" padded ", {"type": "string"}, " padded "),
        ("x", None, "x"),
        ("5", {"enum": [5]}, "5"),
    ],
)
def test_qwen3_coder_values_take_their_declared_type(text: str, schema: dict[str, object] | None,
                                                     expected: object) -> None:
    assert convert_value(text, schema) == expected


NUMBERS = {"type": "object", "properties": {"n": {"type": "number"}, "a": {"type": "array"},
                                            "o": {"type": "object"}}}
NUMBERS_TOOL = [{"type": "function", "function": {"name": "f", "parameters": NUMBERS}}]
_XML = "<tool_call>\n<function=f>\n<parameter={}>\n{}\n</parameter>\n</function>\n</tool_call>"


@pytest.mark.parametrize(
    ("fmt", "text", "json_answers"),
    [
        ("qwen3_coder", _XML.format("n", "1e400"), False),
        ("qwen3_coder", _XML.format("a", "[NaN, Infinity]"), False),
        ("qwen3_coder", _XML.format("o", '{"x": -Infinity}'), False),
        ("hermes", '<tool_call>\n{"name": "f", "arguments": {"n": NaN}}\n</tool_call>', False),
        ("hermes", '<tool_call>{"name": "f", "arguments": "{\\"n\\": Infinity}"}</tool_call>', False),
        ("hermes", '<tool_call>{"name": "f", "arguments": {"n": 1e400}}</tool_call>', False),
        ("hermes-json", '{"name": "f", "arguments": {"n": 1e400}}', True),
    ],
)
def test_arguments_are_always_json_a_client_can_parse(fmt: str, text: str, json_answers: bool) -> None:
    """Python's json reads NaN, Infinity and 1e400 (as inf) and writes them back as bare NaN/Infinity,
    which JSON.parse and other strict parsers refuse: such a value stays text, or the block stays content."""
    fmt = fmt.replace("_", "-")
    out = parse_output(text, starts_in_reasoning=False,
                       tool_parser=make_tool_parser(fmt, NUMBERS_TOOL, json_answers=json_answers))
    def not_json(name: str) -> None:
        pytest.fail(f"{name} in the arguments of {text!r}")

    for call in out.tool_calls:
        assert call.name == "f"
        json.loads(call.arguments, parse_constant=not_json)
    if not out.tool_calls:
        assert out.content == text
