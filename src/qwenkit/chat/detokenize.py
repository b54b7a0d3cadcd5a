"""Token ids to text, one id at a time, never splitting a UTF-8 character.

Byte-level BPE tokens are byte strings: an emoji or a CJK character can span two tokens, and
decoding each token alone would print U+FFFD. The incremental UTF-8 decoder holds back an
incomplete sequence until its last byte arrives, so every delta is whole characters; a byte that can
never start or continue a character still becomes U+FFFD, as it would in a full decode.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterable

from qwenkit.chat.events import Event, ToolCallIds
from qwenkit.chat.parser import OutputParser
from qwenkit.chat.tokenizer import Tokenizer
from qwenkit.chat.tool_parsers import ToolParser
from qwenkit.errors import UsageError


def control_token_ids(tokenizer: Tokenizer) -> frozenset[int]:
    """Ids that are never shown as text: end-of-generation ids and ``<|...|>`` control tokens.

    Markup specials such as ``<think>`` and ``<tool_call>`` are kept: the output parser reads them.
    """
    specials = tokenizer.special_tokens.items()
    control = {i for text, i in specials if text.startswith("<|") and text.endswith("|>")}
    return frozenset(control | set(tokenizer.eos_token_ids))


class IncrementalDetokenizer:
    """``push(id)`` returns only the complete text that id finished; ``flush()`` ends the stream."""

    def __init__(self, tokenizer: Tokenizer, *, skip_control_tokens: bool = True) -> None:
        self._tokenizer = tokenizer
        self._skip = control_token_ids(tokenizer) if skip_control_tokens else frozenset()
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._flushed = False

    def push(self, token_id: int) -> str:
        if self._flushed:
            raise UsageError("this detokenizer was flushed; make a new one per generation")
        if isinstance(token_id, bool) or not isinstance(token_id, int) or token_id < 0:
            raise UsageError(f"token ids are non-negative integers, got {token_id!r}")
        if token_id in self._skip:
            return ""
        return self._decoder.decode(self._tokenizer.token_bytes(token_id))

    def push_many(self, token_ids: Iterable[int]) -> str:
        return "".join(self.push(i) for i in token_ids)

    def flush(self) -> str:
        """Whatever is left; an incomplete trailing character becomes U+FFFD, as a full decode would."""
        if self._flushed:
            return ""
        self._flushed = True
        return self._decoder.decode(b"", final=True)


class TokenStreamParser:
    """Detokenizer and output parser in one: token ids in, typed events out."""

    def __init__(
        self,
        tokenizer: Tokenizer,
        *,
        starts_in_reasoning: bool,
        tool_parser: ToolParser | None = None,
        tool_ids: ToolCallIds | None = None,
    ) -> None:
        self._detok = IncrementalDetokenizer(tokenizer)
        self._parser = OutputParser(
            starts_in_reasoning=starts_in_reasoning, tool_parser=tool_parser, tool_ids=tool_ids
        )

    @property
    def in_reasoning(self) -> bool:
        return self._parser.in_reasoning

    def feed_ids(self, token_ids: Iterable[int]) -> list[Event]:
        text = self._detok.push_many(token_ids)
        return self._parser.feed(text) if text else []

    def finish(self, finish_reason: str = "stop") -> list[Event]:
        events = self._parser.feed(self._detok.flush())
        events.extend(self._parser.finish(finish_reason))
        return events
