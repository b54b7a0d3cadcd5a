"""Messages -> prompt token ids, where only the chat template's own markup can become control tokens.

Caller strings are protected with private-use placeholders (see ``codec``), the template is rendered
in the sandbox, the output is split at the added-token texts left in it (all the template's), and the
text between them is restored and encoded with ``encode_text`` as one piece each, so BPE merges exactly
as Hugging Face's tokenizer does and ordinary conversations get the same ids as ``apply_chat_template``.
"""

from __future__ import annotations

import bisect
import itertools
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from qwenkit.chat.codec import Codec, merge_ranges
from qwenkit.chat.messages import (
    JSONValue,
    Message,
    ToolSpec,
    message_to_template,
    normalize_messages,
    normalize_tools,
)
from qwenkit.chat.template import TemplateFeatures, render, resolve_template, template_features
from qwenkit.chat.tokenizer import Tokenizer
from qwenkit.chat.vision import (
    IMAGE_PAD,
    NO_IMAGES,
    ImageSpan,
    check_image_counts,
    expand_image_pads,
    with_image_parts,
)
from qwenkit.errors import TemplateError, UsageError

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
TURN_START, TURN_END = "<|im_start|>", "<|im_end|>"
# Qwen3's soft switches, written at the start of a message or after whitespace.
SOFT_SWITCHES: Mapping[str, bool] = {"/think": True, "/no_think": False}
_SWITCH_RE = re.compile(r"(?:^|(?<=\s))(/no_think|/think)(?![\w/])")
_SWITCH_ROLES = frozenset({"user", "system"})


@dataclass(frozen=True)
class EncodedPrompt:
    """A rendered, tokenized prompt.

    ``caller_spans`` are half-open token-index ranges whose ids came from caller-supplied text (an
    over-approximation where the template transforms caller text; never an under-approximation).
    ``thinking`` is the effective thinking mode (None: the template has none); ``opens_reasoning`` says
    the prompt ends inside ``<think>``, so the output parser must start in reasoning.
    """

    ids: tuple[int, ...]
    caller_spans: tuple[tuple[int, int], ...]
    text: str
    warnings: tuple[str, ...] = ()
    thinking: bool | None = None
    opens_reasoning: bool = False
    images: tuple[ImageSpan, ...] = ()  # where each image's pad tokens are, in message order


Transform = Callable[[str], str]


def _deep(value: Any, text: Transform, key: Transform) -> Any:
    if isinstance(value, str):
        return text(value)
    if isinstance(value, dict):
        return {key(k): _deep(v, text, key) for k, v in value.items()}
    if isinstance(value, list):
        return [_deep(v, text, key) for v in value]
    return value


def _message_vars(message: Message, text: Transform, free_key: Transform) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for name, value in message_to_template(message).items():
        if name == "role" or value is None:
            data[name] = value
        elif name == "tool_calls":
            data[name] = [_tool_call_vars(call, text, free_key) for call in value]  # type: ignore[union-attr]
        else:
            data[name] = text(value)  # type: ignore[arg-type]
    return with_image_parts(data, message, text)


def _tool_call_vars(call: Any, text: Transform, free_key: Transform) -> dict[str, Any]:
    fn = call["function"]
    out: dict[str, Any] = {"type": call["type"], "function": {"name": text(fn["name"])}}
    out["function"]["arguments"] = _deep(fn["arguments"], text, free_key)
    if "id" in call:
        out["id"] = text(call["id"])
    return out


def _schema_vars(
    schema: dict[str, JSONValue], text: Transform, fixed_key: Transform, free_key: Transform
) -> Any:
    """Tool schemas: OpenAI's structural keys (type, function, name, ...) stay readable to templates;
    keys under ``parameters`` are the caller's own names and are marked like any caller text."""
    out: dict[str, Any] = {}
    for k, v in schema.items():
        if k == "parameters":
            out[fixed_key(k)] = _deep(v, text, free_key)
        elif k == "function" and isinstance(v, dict):
            out[fixed_key(k)] = _schema_vars(v, text, fixed_key, free_key)
        else:
            out[fixed_key(k)] = _deep(v, text, fixed_key)
    return out


