"""Conversations -> training ids and labels, through the same ``encode_chat`` that serving uses.

For every assistant turn k, the serving prompt is ``encode_chat(messages[:k], add_generation_prompt=True)``
and what the model must write is what the template renders after it, up to and including the turn's
``<|im_end|>``. Those tokens, and only those, carry labels. When every turn's prompt + answer is a
prefix of the whole conversation's rendering (always for Qwen2.5; for Qwen3 unless earlier turns hold
reasoning that the template drops from history), one example carries all the turns; otherwise each
turn that differs becomes its own example, so that training never shows the model a context that
serving would not.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from qwenkit.chat.encode import THINK_CLOSE, encode_chat
from qwenkit.chat.template import resolve_template, template_features
from qwenkit.chat.tokenizer import Tokenizer
from qwenkit.errors import UsageError
from qwenkit.finetune.config import Overlong, Thinking
from qwenkit.finetune.data import Conversation

IGNORE = -100
TURN_END = "<|im_end|>"


@dataclass(frozen=True)
class TrainExample:
    """``labels[i]`` is ``ids[i]`` inside an assistant span, IGNORE elsewhere (not shifted)."""

    line: int
    ids: tuple[int, ...]
    labels: tuple[int, ...]
    spans: tuple[tuple[int, int], ...]
    turns: tuple[int, ...]  # index of the assistant message behind each span


@dataclass
class EncodeReport:
    examples: list[TrainExample] = field(default_factory=list)
    truncated: list[int] = field(default_factory=list)  # line numbers
    skipped: list[int] = field(default_factory=list)
    split_turns: int = 0  # turns trained as their own example (the template rewrites history)
    longest: int = 0


@dataclass(frozen=True)
class Encoder:
    tokenizer: Tokenizer
    template: str | None
    thinking: Thinking

    @property
    def _source(self) -> str:
        return resolve_template(self.template, self.tokenizer)

    def enable_thinking(self) -> bool | None:
        if not template_features(self._source).supports_thinking:
            return None
        return {Thinking.TEMPLATE: None, Thinking.KEEP: True, Thinking.DROP: False}[self.thinking]

    def prepare(self, messages: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """``drop``: reasoning leaves the data (fields and inline ``<think>`` blocks)."""
        if self.thinking is not Thinking.DROP:
            return [dict(m) for m in messages]
        out = []
        for m in messages:
            m = {k: v for k, v in m.items() if k != "reasoning_content"}
            content = m.get("content")
            if m.get("role") == "assistant" and isinstance(content, str) and THINK_CLOSE in content:
                m["content"] = content.split(THINK_CLOSE)[-1].lstrip("\n")
            out.append(m)
        return out

    def encode(self, messages: Sequence[dict[str, Any]], tools: Any, prompt: bool) -> tuple[int, ...]:
        return encode_chat(
            messages,
            self.tokenizer,
            tools=tools,
            enable_thinking=self.enable_thinking(),
            add_generation_prompt=prompt,
            template=self.template,
        ).ids

    def turn(self, messages: Sequence[dict[str, Any]], tools: Any, k: int) -> tuple[tuple[int, ...], int]:
        """(prompt + answer ids, prompt length) of assistant message ``k``, answer ending at <|im_end|>."""
        prompt = self.encode(messages[:k], tools, prompt=True)
        full = self.encode(messages[: k + 1], tools, prompt=False)
        if full[: len(prompt)] != prompt:
            raise UsageError(f"messages[{k}]: the chat template renders this turn unlike the serving prompt")
        end_id = self.tokenizer.special_tokens[TURN_END]
        try:
            end = full.index(end_id, len(prompt)) + 1
        except ValueError:
            raise UsageError(f"messages[{k}]: the template wrote no {TURN_END} after the answer") from None
        return full[:end], len(prompt)

    def example(self, conv: Conversation) -> list[TrainExample]:
        messages = self.prepare(conv.messages)
        tools = list(conv.tools) if conv.tools else None
        whole = self.encode(messages, tools, prompt=False)
        shared: list[tuple[int, int, int]] = []
        alone: list[TrainExample] = []
        for k, m in enumerate(messages):
            if m.get("role") != "assistant":
                continue
            ids, start = self.turn(messages, tools, k)
            if whole[: len(ids)] == ids:
                shared.append((start, len(ids), k))
            else:
                alone.append(_labelled(conv.line, ids, [(start, len(ids))], [k]))
        out = (
            [_labelled(conv.line, whole, [(s, e) for s, e, _ in shared], [k for *_, k in shared])]
            if shared
            else []
        )
        return out + alone


def _labelled(line: int, ids: Sequence[int], spans: list[tuple[int, int]], turns: list[int]) -> TrainExample:
    labels = [IGNORE] * len(ids)
    for s, e in spans:
        labels[s:e] = ids[s:e]
    return TrainExample(line, tuple(ids), tuple(labels), tuple(spans), tuple(turns))


def _fit(example: TrainExample, max_length: int) -> TrainExample | None:
    """Cut at ``max_length``; None when no labelled token is left."""
    ids, labels = example.ids[:max_length], example.labels[:max_length]
    if all(label == IGNORE for label in labels):
        return None
    spans = tuple((s, min(e, max_length)) for s, e in example.spans if s < max_length)
    return TrainExample(example.line, ids, labels, spans, example.turns[: len(spans)])


def encode_all(
    conversations: Sequence[Conversation], encoder: Encoder, max_length: int, overlong: Overlong
) -> EncodeReport:
    """Every conversation's examples; longer than ``max_length`` is an error, cut or left out, per policy."""
    report = EncodeReport()
    too_long: list[tuple[int, int]] = []
    for conv in conversations:
        try:
            examples = encoder.example(conv)
        except UsageError as exc:
            raise UsageError(f"line {conv.line}: {exc.message}", param="data") from None
        report.split_turns += max(0, len(examples) - 1)
        for ex in examples:
            report.longest = max(report.longest, len(ex.ids))
            if len(ex.ids) <= max_length:
                report.examples.append(ex)
                continue
            too_long.append((ex.line, len(ex.ids)))
            cut = _fit(ex, max_length) if overlong is Overlong.TRUNCATE else None
            if cut is None:
                report.skipped.append(ex.line)
            else:
                report.truncated.append(ex.line)
                report.examples.append(cut)
    if too_long and overlong is Overlong.ERROR:
        lines = ", ".join(f"{line} ({n} tokens)" for line, n in too_long[:5])
        raise UsageError(
            f"{len(too_long)} example(s) are longer than max_length={max_length}: line {lines}",
            param="max_length",
            hint="raise --max-length, or pass --overlong truncate or --overlong skip",
        )
    if not report.examples:
        raise UsageError("no example is left to train on", param="data")
    return report
