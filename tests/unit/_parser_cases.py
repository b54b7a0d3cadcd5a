"""One table of model outputs -> expected reasoning, content and tool calls, for every tool format.

Each case is run whole, in random text chunkings, one character at a time and in random groupings
of the real tokenizer's ids (test_chat_parser_props.py): a stream must add up to the whole parse.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from qwenkit.catalog.schema import ToolFormat
from qwenkit.chat.events import ToolCallIds
from qwenkit.chat.parser import OutputParser
from qwenkit.chat.tool_parsers import TOOL_PARSERS, ToolContext, ToolSet

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "get_time",
            "parameters": {
                "type": "object",
                "properties": {"tz": {"type": "string"}, "fmt": {"enum": ["12h", "24h"]}},
                "required": ["tz"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "set_alarm",
            "parameters": {
                "type": "object",
                "properties": {
                    "hour": {"type": "integer"},
                    "ratio": {"type": "number"},
                    "repeat": {"type": "boolean"},
                    "days": {"type": "array", "items": {"type": "string"}},
                    "meta": {"type": "object"},
                    "note": {"type": ["string", "null"]},
                    "label": {"type": ["integer", "string"]},
                },
            },
        },
    },
    {"type": "function", "function": {"name": "now"}},
]

Calls = tuple[tuple[str, dict[str, object]], ...]


@dataclass(frozen=True)
class Case:
    name: str
    text: str
    starts_in_reasoning: bool
    reasoning: str
    content: str
    calls: Calls = ()
    finish: str = "stop"
    fmt: ToolFormat = ToolFormat.HERMES
    json_answers: bool = False

    @property
    def expected_finish(self) -> str:
        return "tool_calls" if self.calls and self.finish == "stop" else self.finish

    def parser(self) -> OutputParser:
        context = ToolContext(ToolSet(TOOLS), json_answers=self.json_answers)
        return OutputParser(
            starts_in_reasoning=self.starts_in_reasoning,
            tool_parser=TOOL_PARSERS[self.fmt](context),
            tool_ids=ToolCallIds(seed=11),
        )


def _json_case(name: str, text: str, content: str, calls: Calls = (), **kw: object) -> Case:
    """A Qwen2.5-Coder (hermes-json) answer with tools offered and tool_choice auto."""
    return Case(name, text, False, "", content, calls, fmt=ToolFormat.HERMES_JSON, json_answers=True, **kw)  # type: ignore[arg-type]


def _xml_case(name: str, text: str, content: str, calls: Calls = (), **kw: object) -> Case:
    return Case(name, text, False, "", content, calls, fmt=ToolFormat.QWEN3_CODER, **kw)  # type: ignore[arg-type]


_WEATHER = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'
_TIME = '<tool_call>\n{"name": "get_time", "arguments": {"tz": "Asia/Tokyo", "fmt": "24h"}}\n</tool_call>'
_BAD = '<tool_call>\n{"name": "f", "arguments": {oops}\n</tool_call>'
_NOT_MARKERS = "Use <thi, </thin, <tool_cal, </tool_call and <think later; a < b <<tool"
PARIS = (("get_weather", {"city": "Paris"}),)
TOKYO = ("get_time", {"tz": "Asia/Tokyo", "fmt": "24h"})

_BARE = '{"name": "get_weather", "arguments": {"city": "Paris"}}'
# What the real Qwen2.5-Coder-0.5B-Instruct answers to "What is the weather in Paris right now?".
_FENCED = '```json\n{\n    "name": "get_weather",\n    "arguments": {\n        "city": "Paris"\n    }\n}\n```'
# ... and to "Write a python function that adds two numbers." with get_weather offered.
_UNDECLARED = (
    '```json\n{\n    "name": "add_numbers",\n    "arguments": {\n        "a": 5,\n'
    '        "b": 3\n    }\n}\n```'
)
_LIST = '[{"name": "get_weather", "arguments": {"city": "Paris"}}, ' + json.dumps(
    {"name": TOKYO[0], "arguments": TOKYO[1]}
) + "]"


def _xml(name: str, **params: str) -> str:
    body = "".join(f"<parameter={key}>\n{value}\n</parameter>\n" for key, value in params.items())
    return f"<tool_call>\n<function={name}>\n{body}</function>\n</tool_call>"


_CODE = "def less(a, b):\n    return a < b  # </param> is not </parameter\n\n"

HERMES_CASES = [
    Case("reasoning_answer", "<think>\nThe user asks 2+2.\n\nThat is 4.\n</think>\n\nThe answer is **4**.\n",
         False, "The user asks 2+2.\n\nThat is 4.", "The answer is **4**."),
    Case("tool_call", f"<think>\nNeed the weather.\n</think>\n\n{_WEATHER}", False, "Need the weather.", "",
         PARIS),
    Case("several_tool_calls", f"Checking both.\n{_WEATHER}\n{_TIME}\n", False, "", "Checking both.",
         (*PARIS, TOKYO)),
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
    Case("undeclared_block_is_a_call", '<tool_call>\n{"name": "f", "arguments": {"a": 1}}\n</tool_call>',
         False, "", "", (("f", {"a": 1}),)),
    Case("tools_off", f"Plain.\n{_WEATHER}", False, "", f"Plain.\n{_WEATHER}", fmt=ToolFormat.NONE),
    Case("react_is_text", f"Thought: weather.\n{_WEATHER}", False, "", f"Thought: weather.\n{_WEATHER}",
         fmt=ToolFormat.REACT),
    Case("plain_hermes_ignores_json_answers", _BARE, False, "", _BARE),
]

JSON_CASES = [
    _json_case("bare_json_call", _BARE, "", PARIS),
    _json_case("fenced_json_call", _FENCED, "", PARIS),
    _json_case("fence_without_language", f"\n```\n{_BARE}\n```\n", "", PARIS),
    _json_case("spaces_around_the_fence", f"  ```JSON  \n  {_BARE}  \n  ```  \n\n", "", PARIS),
    _json_case("list_of_calls", _LIST, "", (*PARIS, TOKYO)),
    _json_case("arguments_as_a_string", '{"name": "get_weather", "arguments": "{\\"city\\": \\"Paris\\"}"}',
               "", PARIS),
    _json_case("escapes_and_unicode",
               '{"name": "get_weather", "arguments": {"city": "S\\u00e3o \\"SP\\" 東京"}}', "",
               (("get_weather", {"city": 'São "SP" 東京'}),)),
    _json_case("no_arguments_for_a_tool_without_schema", '{"name": "now"}', "", (("now", {}),)),
    _json_case("undeclared_tool_is_content", _UNDECLARED, _UNDECLARED),
    _json_case("missing_required_argument", '{"name": "get_weather", "arguments": {"town": "Paris"}}',
               '{"name": "get_weather", "arguments": {"town": "Paris"}}'),
    _json_case("argument_of_the_wrong_type", '{"name": "get_weather", "arguments": {"city": 75}}',
               '{"name": "get_weather", "arguments": {"city": 75}}'),
    _json_case("enum_violation", '{"name": "get_time", "arguments": {"tz": "UTC", "fmt": "36h"}}',
               '{"name": "get_time", "arguments": {"tz": "UTC", "fmt": "36h"}}'),
    _json_case("extra_key_is_data", '{"name": "get_weather", "arguments": {"city": "Paris"}, "id": 1}',
               '{"name": "get_weather", "arguments": {"city": "Paris"}, "id": 1}'),
    _json_case("json_that_is_not_a_call", '{"city": "Paris"}', '{"city": "Paris"}'),
    _json_case("text_after_the_json", f"{_BARE}\nThat is the call.", f"{_BARE}\nThat is the call."),
    _json_case("text_before_the_json", f"Sure: {_BARE}", f"Sure: {_BARE}"),
    _json_case("text_after_the_fence", f"{_FENCED}\nDone.", f"{_FENCED}\nDone."),
    _json_case("two_fences", f"{_FENCED}\n{_FENCED}", f"{_FENCED}\n{_FENCED}"),
    _json_case("python_fence", "```python\nprint({'name': 1})\n```", "```python\nprint({'name': 1})\n```"),
    _json_case("unclosed_fence", f"```json\n{_BARE}\n", f"```json\n{_BARE}"),
    _json_case("truncated_json", '{"name": "get_weather", "arguments": {"city": "Par',
               '{"name": "get_weather", "arguments": {"city": "Par', finish="length"),
    _json_case("not_json_after_brace", "{ this is prose in braces }", "{ this is prose in braces }"),
    _json_case("empty_list", "[]", "[]"),
    _json_case("one_bad_item_spoils_the_list",
               '[{"name": "get_weather", "arguments": {"city": "Paris"}}, {"name": "nope"}]',
               '[{"name": "get_weather", "arguments": {"city": "Paris"}}, {"name": "nope"}]'),
    _json_case("hermes_block_still_works", f"Checking.\n{_WEATHER}", "Checking.", PARIS),
    _json_case("prose_answer", "The weather tool needs a city.", "The weather tool needs a city."),
    Case("json_call_after_reasoning", f"<think>\nNeed weather.\n</think>\n\n{_BARE}", False, "Need weather.",
         "", PARIS, fmt=ToolFormat.HERMES_JSON, json_answers=True),
    Case("json_answers_off_is_content", _BARE, False, "", _BARE, fmt=ToolFormat.HERMES_JSON),
]

XML_CASES = [
    _xml_case("xml_call", _xml("get_weather", city="Paris"), "", PARIS),
    _xml_case("xml_after_content", "I will check.\n\n" + _xml("get_weather", city="Paris"), "I will check.",
              PARIS),
    _xml_case("xml_typed_values",
              _xml("set_alarm", hour="7", ratio="0.5", repeat="True", days='["mon", "tue"]',
                   meta='{"k": [1, 2]}', note="null", label="12"),
              "", (("set_alarm", {"hour": 7, "ratio": 0.5, "repeat": True, "days": ["mon", "tue"],
                                  "meta": {"k": [1, 2]}, "note": None, "label": 12}),)),
    _xml_case("xml_values_that_are_not_their_type_stay_text",
              _xml("set_alarm", hour="seven", repeat="maybe", days="mon", label="L1"),
              "", (("set_alarm", {"hour": "seven", "repeat": "maybe", "days": "mon", "label": "L1"}),)),
    _xml_case("xml_multiline_code_value", _xml("get_weather", city=_CODE), "",
              (("get_weather", {"city": _CODE}),)),
    _xml_case("xml_undeclared_tool_keeps_strings", _xml("lookup", q="42"), "", (("lookup", {"q": "42"}),)),
    _xml_case("xml_two_calls", _xml("get_weather", city="Paris") + "\n" + _xml("now"), "",
              (*PARIS, ("now", {}))),
    _xml_case("xml_json_body_from_a_grammar", _WEATHER, "", PARIS),
    _xml_case("xml_missing_parameter_close",
              "<tool_call>\n<function=get_weather>\n<parameter=city>\nParis\n</function>\n</tool_call>",
              "<tool_call>\n<function=get_weather>\n<parameter=city>\nParis\n</function>\n</tool_call>"),
    _xml_case("xml_text_after_function", _xml("now").replace("</function>", "</function>junk"),
              _xml("now").replace("</function>", "</function>junk")),
]

CASES = HERMES_CASES + JSON_CASES + XML_CASES
IDS = [c.name for c in CASES]