def _variables(
    messages: Sequence[Message], tools: Sequence[ToolSpec] | None, codec: Codec, marked: bool
) -> dict[str, Any]:
    protect = codec.protect

    def text(s: str) -> str:
        return codec.mark(protect(s)) if marked else protect(s)

    tool_vars = None if tools is None else [_schema_vars(t.schema, text, protect, text) for t in tools]
    return {"messages": [_message_vars(m, text, text) for m in messages], "tools": tool_vars}


def _caller_strings(messages: Sequence[Message], tools: Sequence[ToolSpec] | None) -> list[str]:
    out: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, str):
            out.append(value)
        elif isinstance(value, dict):
            for k, v in value.items():
                out.append(k)
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)

    walk([message_to_template(m) for m in messages])
    walk([t.schema for t in tools or ()])
    return out


def split_inline_reasoning(message: Message) -> Message:
    """An assistant turn with ``<think>...</think>`` in its content and no reasoning_content is split the
    way the Qwen3 template splits it, before placeholders would hide the tags from the template."""
    content = message.content
    if message.role != "assistant" or message.reasoning_content is not None or not content:
        return message
    if THINK_CLOSE not in content:
        return message
    reasoning = content.split(THINK_CLOSE)[0].rstrip("\n").split(THINK_OPEN)[-1].lstrip("\n")
    return replace(message, content=content.split(THINK_CLOSE)[-1].lstrip("\n"), reasoning_content=reasoning)


def soft_switch(messages: Sequence[Message]) -> bool | None:
    """The most recent ``/think`` or ``/no_think`` in user or system text (latest turn first), if any."""
    for message in reversed(messages):
        if message.role in _SWITCH_ROLES and message.content:
            found = _SWITCH_RE.findall(message.content)
            if found:
                return SOFT_SWITCHES[found[-1]]
    return None


ALWAYS_THINKS = (
    "this chat template always opens a thinking block: thinking cannot be switched off here, only cut short "
    "with thinking_budget"
)


def _thinking(
    messages: Sequence[Message], features: TemplateFeatures, enable_thinking: bool | None
) -> tuple[bool | None, tuple[str, ...]]:
    if enable_thinking is not None and not isinstance(enable_thinking, bool):
        raise UsageError("enable_thinking must be true, false or null", param="enable_thinking")
    if not features.supports_thinking:
        if enable_thinking is None:
            return None, ()
        return None, (
            f"this model's chat template has no thinking mode; enable_thinking={enable_thinking} is ignored",
        )
    switch = soft_switch(messages)
    if enable_thinking is False:
        note = ("/think in the conversation has no effect with enable_thinking=false",) if switch else ()
        return False, note
    return (switch if switch is not None else True), ()


def _split_pieces(text: str, codec: Codec, caller: Sequence[tuple[int, int]]) -> list[tuple[bool, int, int]]:
    """(is_control, start, end) pieces; a token text that straddles caller text is not the template's."""
    pieces: list[tuple[bool, int, int]] = []
    pos = 0
    starts = [r[0] for r in caller]
    for m in codec.pattern.finditer(text) if codec.pattern else ():
        if _within(caller, starts, m.start(), m.end()):
            continue
        if m.start() > pos:
            pieces.append((False, pos, m.start()))
        pieces.append((True, m.start(), m.end()))
        pos = m.end()
    if pos < len(text):
        pieces.append((False, pos, len(text)))
    return pieces


def _caller_byte_ranges(
    piece: str, start: int, caller: Sequence[tuple[int, int]], codec: Codec
) -> list[tuple[int, int]]:
    """Caller ranges inside one text piece, in UTF-8 byte offsets of the *restored* piece."""
    cuts = sorted({0, len(piece)} | {min(max(b - start, 0), len(piece)) for r in caller for b in r})
    ranges, offset = [], 0
    for a, b in itertools.pairwise(cuts):
        size = len(codec.restore(piece[a:b]).encode("utf-8"))
        if any(start + a < e and s < start + b for s, e in caller):
            ranges.append((offset, offset + size))
        offset += size
    return ranges


