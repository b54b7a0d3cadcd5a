"""Cuts inside added-token texts: only where Qwen2's pre-tokenizer always splits, inside every occurrence."""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path
from typing import Any

import pytest
import regex
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from qwenkit.chat.pretokenize import PRE_TOKENIZERS, QWEN2, AddedTokenCutter


@pytest.fixture(scope="module")
def tokenizer_json(qwen3_tokenizer_dir: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((qwen3_tokenizer_dir / "tokenizer.json").read_text(encoding="utf-8"))
    return data


@pytest.fixture(scope="module")
def added_texts(tokenizer_json: dict[str, Any]) -> list[str]:
    return [t["content"] for t in tokenizer_json["added_tokens"]]


def test_qwen2_pattern_is_the_split_regex_of_qwen3s_tokenizer_json(tokenizer_json: dict[str, Any]) -> None:
    splits = [p for p in tokenizer_json["pre_tokenizer"]["pretokenizers"] if p["type"] == "Split"]
    assert [s["pattern"]["Regex"] for s in splits] == [QWEN2.pattern]
    assert tokenizer_json["normalizer"] == {"type": "NFC"} and QWEN2.normalization == "NFC"
    assert PRE_TOKENIZERS["qwen2"] is QWEN2


def _boundaries(text: str) -> set[int]:
    """Pre-token boundaries of ``text`` under the Split regex; asserts the matches tile the text."""
    ends = [0]
    for m in regex.finditer(QWEN2.pattern, text):
        assert m.start() == ends[-1], "the regex left characters unmatched"
        ends.append(m.end())
    assert ends[-1] == len(text)
    return set(ends)


CHARS = st.characters(blacklist_categories=("Cs",))
SAMPLES = st.one_of(
    st.text(CHARS, max_size=12),
    st.text(st.sampled_from("aZ1 \t\n\r'_<>|/!é日\u0301\u00a0"), max_size=12),
)


def _same_unicode_tables(ch: str) -> bool:
    """Python's unicodedata and the regex module may follow different Unicode versions."""
    category = unicodedata.category(ch)[0]
    return (category == "L") == bool(regex.match(r"\p{L}", ch)) and (category == "N") == bool(
        regex.match(r"\p{N}", ch)
    )


@settings(max_examples=500, deadline=None)
@given(text=SAMPLES)
def test_forced_splits_are_pre_token_boundaries_in_any_text(text: str) -> None:
    assume(all(map(_same_unicode_tables, text)))
    bounds = _boundaries(text)
    forced = {p for p in range(1, len(text)) if QWEN2.always_splits(text[p - 1], text[p])}
    assert forced <= bounds


def test_every_qwen_added_token_has_an_exact_cut(added_texts: list[str]) -> None:
    cutter = AddedTokenCutter.build(added_texts, QWEN2)
    assert len(cutter.cuts) == 26 and not cutter.inexact and not cutter.uncuttable
    assert cutter.cuts["<think>"] == len("<think") and cutter.cuts["<|im_start|>"] == len("<|im_start")


@settings(max_examples=300, deadline=None)
@given(
    pieces=st.lists(
        st.one_of(
            st.sampled_from(["<think>", "</think>", "<|im_start|>", "<tool_call>", "<", ">", "|", "\u0338"]),
            st.text(CHARS, max_size=4),
        ),
        max_size=8,
    )
)
def test_pieces_join_back_and_hold_no_token_text(added_texts: list[str], pieces: list[str]) -> None:
    text = "".join(pieces)
    cutter = AddedTokenCutter.build(added_texts, QWEN2)
    out = cutter.pieces(text)
    assert "".join(out) == text and all(out)
    assert not any(token in piece for piece in out for token in added_texts)


def test_overlapping_occurrences_are_each_cut() -> None:
    cutter = AddedTokenCutter.build(["abab", "ba"], None)
    out = cutter.pieces("xababab")
    assert "".join(out) == "xababab"
    assert not any(t in p for p in out for t in ("abab", "ba"))


def test_unknown_pre_tokenizer_cuts_after_the_first_character() -> None:
    cutter = AddedTokenCutter.build(["<think>", "~", ""], None)
    assert dict(cutter.cuts) == {"<think>": 1}
    assert cutter.inexact == {"<think>"} and cutter.uncuttable == {"~"}
    assert cutter.pieces("a<think>b") == ["a<", "think>b"]
    assert cutter.normalize("e\u0301") == "e\u0301"  # no known normalizer: text as given


def test_a_token_without_forced_split_falls_back_to_an_inexact_cut() -> None:
    cutter = AddedTokenCutter.build(["<|>", "abc", "a1"], QWEN2)
    assert dict(cutter.cuts) == {"<|>": 1, "abc": 1, "a1": 1}
    assert cutter.inexact == {"<|>", "abc"}  # "a1": a digit always stands alone


def test_text_without_token_texts_is_one_piece_and_normalized_nfc() -> None:
    cutter = AddedTokenCutter.build(["<think>"], QWEN2)
    assert cutter.pieces("plain <thin k> text") == ["plain <thin k> text"]
    assert cutter.normalize("cafe\u0301") == "café"
