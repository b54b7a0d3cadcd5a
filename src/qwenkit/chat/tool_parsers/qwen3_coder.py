"""Qwen3-Coder's XML calls: parameters as raw text, typed by the declared schema.

Its chat template writes each call as::

    <tool_call>
    <function=NAME>
    <parameter=KEY>
    value
    </parameter>
    </function>
    </tool_call>

One newline after ``<parameter=KEY>`` and one before ``</parameter>`` belong to the markup. A value
is text; it becomes an integer, number, boolean, null, object or array when the tool's schema
declares that type for the parameter and the text is one (else it stays a string, as vLLM's
``qwen3_coder`` parser does). A block whose body is JSON (what a forced ``tool_choice`` grammar
writes) is read as a Hermes body. Blocks naming an undeclared tool are calls, as in ``hermes``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any

from qwenkit.chat.tool_parsers.base import (
    BlockParser,
    ParsedCall,
    ToolContext,
    ToolSet,
    hermes_body,
    strict_json,
)

_FUNCTION_OPEN = re.compile(r"\s*<function=([^>\n]+)>")
_PARAMETER_OPEN = re.compile(r"\s*<parameter=([^>\n]+)>")
_FUNCTION_END = re.compile(r"\s*</function>\s*\Z")
PARAMETER_CLOSE = "</parameter>"
_INTEGER = re.compile(r"-?(?:0|[1-9][0-9]*)")
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")


def _integer(text: str) -> Any:
    if not _INTEGER.fullmatch(text):
        raise ValueError(text)
    return int(text)


def _number(text: str) -> Any:
    if not _NUMBER.fullmatch(text):
        raise ValueError(text)
    value = strict_json(text)  # 1e400 stays text, as in vLLM (whose conversion overflows)
    return int(value) if isinstance(value, float) and value.is_integer() and "." not in text else value


def _boolean(text: str) -> Any:
    lowered = text.lower()
    if lowered not in ("true", "false"):
        raise ValueError(text)
    return lowered == "true"


def _null(text: str) -> Any:
    if text != "null":
        raise ValueError(text)
    return None


def _json_of(kind: type) -> Callable[[str], Any]:
    def convert(text: str) -> Any:
        value = strict_json(text)
        if not isinstance(value, kind):
            raise ValueError(text)
        return value

    return convert


# JSON-schema type -> how a parameter's text becomes a value of that type (ValueError: it is not one).
CONVERTERS: Mapping[str, Callable[[str], Any]] = {
    "integer": _integer,
    "number": _number,
    "boolean": _boolean,
    "null": _null,
    "object": _json_of(dict),
    "array": _json_of(list),
}


def _declared_types(schema: Mapping[str, Any] | None) -> list[str]:
    kind = schema.get("type") if schema else None
    if isinstance(kind, str):
        return [kind]
    if isinstance(kind, list):
        return [k for k in kind if isinstance(k, str)]
    return ["string"]


def convert_value(text: str, schema: Mapping[str, Any] | None) -> Any:
    """A parameter's text as the first declared type it parses as; otherwise the text itself."""
    types = _declared_types(schema)
    for kind in types:
        converter = CONVERTERS.get(kind)
        if converter is None:
            continue
        try:
            return converter(text.strip())
        except (ValueError, RecursionError):
            continue
    if "string" not in types and text.strip() == "null":
        return None
    return text


def _strip_markup_newlines(value: str) -> str:
    if value.startswith("\n"):
        value = value[1:]
    return value[:-1] if value.endswith("\n") else value


def xml_body(body: str, tools: ToolSet) -> ParsedCall | None:
    """``<function=NAME>`` with its ``<parameter=KEY>`` values as a call, or None if malformed."""
    head = _FUNCTION_OPEN.match(body)
    if head is None:
        return None
    name = head.group(1).strip()
    tool = tools.get(name)
    args: dict[str, Any] = {}
    pos = head.end()
    while not _FUNCTION_END.match(body, pos):
        param = _PARAMETER_OPEN.match(body, pos)
        if param is None:
            return None
        end = body.find(PARAMETER_CLOSE, param.end())
        if end < 0:
            return None
        key = param.group(1).strip()
        text = _strip_markup_newlines(body[param.end() : end])
        args[key] = convert_value(text, tool.property_schema(key) if tool else None)
        pos = end + len(PARAMETER_CLOSE)
    if not name:
        return None
    return ParsedCall(name, json.dumps(args, ensure_ascii=False))


class Qwen3CoderParser(BlockParser):
    def __init__(self, context: ToolContext) -> None:
        tools = context.tools

        def body(text: str) -> ParsedCall | None:
            if text.lstrip().startswith("{"):
                return hermes_body(text)
            return xml_body(text, tools)

        super().__init__(body)