def _caller_tokens(
    ids: Sequence[int], byte_ranges: Sequence[tuple[int, int]], total: int, tok: Tokenizer
) -> list[int]:
    """Indices (within ``ids``) of tokens overlapping caller bytes; all of them if offsets don't line up."""
    if not byte_ranges:
        return []
    sizes = [len(tok.token_bytes(token_id)) for token_id in ids]
    if sum(sizes) != total:  # e.g. a normalizer changed the bytes: over-approximate
        return list(range(len(ids)))
    hits, begin, r = [], 0, 0
    for i, size in enumerate(sizes):
        end = begin + size
        while r < len(byte_ranges) and byte_ranges[r][1] <= begin:
            r += 1
        if r < len(byte_ranges) and byte_ranges[r][0] < end:
            hits.append(i)
        begin = end
    return hits


def _within(
    caller: Sequence[tuple[int, int]], starts: Sequence[int], start: int, end: int
) -> list[tuple[int, int]]:
    """The (sorted, disjoint) caller ranges that intersect [start, end)."""
    first = max(bisect.bisect_right(starts, start) - 1, 0)
    last = bisect.bisect_left(starts, end)
    return [r for r in caller[first:last] if r[0] < end and start < r[1]]


def _encode(
    text: str, codec: Codec, caller: Sequence[tuple[int, int]] | None, tok: Tokenizer
) -> tuple[list[int], list[int], list[str]]:
    """Token ids, caller token indices and the control-token texts, in order."""
    specials = tok.special_tokens
    ids: list[int] = []
    caller_idx: list[int] = []
    controls: list[str] = []
    starts = [r[0] for r in caller or ()]
    for is_control, start, end in _split_pieces(text, codec, caller or ()):
        piece = text[start:end]
        if is_control:
            ids.append(specials[piece])
            controls.append(piece)
            continue
        restored = codec.restore(piece)
        piece_ids = tok.encode_text(restored)
        if caller is None:  # spans unknown: every text piece may hold caller text
            local = list(range(len(piece_ids)))
        else:
            ranges = _caller_byte_ranges(piece, start, _within(caller, starts, start, end), codec)
            total = len(restored.encode("utf-8"))
            full = ranges == [(0, total)]
            local = list(range(len(piece_ids))) if full else _caller_tokens(piece_ids, ranges, total, tok)
        caller_idx.extend(len(ids) + i for i in local)
        ids.extend(piece_ids)
    return ids, caller_idx, controls


def _opens_reasoning(controls: Sequence[str], add_generation_prompt: bool) -> bool:
    if not add_generation_prompt or TURN_START not in controls:
        return False
    tail = controls[len(controls) - 1 - controls[::-1].index(TURN_START) :]
    marks = [c for c in tail if c in (THINK_OPEN, THINK_CLOSE)]
    return bool(marks) and marks[-1] == THINK_OPEN


def _open_final_turn(plain: str, msgs: Sequence[Message]) -> int:
    """Where a continued prompt ends: just before the closing ``<|im_end|>`` of the final assistant
    message. Caller text is protected in ``plain``, so both markers found here are the template's."""
    final = msgs[-1] if msgs else None
    if final is None or final.role != "assistant":
        raise UsageError(
            "continue_final_message needs the last message to be the assistant's (the text to continue)",
            param="messages",
        )
    if final.tool_calls:
        raise UsageError("an assistant message with tool_calls cannot be continued", param="messages")
    start, end = plain.rfind(TURN_START), plain.rfind(TURN_END)
    if start < 0 or end < start or not plain.startswith(f"{TURN_START}assistant", start):
        raise TemplateError("this chat template ends an assistant turn in a way that cannot be continued")
    return end


def _token_ranges(indices: Iterable[int]) -> tuple[tuple[int, int], ...]:
    return tuple(merge_ranges((i, i + 1) for i in indices))


