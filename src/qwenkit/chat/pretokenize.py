"""Cutting caller text so that no tokenizer can read an added token (``<tool_call>``, ``<think>`` ...) in it.

llama.cpp matches user-defined added tokens even with special-token parsing off, so text is handed to it
in pieces, cut inside every occurrence of an added-token text. A cut is harmless where the pre-tokenizer
separates the two characters in *every* context: BPE never merges across pre-token boundaries, so the
pieces tokenize to exactly the ids of the whole text with the added tokens unknown (Hugging Face's
"plain" tokenization). Such always-split character pairs are a property of a pre-tokenizer's regex, kept
here per pre-tokenizer as llama.cpp names it in a GGUF (``tokenizer.ggml.pre``).
"""

from __future__ import annotations

import itertools
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

from qwenkit.chat.codec import token_pattern

NormalForm = Literal["NFC", "NFD", "NFKC", "NFKD"]


def _qwen2_always_splits(left: str, right: str) -> bool:
    """Qwen2's regex puts ``\\p{N}`` only in single-character matches, and every alternative that holds a
    letter holds only letters after it (``\\p{L}+``, the contractions): so a digit is always a pre-token
    of its own, and a letter followed by a non-letter always ends one. Characters this Python's Unicode
    tables do not know (category Cn) may be letters to a newer regex engine: never split at them."""
    categories = unicodedata.category(left), unicodedata.category(right)
    if "Cn" in categories:
        return False
    first, second = categories[0][0], categories[1][0]
    return "N" in (first, second) or (first == "L" and second != "L")


@dataclass(frozen=True)
class PreTokenizer:
    """One BPE pre-tokenizer: its Split regex, the normalizer that runs before it, and its forced splits."""

    name: str
    pattern: str  # the Split regex of the original tokenizer.json, for reference and tests
    normalization: NormalForm | None  # unicodedata form the original tokenizer normalizes with
    always_splits: Callable[[str, str], bool]  # True: no pre-token ever holds this character pair


QWEN2 = PreTokenizer(
    name="qwen2",
    pattern=(
        r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
        r"|\s*[\r\n]+|\s+(?!\S)|\s+"
    ),
    normalization="NFC",
    always_splits=_qwen2_always_splits,
)

# GGUF ``tokenizer.ggml.pre`` -> pre-tokenizer. Qwen2, Qwen2.5 and Qwen3 vocabularies are all "qwen2".
PRE_TOKENIZERS: Mapping[str, PreTokenizer] = MappingProxyType({QWEN2.name: QWEN2})


def _cut_offset(text: str, pre: PreTokenizer | None) -> tuple[int, bool] | None:
    """Where to cut an occurrence of ``text`` and whether that cut is exact; None: it cannot be cut."""
    if len(text) < 2:
        return None
    if pre is not None:
        for pos in range(len(text) - 1, 0, -1):
            if pre.always_splits(text[pos - 1], text[pos]):
                return pos, True
    return 1, False


@dataclass(frozen=True)
class AddedTokenCutter:
    """Splits text into pieces none of which contains an added-token text.

    ``inexact``: token texts cut where the pre-tokenizer may not split (unknown pre-tokenizer, or no forced
    split inside): still plain text, but possibly other ids than the original tokenizer would give.
    ``uncuttable``: single-character token texts, which no cut can keep out of a piece.
    """

    pattern: re.Pattern[str] | None
    cuts: Mapping[str, int]
    inexact: frozenset[str]
    uncuttable: frozenset[str]
    normalization: NormalForm | None

    @classmethod
    def build(cls, token_texts: Iterable[str], pre: PreTokenizer | None) -> AddedTokenCutter:
        texts = tuple(sorted({t for t in token_texts if t}))
        cuts: dict[str, int] = {}
        inexact: set[str] = set()
        uncuttable: set[str] = set()
        for text in texts:
            found = _cut_offset(text, pre)
            if found is None:
                uncuttable.add(text)
                continue
            cuts[text], exact = found
            if not exact:
                inexact.add(text)
        return cls(
            pattern=token_pattern(tuple(cuts)),
            cuts=MappingProxyType(cuts),
            inexact=frozenset(inexact),
            uncuttable=frozenset(uncuttable),
            normalization=pre.normalization if pre is not None else None,
        )

    def normalize(self, text: str) -> str:
        form = self.normalization
        if form is None or unicodedata.is_normalized(form, text):
            return text
        return unicodedata.normalize(form, text)

    def pieces(self, text: str) -> list[str]:
        """``text`` cut inside every (possibly overlapping) added-token occurrence; whole if there is none."""
        if self.pattern is None or self.pattern.search(text) is None:
            return [text] if text else []
        points: set[int] = set()
        for token, offset in self.cuts.items():
            at = text.find(token)
            while at >= 0:
                points.add(at + offset)
                at = text.find(token, at + 1)
        bounds = [0, *sorted(points), len(text)]
        return [text[a:b] for a, b in itertools.pairwise(bounds)]
