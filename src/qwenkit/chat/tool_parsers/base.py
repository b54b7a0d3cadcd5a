"""What every tool parser shares: its output pieces, the declared tools, and ``<tool_call>`` blocks.

A tool parser sees only the answer channel (text after any reasoning) and turns it into pieces:
plain strings (content, in order) and ``ParsedCall``s. The output parser around it trims content
newlines and gives calls their ids, so each format only decides what is a call.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeAlias

from qwenkit.chat.messages import normalize_tools

TOOL_OPEN = "<tool_call>"
TOOL_CLOSE = "</tool_call>"


@dataclass(frozen=True)
class ParsedCall:
    """A recognised call; ``arguments`` is a JSON object serialised as OpenAI sends it."""

    name: str
    arguments: str


Piece: TypeAlias = "str | ParsedCall"


class ToolParser(Protocol):
    """An incremental state machine over the answer text: ``feed`` deltas, then ``finish`` once."""

    def feed(self, text: str) -> list[Piece]: ...

    def finish(self) -> list[Piece]: ...


def partial_marker_len(text: str, marker: str) -> int:
    """Length of the longest suffix of ``text`` that is a proper prefix of ``marker`` (0 if none).

    Every marker has its only ``<`` first, so the one candidate is the last ``<`` in the final
    ``len(marker) - 1`` characters: one bounded ``rfind``, whatever the buffer size.
    """
    pos = text.rfind("<", max(0, len(text) - len(marker) + 1))
    if pos < 0:
        return 0
    return len(text) - pos if marker.startswith(text[pos:]) else 0


@dataclass
class DeclaredTool:
    """One offered function: its name and JSON-schema parameters (None: any object)."""

    name: str
    parameters: Mapping[str, Any] | None
    _check: Callable[[Any], bool] | None = field(default=None, repr=False)

    def accepts(self, arguments: Mapping[str, Any]) -> bool:
        """True when ``arguments`` validate against the parameters schema (compiled once)."""
        if self.parameters is None:
            return True
        if self._check is None:
            self._check = _schema_check(self.parameters)
        return self._check(arguments)

    def property_schema(self, key: str) -> Mapping[str, Any] | None:
        props = self.parameters.get("properties") if self.parameters else None
        value = props.get(key) if isinstance(props, Mapping) else None
        return value if isinstance(value, Mapping) else None


def _schema_check(schema: Mapping[str, Any]) -> Callable[[Any], bool]:
    """A validator for ``schema``; a schema that cannot be applied accepts nothing."""
    import jsonschema
    import referencing.exceptions

    failures = (
        jsonschema.exceptions.SchemaError,
        referencing.exceptions.Unresolvable,
        RecursionError,
        TypeError,
        ValueError,
    )
    try:
        cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
        cls.check_schema(schema)
        validator = cls(schema)
    except failures:
        return lambda _args: False

    def check(arguments: Any) -> bool:
        try:
            return bool(validator.is_valid(arguments))
        except failures:  # e.g. a $ref that points nowhere (remote refs are never fetched)
            return False

    return check


class ToolSet:
    """The tools a request offered, by name."""

    def __init__(self, tools: Sequence[Any] | None = None) -> None:
        self._tools: dict[str, DeclaredTool] = {}
        for spec in normalize_tools(list(tools or ())) or ():
            fn = spec.schema.get("function", spec.schema)
            params = fn.get("parameters") if isinstance(fn, dict) else None
            self._tools[spec.name] = DeclaredTool(spec.name, params if isinstance(params, dict) else None)

    def __bool__(self) -> bool:
        return bool(self._tools)

    def get(self, name: str) -> DeclaredTool | None:
        return self._tools.get(name)


@dataclass(frozen=True)
class ToolContext:
    """What a tool parser may use: the offered tools, and whether a whole-answer JSON call counts
    (tool_choice ``auto`` with no grammar constraining the output)."""

    tools: ToolSet
    json_answers: bool = False


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e400: json.loads makes it inf, which json.dumps writes as Infinity
        raise ValueError(f"{text} overflows a double")
    return value


def strict_json(text: str) -> Any:
    """``json.loads`` without Python's extensions: NaN, Infinity and numbers that overflow a double are
    refused (ValueError), since arguments holding them would not parse in a client."""
    return json.loads(text, parse_constant=_refuse_constant, parse_float=_finite)


def call_from_object(obj: Any, *, allow_extra_keys: bool) -> ParsedCall | None:
    """``{"name": str, "arguments": object | JSON-string}`` as a call, else None.

    Missing arguments mean ``{}``. ``allow_extra_keys`` False refuses any other key: a whole answer
    with more in it is data, not a call.
    """
    if not isinstance(obj, dict):
        return None
    if not allow_extra_keys and not set(obj) <= {"name", "arguments"}:
        return None
    name = obj.get("name")
    if not isinstance(name, str) or not name.strip():
        return None
    args = obj.get("arguments", {})
    if isinstance(args, str):  # some fine-tunes send the arguments already serialised
        try:
            args = strict_json(args)
        except (ValueError, RecursionError):
            return None
    if not isinstance(args, dict):
        return None
    try:  # an object parsed by the caller may hold inf or NaN
        return ParsedCall(name, json.dumps(args, ensure_ascii=False, allow_nan=False))
    except ValueError:
        return None


def hermes_body(body: str) -> ParsedCall | None:
    """A Hermes block body: ``{"name": ..., "arguments": {...}}`` (other keys ignored)."""
    try:
        obj = strict_json(body)
    except (ValueError, RecursionError):
        return None
    return call_from_object(obj, allow_extra_keys=True)


class BlockParser:
    """Content with ``<tool_call>`` ... ``</tool_call>`` blocks; ``body`` turns a block into a call.

    Held back: at most a partial ``<tool_call>`` at the end of content, and an open block. A block
    whose body is not a call, or that never closes, goes back as content verbatim, markers included.
    """

    def __init__(self, body: Callable[[str], ParsedCall | None]) -> None:
        self._body = body
        self._in_block = False
        self._held = ""  # a partial <tool_call> at the end of content
        self._parts: list[str] = []  # the open block's body so far
        self._tail = ""  # its last len(TOOL_CLOSE)-1 chars, to find a split close marker

    def feed(self, text: str) -> list[Piece]:
        out: list[Piece] = []
        while text:
            text = self._in_tool(text, out) if self._in_block else self._in_content(text, out)
        return out

    def finish(self) -> list[Piece]:
        # an unterminated block is not a call: it goes back as content
        text = TOOL_OPEN + "".join(self._parts) if self._in_block else self._held
        self._held, self._parts, self._in_block = "", [], False
        return [text] if text else []

    def _in_content(self, text: str, out: list[Piece]) -> str:
        buf = self._held + text
        self._held = ""
        idx = buf.find(TOOL_OPEN)
        if idx >= 0:
            if idx:
                out.append(buf[:idx])
            self._in_block = True
            return buf[idx + len(TOOL_OPEN) :]
        keep = partial_marker_len(buf, TOOL_OPEN)
        if len(buf) > keep:
            out.append(buf[: len(buf) - keep])
        self._held = buf[len(buf) - keep :]
        return ""

    def _in_tool(self, text: str, out: list[Piece]) -> str:
        window = self._tail + text
        idx = window.find(TOOL_CLOSE)
        self._parts.append(text)
        if idx < 0:
            self._tail = window[-(len(TOOL_CLOSE) - 1) :]
            return ""
        whole = "".join(self._parts)
        body = whole[: len(whole) - len(window) + idx]
        self._parts, self._tail, self._in_block = [], "", False
        call = self._body(body)
        out.append(call if call is not None else TOOL_OPEN + body + TOOL_CLOSE)
        return window[idx + len(TOOL_CLOSE) :]


class PlainText:
    """No tool parsing: everything is content (Qwen 1.x ReAct text, or no tools offered)."""

    def __init__(self, context: ToolContext | None = None) -> None:
        del context

    def feed(self, text: str) -> list[Piece]:
        return [text] if text else []

    def finish(self) -> list[Piece]:
        return []
