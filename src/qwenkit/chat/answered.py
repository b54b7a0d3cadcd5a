"""Tool calls the conversation has just answered, and how to ask for an answer instead of a repeat.

Small Qwen models (Qwen2.5-Coder-0.5B and 1.5B, measured) often answer a tool result by calling the
same tool with the same arguments again, with tools offered or not, so an agent loop never ends. A call
that repeats one whose result is the last thing in the conversation carries no new request; the
engine then asks for the turn again as an answer (see ``engine/llm.py``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, TypeAlias

from qwenkit.chat.messages import Message
from qwenkit.chat.tokenizer import Tokenizer

CallKey: TypeAlias = tuple[str, str]  # (function name, arguments as canonical JSON)

# How a tool call starts, in the forms Qwen models write one: a JSON object (bare, in a list or in a
# fence) or a <tool_call> block (its special token). Their tokens are kept out of a turn that must be an
# answer; the bias holds for the whole turn, so that turn writes no JSON object or fence of its own.
CALL_OPENINGS = ("{", " {", "{\"", "{\n", "[{", "```", " ```", "```json", "```\n")


def call_key(name: str, arguments: Mapping[str, Any] | str) -> CallKey:
    """A call's identity: its name and arguments, independent of key order and spacing."""
    value: Any = arguments
    if isinstance(arguments, str):
        try:
            value = json.loads(arguments)
        except ValueError:
            return name, arguments.strip()
    return name, json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def just_answered(messages: Sequence[Message]) -> frozenset[CallKey]:
    """The calls of the last assistant turn when only their tool results follow it; else empty."""
    end = len(messages)
    while end > 0 and messages[end - 1].role == "tool":
        end -= 1
    if end == len(messages) or end == 0 or messages[end - 1].role != "assistant":
        return frozenset()
    return frozenset(call_key(c.name, c.arguments) for c in messages[end - 1].tool_calls)


def call_opening_ids(tokenizer: Tokenizer) -> dict[str, float]:
    """A logit bias that keeps every call opening out of a generation (token id -> -100)."""
    ids = {tokenizer.encode_text(text)[0] for text in CALL_OPENINGS if tokenizer.encode_text(text)}
    special = tokenizer.special_tokens.get("<tool_call>")
    if special is not None:
        ids.add(special)
    return {str(i): -100.0 for i in sorted(ids)}
