"""Tool-call parsers by name: a model's ``tool_format`` chooses how its answer becomes calls.

Catalog entries name their format (``ToolFormat``); a model the catalog does not know gets one from
its chat template (``format_for_template``). Every parser is an incremental state machine over the
answer text, so any chunking of a generation yields the same calls and content.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from qwenkit.catalog.schema import ToolFormat
from qwenkit.chat.tool_parsers.base import (
    TOOL_CLOSE,
    TOOL_OPEN,
    BlockParser,
    DeclaredTool,
    ParsedCall,
    Piece,
    PlainText,
    ToolContext,
    ToolParser,
    ToolSet,
    partial_marker_len,
)
from qwenkit.chat.tool_parsers.hermes import HermesJsonParser, HermesParser
from qwenkit.chat.tool_parsers.qwen3_coder import Qwen3CoderParser
from qwenkit.errors import UsageError

TOOL_PARSERS: Mapping[ToolFormat, Callable[[ToolContext], ToolParser]] = {
    ToolFormat.NONE: PlainText,
    ToolFormat.REACT: PlainText,  # ReAct is prompt text the caller parses; nothing to recognise
    ToolFormat.HERMES: HermesParser,
    ToolFormat.HERMES_JSON: HermesJsonParser,
    ToolFormat.QWEN3_CODER: Qwen3CoderParser,
}

# Template text that gives away a call format, most specific first.
_TEMPLATE_SIGNS: tuple[tuple[str, ToolFormat], ...] = (
    ("<function=", ToolFormat.QWEN3_CODER),
    (TOOL_OPEN, ToolFormat.HERMES_JSON),
)


def format_for_template(source: str | None) -> ToolFormat:
    """The call format a chat template teaches, for models the catalog does not know.

    ``<function=`` is Qwen3-Coder's XML form; ``<tool_call>`` alone is Hermes JSON, read with the
    JSON-answer fallback (it only fires on a whole answer that is a valid call of a declared tool);
    a template that never mentions calls gets none.
    """
    for sign, fmt in _TEMPLATE_SIGNS:
        if source and sign in source:
            return fmt
    return ToolFormat.NONE


def make_tool_parser(
    fmt: ToolFormat | str, tools: Sequence[Any] | None = None, *, json_answers: bool = False
) -> ToolParser:
    """A fresh parser for one generation. No tools offered means no tool parsing at all."""
    try:
        key = ToolFormat(fmt)
    except ValueError:
        known = ", ".join(f.value for f in ToolFormat)
        raise UsageError(f"unknown tool format {fmt!r}; known: {known}", param="tool_format") from None
    toolset = ToolSet(tools)
    if not toolset:
        return PlainText()
    return TOOL_PARSERS[key](ToolContext(toolset, json_answers=json_answers))


__all__ = [
    "TOOL_CLOSE",
    "TOOL_OPEN",
    "TOOL_PARSERS",
    "BlockParser",
    "DeclaredTool",
    "HermesJsonParser",
    "HermesParser",
    "ParsedCall",
    "Piece",
    "PlainText",
    "Qwen3CoderParser",
    "ToolContext",
    "ToolParser",
    "ToolSet",
    "format_for_template",
    "make_tool_parser",
    "partial_marker_len",
]
