"""The chat layer: messages in, injection-safe prompt ids out; model output in, typed events out.

Backend-independent: every backend and the server share this one implementation.
"""

from __future__ import annotations

from qwenkit.chat.answers import boxed_answers, extract_boxed_answer
from qwenkit.chat.builders import (
    FimPrompt,
    RepoFile,
    coding_task,
    encode_fim,
    encode_repo,
    math_boxed,
    multilingual_answer,
    step_by_step,
)
from qwenkit.chat.detokenize import IncrementalDetokenizer, TokenStreamParser
from qwenkit.chat.encode import EncodedPrompt, encode_chat
from qwenkit.chat.events import ContentDelta, Done, Event, ParsedOutput, ReasoningDelta, ToolCallIds
from qwenkit.chat.events import ToolCall as ToolCallEvent
from qwenkit.chat.loop_guard import LoopReport, ThinkingLoopDetector
from qwenkit.chat.messages import Message, ToolCall, ToolSpec, normalize_messages, normalize_tools
from qwenkit.chat.parser import OutputParser, Phase, parse_output
from qwenkit.chat.template import BUILTIN_TEMPLATES, builtin_template, gguf_chat_template
from qwenkit.chat.tokenizer import Tokenizer
from qwenkit.chat.tool_parsers import TOOL_PARSERS, ToolParser, format_for_template, make_tool_parser

__all__ = [
    "BUILTIN_TEMPLATES",
    "TOOL_PARSERS",
    "ContentDelta",
    "Done",
    "EncodedPrompt",
    "Event",
    "FimPrompt",
    "IncrementalDetokenizer",
    "LoopReport",
    "Message",
    "OutputParser",
    "ParsedOutput",
    "Phase",
    "ReasoningDelta",
    "RepoFile",
    "ThinkingLoopDetector",
    "TokenStreamParser",
    "Tokenizer",
    "ToolCall",
    "ToolCallEvent",
    "ToolCallIds",
    "ToolParser",
    "ToolSpec",
    "boxed_answers",
    "builtin_template",
    "coding_task",
    "encode_chat",
    "encode_fim",
    "encode_repo",
    "extract_boxed_answer",
    "format_for_template",
    "gguf_chat_template",
    "make_tool_parser",
    "math_boxed",
    "multilingual_answer",
    "normalize_messages",
    "normalize_tools",
    "parse_output",
    "step_by_step",
]
