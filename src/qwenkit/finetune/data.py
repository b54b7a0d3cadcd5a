"""Training data: JSONL in OpenAI's messages shape, ShareGPT or Alpaca, each line validated.

Every line becomes one ``Conversation`` (OpenAI-shaped messages and optional tools) or one
``BadLine`` naming its line number and the field at fault. Nothing is dropped silently: bad lines
stop the run unless ``skip_invalid`` is set, and then they are counted in the report.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qwenkit.chat.messages import normalize_messages, normalize_tools
from qwenkit.errors import UsageError
from qwenkit.finetune.config import DataFormat

SHOWN_ERRORS = 5


@dataclass(frozen=True)
class Conversation:
    line: int
    messages: tuple[dict[str, Any], ...]
    tools: tuple[dict[str, Any], ...] | None = None


@dataclass(frozen=True)
class BadLine:
    line: int
    field: str
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.field}: {self.reason}"


@dataclass(frozen=True)
class Dataset:
    path: Path
    format: DataFormat
    conversations: tuple[Conversation, ...]
    bad: tuple[BadLine, ...]


class _Bad(Exception):
    def __init__(self, field: str, reason: str) -> None:
        super().__init__(reason)
        self.field = field
        self.reason = reason


def _need(raw: dict[str, Any], key: str, kind: type, where: str = "") -> Any:
    name = f"{where}{key}"
    if key not in raw:
        raise _Bad(name, "missing")
    value = raw[key]
    if not isinstance(value, kind):
        raise _Bad(name, f"must be a {kind.__name__}, got {type(value).__name__}")
    return value


def _from_messages(raw: dict[str, Any]) -> tuple[list[dict[str, Any]], Any]:
    return list(_need(raw, "messages", list)), raw.get("tools")


_SHAREGPT_ROLES = {
    "system": "system", "human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
    "function_call": "assistant", "observation": "tool", "tool": "tool", "function_response": "tool",
}  # fmt: skip


def _sharegpt_turn(turn: Any, where: str) -> dict[str, Any]:
    if not isinstance(turn, dict):
        raise _Bad(where, "must be an object with from/value")
    speaker = _need(turn, "from", str, f"{where}.")
    value = _need(turn, "value", str, f"{where}.")
    role = _SHAREGPT_ROLES.get(speaker)
    if role is None:
        raise _Bad(f"{where}.from", f"{speaker!r} is not one of: {', '.join(_SHAREGPT_ROLES)}")
    if speaker != "function_call":
        return {"role": role, "content": value}
    try:
        call = json.loads(value)
    except json.JSONDecodeError:
        raise _Bad(f"{where}.value", "a function_call value must be JSON {name, arguments}") from None
    if not isinstance(call, dict) or not isinstance(call.get("name"), str):
        raise _Bad(f"{where}.value", "a function_call value must be JSON {name, arguments}")
    fn = {"name": call["name"], "arguments": call.get("arguments", {})}
    return {"role": "assistant", "content": None, "tool_calls": [{"type": "function", "function": fn}]}


def _from_sharegpt(raw: dict[str, Any]) -> tuple[list[dict[str, Any]], Any]:
    turns = _need(raw, "conversations", list)
    messages = [_sharegpt_turn(t, f"conversations[{i}]") for i, t in enumerate(turns)]
    system = raw.get("system")
    if isinstance(system, str) and system and not any(m["role"] == "system" for m in messages):
        messages.insert(0, {"role": "system", "content": system})
    tools = raw.get("tools")
    if isinstance(tools, str):
        try:
            tools = json.loads(tools)
        except json.JSONDecodeError:
            raise _Bad("tools", "must be a list of tool schemas (or that list as a JSON string)") from None
    return messages, tools


def _from_alpaca(raw: dict[str, Any]) -> tuple[list[dict[str, Any]], Any]:
    instruction = _need(raw, "instruction", str)
    extra = raw.get("input") or ""
    if not isinstance(extra, str):
        raise _Bad("input", "must be a string")
    output = _need(raw, "output", str)
    messages = [{"role": "user", "content": f"{instruction}\n\n{extra}" if extra else instruction}]
    system = raw.get("system")
    if isinstance(system, str) and system:
        messages.insert(0, {"role": "system", "content": system})
    messages.append({"role": "assistant", "content": output})
    return messages, None


_READERS: dict[DataFormat, Callable[[dict[str, Any]], tuple[list[dict[str, Any]], Any]]] = {
    DataFormat.MESSAGES: _from_messages,
    DataFormat.SHAREGPT: _from_sharegpt,
    DataFormat.ALPACA: _from_alpaca,
}


def detect_format(raw: dict[str, Any]) -> DataFormat | None:
    if "messages" in raw:
        return DataFormat.MESSAGES
    if "conversations" in raw:
        return DataFormat.SHAREGPT
    if "instruction" in raw and "output" in raw:
        return DataFormat.ALPACA
    return None


def _validate(messages: list[dict[str, Any]], tools: Any) -> tuple[dict[str, Any], ...]:
    from qwenkit.chat.messages import to_plain

    try:
        normalize_messages(messages)
        normalize_tools(tools)
    except UsageError as exc:
        raise _Bad(exc.param or "messages", exc.message.removeprefix(f"{exc.param} ").strip()) from None
    if not any(m.get("role") == "assistant" for m in messages):
        raise _Bad("messages", "no assistant turn: nothing to learn from")
    return tuple(to_plain(m) for m in messages)


def _parse_line(text: str, fmt: DataFormat) -> tuple[DataFormat, Conversation | None, _Bad | None]:
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        return fmt, None, _Bad("(line)", f"not JSON: {exc.msg} at column {exc.colno}")
    if not isinstance(raw, dict):
        return fmt, None, _Bad("(line)", f"must be a JSON object, got {type(raw).__name__}")
    if fmt is DataFormat.AUTO:
        found = detect_format(raw)
        if found is None:
            return fmt, None, _Bad("(line)", "no 'messages', 'conversations' or 'instruction'/'output' keys")
        fmt = found
    try:
        messages, tools = _READERS[fmt](raw)
        plain = _validate(messages, tools)
    except _Bad as bad:
        return fmt, None, bad
    return fmt, Conversation(0, plain, tuple(tools) if tools else None), None


def load_jsonl(path: Path, fmt: DataFormat = DataFormat.AUTO, *, skip_invalid: bool = False) -> Dataset:
    """Read and validate every line; the format is the declared one or the first object's shape."""
    if not path.is_file():
        raise UsageError(f"no data file at {path}", param="data")
    good: list[Conversation] = []
    bad: list[BadLine] = []
    with path.open(encoding="utf-8", errors="strict") as fh:
        try:
            lines = list(fh)
        except UnicodeDecodeError as exc:
            raise UsageError(f"{path} is not UTF-8 text: {exc.reason}", param="data") from None
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        fmt, conversation, problem = _parse_line(text, fmt)
        if problem is not None:
            bad.append(BadLine(number, problem.field, problem.reason))
        elif conversation is not None:
            good.append(Conversation(number, conversation.messages, conversation.tools))
    if bad and not skip_invalid:
        raise UsageError(
            f"{path}: {len(bad)} invalid line(s); {bad[0]}",
            param="data",
            hint="; ".join(str(b) for b in bad[1:SHOWN_ERRORS])
            or "fix it, or pass --skip-invalid to leave bad lines out",
        )
    if not good:
        raise UsageError(f"{path} holds no usable conversation", param="data")
    return Dataset(path, fmt, tuple(good), tuple(bad))


def split_holdout(
    items: Sequence[Conversation], fraction: float, seed: int
) -> tuple[list[Conversation], list[Conversation]]:
    """A random held-out set (at least one item when ``fraction`` > 0 and there are two or more)."""
    if fraction <= 0 or len(items) < 2:
        return list(items), []
    order = list(range(len(items)))
    random.Random(seed).shuffle(order)
    n_eval = max(1, round(len(items) * fraction))
    held = set(order[:n_eval])
    return [c for i, c in enumerate(items) if i not in held], [c for i, c in enumerate(items) if i in held]
