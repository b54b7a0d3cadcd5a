"""OpenAI-shaped chat messages, normalised into typed dataclasses.

Callers hand us dicts, pydantic models (the OpenAI SDK's) or dataclasses; everything past this module
sees only ``Message``/``ToolCall``/``ToolSpec``, so a malformed request fails here with a ``UsageError``
naming the offending field instead of deep inside a Jinja template.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias, Union

from qwenkit.errors import UsageError

JSONValue: TypeAlias = Union[bool, int, float, str, list["JSONValue"], dict[str, "JSONValue"], None]  # noqa: UP007

IMAGE_PART_TYPES = ("image_url", "image")
# Separator between text parts of one message (what vLLM and llama.cpp use when a template wants a string).
TEXT_PART_SEPARATOR = "\n"


@dataclass(frozen=True)
class ToolCall:
    """One function call made by the assistant; ``arguments`` is a JSON object, or raw text if unparseable."""

    name: str
    arguments: dict[str, JSONValue] | str
    id: str | None = None


@dataclass(frozen=True)
class ImagePart:
    """An image in a message, as the caller referenced it.

    ``image`` is a data: URL, an http(s) URL or a path (strings), or a PIL image (Python API);
    nothing is read or fetched here: ``qwenkit.media`` loads it under the caller's rules, and only
    for a model that takes images. ``min_pixels``/``max_pixels`` bound its resized area.
    """

    image: Any
    min_pixels: int | None = None
    max_pixels: int | None = None


ContentPart: TypeAlias = Union[str, ImagePart]  # noqa: UP007


@dataclass(frozen=True)
class Message:
    role: str  # system | user | assistant | tool
    content: str | None = None
    reasoning_content: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    name: str | None = None
    parts: tuple[ContentPart, ...] | None = None  # set when content arrived as a list of parts

    @property
    def text_parts(self) -> tuple[str, ...] | None:
        return None if self.parts is None else tuple(p for p in self.parts if isinstance(p, str))

    @property
    def images(self) -> tuple[ImagePart, ...]:
        return () if self.parts is None else tuple(p for p in self.parts if isinstance(p, ImagePart))


@dataclass(frozen=True)
class ToolSpec:
    """A tool schema as the caller sent it (OpenAI ``{"type": "function", "function": {...}}``)."""

    schema: dict[str, JSONValue]

    @property
    def name(self) -> str:
        fn = self.schema.get("function", self.schema)
        return str(fn.get("name", "")) if isinstance(fn, dict) else ""


def to_plain(value: Any) -> Any:
    """Pydantic models and dataclasses (at any depth) become dicts; everything else is returned as-is."""
    if isinstance(value, Mapping):
        return {key: to_plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_plain(item) for item in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return to_plain(dump(exclude_none=True))
    return value


def _check_json(value: Any, param: str) -> JSONValue:
    """Only JSON data may reach a template: no objects with methods a template could call."""
    if value is None or type(value) in (bool, int, float, str):
        return value  # type: ignore[no-any-return]
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, Mapping):
        out: dict[str, JSONValue] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise UsageError(f"{param} has a non-string key {key!r}", param=param)
            out[str.__str__(key)] = _check_json(item, f"{param}.{key}")
        return out
    if isinstance(value, (list, tuple)):
        return [_check_json(item, f"{param}[{i}]") for i, item in enumerate(value)]
    raise UsageError(f"{param} must be JSON data, got {type(value).__name__}", param=param)


def _opt_str(raw: Mapping[str, Any], key: str, param: str) -> str | None:
    value = raw.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise UsageError(
            f"{param}.{key} must be a string, got {type(value).__name__}", param=f"{param}.{key}"
        )
    return str.__str__(value)


def _pixels(part: Mapping[str, Any], key: str, where: str) -> int | None:
    value = part.get(key)
    if value is None:
        return None
    if type(value) is not int or value < 1:
        raise UsageError(f"{where}.{key} must be a positive integer", param=f"{where}.{key}")
    return value


def _image_part(part: Mapping[str, Any], where: str) -> ImagePart:
    """OpenAI's ``{"type": "image_url", "image_url": {"url": ...}}`` (or the URL as a string, as vLLM
    accepts) and qwen_vl_utils' ``{"type": "image", "image": ...}``; vLLM's ``mm_processor_kwargs``
    names for the pixel bounds, on the part or inside ``image_url``."""
    key = "image_url" if part.get("type") == "image_url" else "image"
    ref = part.get(key)
    inner = ref if isinstance(ref, Mapping) else {}
    if isinstance(ref, Mapping):
        ref = ref.get("url")
        where_ref = f"{where}.{key}.url"
    else:
        where_ref = f"{where}.{key}"
    if isinstance(ref, str):
        if not ref.strip():
            raise UsageError(f"{where_ref} must not be empty", param=where_ref)
        ref = str.__str__(ref)
    elif ref is None or key == "image_url" or not hasattr(ref, "size"):
        raise UsageError(f"{where_ref} must be a URL string", param=where_ref)
    detail = inner.get("detail")
    if detail is not None and detail not in ("auto", "low", "high"):
        raise UsageError(f"{where}.{key}.detail must be auto, low or high", param=f"{where}.{key}.detail")
    bounds = {name: _pixels(inner, name, f"{where}.{key}") or _pixels(part, name, where)
              for name in ("min_pixels", "max_pixels")}
    return ImagePart(ref, **bounds)


def _content(
    raw: Mapping[str, Any], param: str, required: bool
) -> tuple[str | None, tuple[ContentPart, ...] | None]:
    value = raw.get("content")
    if value is None:
        if required:
            raise UsageError(
                f"{param}.content is required for a {raw.get('role')} message", param=f"{param}.content"
            )
        return None, None
    if isinstance(value, str):
        return str.__str__(value), None
    if isinstance(value, list):
        parts: list[ContentPart] = []
        for i, part in enumerate(value):
            where = f"{param}.content[{i}]"
            if isinstance(part, str):
                parts.append(str.__str__(part))
                continue
            kind = part.get("type", "text") if isinstance(part, Mapping) else type(part).__name__
            if isinstance(part, Mapping) and kind in IMAGE_PART_TYPES:
                parts.append(_image_part(part, where))
                continue
            if not isinstance(part, Mapping) or kind != "text":
                raise UsageError(f"{where}: parts are text or images, got {kind!r}", param=where)
            text = part.get("text")
            if not isinstance(text, str):
                raise UsageError(f"{where}.text must be a string", param=f"{where}.text")
            parts.append(str.__str__(text))
        text_only = [p for p in parts if isinstance(p, str)]
        return TEXT_PART_SEPARATOR.join(text_only), tuple(parts)
    raise UsageError(
        f"{param}.content must be a string or a list of text parts, got {type(value).__name__}",
        param=f"{param}.content",
    )


def _tool_call(raw: Any, param: str) -> ToolCall:
    if not isinstance(raw, Mapping):
        raise UsageError(f"{param} must be an object", param=param)
    fn = raw.get("function", raw)
    if not isinstance(fn, Mapping):
        raise UsageError(f"{param}.function must be an object", param=f"{param}.function")
    name = fn.get("name")
    if not isinstance(name, str) or not name:
        raise UsageError(f"{param}.function.name must be a non-empty string", param=f"{param}.function.name")
    args: Any = fn.get("arguments", {})
    if args is None:
        args = {}
    if isinstance(args, str):
        try:
            parsed = json.loads(args) if args.strip() else {}
        except json.JSONDecodeError:
            parsed = None
        # A JSON object string becomes the object (templates tojson it); anything else stays verbatim text.
        args = parsed if isinstance(parsed, dict) else str.__str__(args)
    if not isinstance(args, (str, Mapping)):
        where = f"{param}.function.arguments"
        raise UsageError(f"{where} must be a JSON object or a JSON string", param=where)
    checked = args if isinstance(args, str) else _check_json(args, f"{param}.function.arguments")
    return ToolCall(name=str.__str__(name), arguments=checked, id=_opt_str(raw, "id", param))  # type: ignore[arg-type]


def _no_images(parts: tuple[ContentPart, ...] | None, param: str, role: str) -> None:
    for j, part in enumerate(parts or ()):
        if isinstance(part, ImagePart):
            where = f"{param}.content[{j}]"
            raise UsageError(f"{where}: images go in user messages, not in a {role} message", param=where)


def _system(raw: Mapping[str, Any], param: str) -> Message:
    content, parts = _content(raw, param, required=True)
    _no_images(parts, param, "system")
    return Message("system", content, name=_opt_str(raw, "name", param), parts=parts)


def _user(raw: Mapping[str, Any], param: str) -> Message:
    content, parts = _content(raw, param, required=True)
    return Message("user", content, name=_opt_str(raw, "name", param), parts=parts)


def _assistant(raw: Mapping[str, Any], param: str) -> Message:
    calls_raw = raw.get("tool_calls") or []
    if not isinstance(calls_raw, list):
        raise UsageError(f"{param}.tool_calls must be a list", param=f"{param}.tool_calls")
    calls = tuple(_tool_call(c, f"{param}.tool_calls[{i}]") for i, c in enumerate(calls_raw))
    content, parts = _content(raw, param, required=False)
    _no_images(parts, param, "assistant")
    reasoning = _opt_str(raw, "reasoning_content", param)
    if reasoning is None:
        reasoning = _opt_str(raw, "reasoning", param)
    return Message(
        "assistant",
        content if content is not None else "",
        reasoning_content=reasoning,
        tool_calls=calls,
        name=_opt_str(raw, "name", param),
        parts=parts,
    )


def _tool(raw: Mapping[str, Any], param: str) -> Message:
    content, parts = _content(raw, param, required=True)
    _no_images(parts, param, "tool")
    return Message(
        "tool",
        content,
        tool_call_id=_opt_str(raw, "tool_call_id", param),
        name=_opt_str(raw, "name", param),
        parts=parts,
    )


ROLE_PARSERS: Mapping[str, Callable[[Mapping[str, Any], str], Message]] = {
    "system": _system,
    "developer": _system,  # OpenAI's newer name for the system role
    "user": _user,
    "assistant": _assistant,
    "tool": _tool,
}


def normalize_messages(messages: Sequence[Any]) -> tuple[Message, ...]:
    """Validate and convert caller messages; ``Message`` instances pass through unchanged."""
    if isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence):
        raise UsageError("messages must be a list of message objects", param="messages")
    if not messages:
        raise UsageError("messages must not be empty", param="messages")
    out = []
    for i, item in enumerate(messages):
        param = f"messages[{i}]"
        if isinstance(item, Message):
            out.append(item)
            continue
        raw = to_plain(item)
        if not isinstance(raw, Mapping):
            raise UsageError(f"{param} must be an object with a role, got {type(item).__name__}", param=param)
        role = raw.get("role")
        parser = ROLE_PARSERS.get(role) if isinstance(role, str) else None
        if parser is None:
            known = ", ".join(sorted(ROLE_PARSERS))
            raise UsageError(f"{param}.role {role!r} is not one of: {known}", param=f"{param}.role")
        out.append(parser(raw, param))
    return tuple(out)


def image_positions(messages: Sequence[Message]) -> list[tuple[int, int]]:
    """(message index, part index) of every image, in prompt order."""
    return [(i, j) for i, message in enumerate(messages) for j, part in enumerate(message.parts or ())
            if isinstance(part, ImagePart)]


def normalize_tools(tools: Sequence[Any] | None) -> tuple[ToolSpec, ...] | None:
    """Tool schemas must be JSON objects with a function name; they are passed to the template as given."""
    if tools is None:
        return None
    if isinstance(tools, (str, bytes, Mapping)) or not isinstance(tools, Sequence):
        raise UsageError("tools must be a list of tool schemas", param="tools")
    out = []
    for i, item in enumerate(tools):
        param = f"tools[{i}]"
        raw = item.schema if isinstance(item, ToolSpec) else to_plain(item)
        if not isinstance(raw, Mapping):
            raise UsageError(f"{param} must be an object", param=param)
        schema = _check_json(raw, param)
        spec = ToolSpec(schema)  # type: ignore[arg-type]
        if not spec.name:
            raise UsageError(
                f"{param}.function.name must be a non-empty string", param=f"{param}.function.name"
            )
        out.append(spec)
    return tuple(out)


def message_to_template(message: Message) -> dict[str, JSONValue]:
    """The dict a chat template sees; absent fields are left out (templates test ``is defined``)."""
    data: dict[str, JSONValue] = {"role": message.role, "content": message.content}
    if message.reasoning_content is not None:
        data["reasoning_content"] = message.reasoning_content
    if message.tool_calls:
        calls: list[JSONValue] = []
        for call in message.tool_calls:
            entry: dict[str, JSONValue] = {
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments},
            }
            if call.id is not None:
                entry["id"] = call.id
            calls.append(entry)
        data["tool_calls"] = calls
    if message.tool_call_id is not None:
        data["tool_call_id"] = message.tool_call_id
    if message.name is not None:
        data["name"] = message.name
    return data
