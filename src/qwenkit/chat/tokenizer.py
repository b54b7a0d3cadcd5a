"""The tokenizer protocol the chat layer needs from any backend.

Caller text is always encoded with ``encode_text``, which never turns text into special or added
tokens: that is what keeps ``<|im_start|>`` typed by a user plain text.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol, runtime_checkable


@runtime_checkable
class Tokenizer(Protocol):
    @property
    def special_tokens(self) -> Mapping[str, int]:
        """Every special and added token (e.g. <|im_start|>, <think>) by its text."""

    @property
    def eos_token_ids(self) -> frozenset[int]:
        """Ids that end a generation (<|im_end|>, <|endoftext|>)."""

    @property
    def chat_template(self) -> str | None:
        """The model's own Jinja chat template, if it ships one."""

    @property
    def vocab_size(self) -> int: ...

    def encode_text(self, text: str) -> list[int]:
        """Plain text to ids with no special-token parsing at all."""

    def token_bytes(self, token_id: int) -> bytes:
        """The raw bytes of one token (special tokens: their text in UTF-8)."""

    def decode(self, ids: Sequence[int]) -> str: ...
