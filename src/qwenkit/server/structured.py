"""response_format and tool_choice -> a grammar for constrained decoding.

JSON schemas become GBNF through llama-cpp-python's maintained converter (a port of llama.cpp's own
``json_schema_to_grammar``) or, where only vLLM is installed, through xgrammar's (vLLM's grammar engine,
whose EBNF is what vLLM then parses). The grammar goes into ``ChatParams.grammar``; the llama.cpp
backend applies it with ``llama_sampler_init_grammar``, vLLM with its structured-output parameters, so
every sampled token keeps the output inside the schema.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from qwenkit.engine.types import Backend, Capability
from qwenkit.errors import MissingDependencyError, UsageError
from qwenkit.server.protocol_chat import (
    ChatCompletionRequest,
    JSONObjectFormat,
    JSONSchemaFormat,
    NamedToolChoice,
    ToolDef,
)

CALL_RULE = "qwenkit-tool-call-json"
# JSON (RFC 8259) forbids raw control characters inside strings; the converter's char rule allows them.
_LOOSE_CHAR = 'char ::= [^"\\\\] |'
_STRICT_CHAR = 'char ::= [^"\\\\\\x7F\\x00-\\x1F] |'


@dataclass(frozen=True)
class Constraint:
    """What a chat request's response_format / tool_choice mean for generation."""

    grammar: str | None = None
    tools: tuple[Mapping[str, Any], ...] | None = None  # what the chat template sees
    forbids_thinking: bool = False  # a grammar from the first token leaves no room for <think>


@functools.cache  # a failed import is retried by Python on every call: look once
def _llama_cpp_converter() -> Callable[[str], str] | None:
    try:
        from llama_cpp.llama_grammar import json_schema_to_gbnf
    except ImportError:
        return None
    return lambda schema: json_schema_to_gbnf(schema).replace(_LOOSE_CHAR, _STRICT_CHAR)


@functools.cache
def _xgrammar_converter() -> Callable[[str], str] | None:
    try:
        import xgrammar
    except ImportError:
        return None
    # Compact JSON: a model cannot spend its tokens on whitespace between the values.
    return lambda schema: str(
        xgrammar.Grammar.from_json_schema(schema, any_whitespace=False, strict_mode=True)
    )


# In order of preference: the first one installed converts (llama.cpp's GBNF is also valid xgrammar).
_CONVERTERS: tuple[Callable[[], Callable[[str], str] | None], ...] = (
    _llama_cpp_converter,
    _xgrammar_converter,
)


def schema_to_gbnf(schema: Mapping[str, Any], param: str) -> str:
    """A JSON schema as a grammar whose root rule matches exactly the JSON it allows."""
    convert = next((c for c in (make() for make in _CONVERTERS) if c is not None), None)
    if convert is None:
        raise MissingDependencyError.for_extra("llama_cpp", "llama")
    try:
        return convert(json.dumps(schema))
    except (RecursionError, ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
        raise UsageError(f"{param} cannot be turned into a grammar: {exc}", param=param) from exc
    except Exception as exc:  # the converters raise bare Exception / RuntimeError for unsupported constructs
        raise UsageError(f"{param} is not supported: {exc}", param=param) from exc


def response_format_grammar(fmt: object) -> str | None:
    if isinstance(fmt, JSONObjectFormat):
        return schema_to_gbnf({"type": "object"}, "response_format")
    if isinstance(fmt, JSONSchemaFormat):
        return schema_to_gbnf(fmt.json_schema.schema_, "response_format.json_schema.schema")
    return None


def _call_schema(tool: ToolDef) -> dict[str, Any]:
    params = tool.function.parameters or {"type": "object"}
    return {
        "type": "object",
        "properties": {"name": {"const": tool.function.name}, "arguments": params},
        "required": ["name", "arguments"],
    }


def tool_call_grammar(tools: Sequence[ToolDef], *, many: bool) -> str:
    """Qwen's ``<tool_call>\\n{"name": ..., "arguments": {...}}\\n</tool_call>`` blocks, nothing else."""
    schema: dict[str, Any] = (
        _call_schema(tools[0]) if len(tools) == 1 else {"anyOf": [_call_schema(t) for t in tools]}
    )
    body = schema_to_gbnf(schema, "tools")
    body = "\n".join(
        line.replace("root ::=", f"{CALL_RULE} ::=", 1) if line.startswith("root ::=") else line
        for line in body.splitlines()
    )
    block = f'"<tool_call>\\n" {CALL_RULE} "\\n</tool_call>"'
    root = f'root ::= {block} ("\\n" {block})*' if many else f"root ::= {block}"
    return f"{root}\n{body}\n"


def _tool_dicts(tools: Sequence[ToolDef]) -> tuple[Mapping[str, Any], ...]:
    return tuple(t.model_dump(exclude_none=True) for t in tools)


def _named_tool(req: ChatCompletionRequest, choice: NamedToolChoice) -> ToolDef:
    for tool in req.tools or ():
        if tool.function.name == choice.function.name:
            return tool
    raise UsageError(
        f"tool_choice names function {choice.function.name!r}, which is not in tools",
        param="tool_choice.function.name",
    )


def plan_constraint(req: ChatCompletionRequest, backend: Backend) -> Constraint:
    """Turn response_format and tool_choice into a grammar and the tools the template sees."""
    choice = req.tool_choice
    tools = req.tools or []
    if choice == "none" or not tools:
        if isinstance(choice, NamedToolChoice) or choice == "required":
            raise UsageError("tool_choice requires tools", param="tool_choice")
        return _format_only(req, backend)
    forced = choice == "required" or isinstance(choice, NamedToolChoice)
    if not forced:
        grammar = _grammar_for_format(req, backend)
        return Constraint(grammar, _tool_dicts(tools), grammar is not None)
    if req.response_format is not None and req.response_format.type != "text":
        raise UsageError(
            "response_format cannot be combined with a forced tool_choice", param="response_format"
        )
    named = _named_tool(req, choice) if isinstance(choice, NamedToolChoice) else None
    _require_grammar(backend, "tool_choice 'required' or a named function")
    if named is not None:
        grammar = tool_call_grammar([named], many=False)
    else:
        grammar = tool_call_grammar(tools, many=req.parallel_tool_calls is not False)
    return Constraint(grammar, _tool_dicts(tools), True)


def _format_only(req: ChatCompletionRequest, backend: Backend) -> Constraint:
    grammar = _grammar_for_format(req, backend)
    return Constraint(grammar, None, grammar is not None)


def _grammar_for_format(req: ChatCompletionRequest, backend: Backend) -> str | None:
    fmt = req.response_format
    if fmt is None or fmt.type == "text":
        return None
    _require_grammar(backend, "response_format")
    return response_format_grammar(fmt)


def _require_grammar(backend: Backend, what: str) -> None:
    if Capability.GRAMMAR not in backend.capabilities:
        raise UsageError(
            f"{what} is not supported by this backend ({backend.kind.display}: no constrained decoding)",
            param=what.split(" ")[0],
        )