def _caller_chars(
    source: str,
    msgs: Sequence[Message],
    specs: Sequence[ToolSpec] | None,
    codec: Codec,
    extra: Mapping[str, Any],
    plain: str,
) -> list[tuple[int, int]] | None:
    """Caller character ranges from a marked render, or None when the template treats marked text
    differently (then every text piece counts as caller text)."""
    try:
        marked = render(source, {**_variables(msgs, specs, codec, marked=True), **extra})
    except TemplateError:
        return None
    return codec.marked_spans(marked) if codec.unmark(marked) == plain else None


def encode_chat(
    messages: Sequence[Any],
    tokenizer: Tokenizer,
    *,
    tools: Sequence[Any] | None = None,
    enable_thinking: bool | None = None,
    add_generation_prompt: bool = True,
    continue_final_message: bool = False,
    template: str | None = None,
    image_tokens: Sequence[int] | None = None,
    images_unavailable: str = NO_IMAGES,
) -> EncodedPrompt:
    """Render ``messages`` with the model's chat template (or a built-in one) and tokenize the prompt.

    ``template`` is a built-in name (``qwen2.5``, ``qwen3``), Jinja source, or None for the tokenizer's own.
    ``continue_final_message`` (vLLM's and transformers' name) leaves the final assistant message open,
    so the model goes on from its last character (a pre-filled answer); it implies no generation prompt.
    ``image_tokens`` gives each image part's token count (``qwenkit.media``), in message order: a
    Qwen-VL template's one ``<|image_pad|>`` per image is repeated that many times; without them an
    image part is refused with ``images_unavailable`` as the reason.
    """
    for name, flag in (("add_generation_prompt", add_generation_prompt),
                       ("continue_final_message", continue_final_message)):
        if not isinstance(flag, bool):
            raise UsageError(f"{name} must be a boolean", param=name)
    add_generation_prompt = add_generation_prompt and not continue_final_message
    msgs = normalize_messages(messages)
    specs = normalize_tools(tools)
    source = resolve_template(template, tokenizer)
    images = check_image_counts(msgs, source, image_tokens, images_unavailable)
    features = template_features(source)
    if features.reads_reasoning:
        msgs = tuple(split_inline_reasoning(m) for m in msgs)
    thinking, warnings = _thinking(msgs, features, enable_thinking)

    codec = Codec.build(tokenizer.special_tokens, _caller_strings(msgs, specs), source)
    extra: dict[str, Any] = {"add_generation_prompt": add_generation_prompt}
    if enable_thinking is not None and features.supports_thinking:
        extra["enable_thinking"] = enable_thinking
    plain = render(source, {**_variables(msgs, specs, codec, marked=False), **extra})
    caller = _caller_chars(source, msgs, specs, codec, extra, plain)
    if continue_final_message:
        cut = _open_final_turn(plain, msgs)
        plain = plain[:cut]
        caller = None if caller is None else [(a, min(b, cut)) for a, b in caller if a < cut]

    ids, caller_idx, controls = _encode(plain, codec, caller, tokenizer)
    spans: tuple[ImageSpan, ...] = ()
    if images and image_tokens is not None:
        if IMAGE_PAD not in tokenizer.special_tokens:
            raise UsageError(f"this tokenizer has no {IMAGE_PAD} token; it is not a Qwen vision model's")
        ids, caller_idx, spans = expand_image_pads(ids, caller_idx, tokenizer.special_tokens[IMAGE_PAD],
                                                   image_tokens)
    opens_reasoning = _opens_reasoning(controls, add_generation_prompt)
    if opens_reasoning and thinking is False:  # QwQ, Qwen3-*-Thinking-2507: <think> whatever it is told
        thinking, warnings = True, (*warnings, ALWAYS_THINKS)
    return EncodedPrompt(
        ids=tuple(ids),
        caller_spans=_token_ranges(caller_idx),
        text=codec.restore(plain),
        warnings=warnings,
        thinking=thinking,
        opens_reasoning=opens_reasoning,
        images=spans,
    )
