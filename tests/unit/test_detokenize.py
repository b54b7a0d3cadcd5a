"""Incremental detokenization: whole characters only, whatever way the bytes are split."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import pairwise

import pytest
from _chat_tokenizer import real_qwen_tokenizer
from hypothesis import given, settings
from hypothesis import strategies as st

from qwenkit.chat.detokenize import IncrementalDetokenizer, TokenStreamParser, control_token_ids
from qwenkit.chat.events import ContentDelta, ParsedOutput, ReasoningDelta, ToolCallIds
from qwenkit.chat.parser import parse_output
from qwenkit.chat.tool_parsers import HermesParser
from qwenkit.errors import UsageError


class ByteChunkTokenizer:
    """A tokenizer whose token ``i`` is the i-th of some arbitrary byte chunks: any split is possible."""

    def __init__(self, chunks: Sequence[bytes], specials: Mapping[str, int] | None = None) -> None:
        self._chunks = list(chunks)
        self._specials = dict(specials or {})

    @property
    def special_tokens(self) -> Mapping[str, int]:
        return self._specials

    @property
    def eos_token_ids(self) -> frozenset[int]:
        return frozenset()

    @property
    def chat_template(self) -> str | None:
        return None

    @property
    def vocab_size(self) -> int:
        return len(self._chunks)

    def encode_text(self, text: str) -> list[int]:
        raise NotImplementedError("not needed for detokenization")

    def token_bytes(self, token_id: int) -> bytes:
        return self._chunks[token_id]

    def decode(self, ids: Sequence[int]) -> str:
        return b"".join(self._chunks[i] for i in ids).decode("utf-8", errors="replace")


_TEXT = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\ufffd"), max_size=60)


@settings(max_examples=1000, deadline=None)
@given(text=_TEXT, data=st.data())
def test_any_byte_split_yields_whole_characters(text: str, data: st.DataObject) -> None:
    raw = text.encode("utf-8")
    cuts = sorted(set(data.draw(st.lists(st.integers(0, len(raw)), max_size=len(raw) + 1))))
    chunks = [raw[a:b] for a, b in pairwise([0, *cuts, len(raw)])]
    detok = IncrementalDetokenizer(ByteChunkTokenizer(chunks))
    deltas = [detok.push(i) for i in range(len(chunks))]
    deltas.append(detok.flush())
    assert not any("\ufffd" in d for d in deltas)
    assert "".join(deltas) == text


def test_emoji_split_across_byte_tokens_is_held_back() -> None:
    smile = "🙂".encode()
    detok = IncrementalDetokenizer(ByteChunkTokenizer([smile[:1], smile[1:3], smile[3:], b"!"]))
    assert [detok.push(0), detok.push(1), detok.push(2), detok.push(3)] == ["", "", "🙂", "!"]
    assert detok.flush() == ""


def test_invalid_and_truncated_bytes_become_replacement_chars_like_a_full_decode() -> None:
    detok = IncrementalDetokenizer(ByteChunkTokenizer([b"a\x80b", "é".encode()[:1]]))
    assert detok.push(0) == "a\ufffdb"
    assert detok.push(1) == ""
    assert detok.flush() == "\ufffd"
    assert detok.flush() == ""


def test_real_tokenizer_splits_characters_and_deltas_stay_clean() -> None:
    tok = real_qwen_tokenizer()
    text = "Rare glyphs 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𓀀𓁐 🧑‍🚀🫠 and CJK 鬱龘靐 plus Ꭓ."
    ids = tok.encode_text(text)
    partial = [i for i in ids if _not_utf8(tok.token_bytes(i))]
    assert partial, "the sample must contain tokens that are only part of a character"
    detok = IncrementalDetokenizer(tok)
    deltas = [detok.push(i) for i in ids] + [detok.flush()]
    assert not any("\ufffd" in d for d in deltas)
    assert "".join(deltas) == text == tok.decode(ids)


def _not_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


def test_control_tokens_are_skipped_but_markup_tokens_kept() -> None:
    tok = real_qwen_tokenizer()
    special = tok.special_tokens
    skipped = control_token_ids(tok)
    assert {special["<|im_end|>"], special["<|endoftext|>"], special["<|im_start|>"]} <= skipped
    assert special["<think>"] not in skipped and special["<tool_call>"] not in skipped
    detok = IncrementalDetokenizer(tok)
    assert detok.push(special["<|im_end|>"]) == ""
    assert detok.push(special["<think>"]) == "<think>"
    raw = IncrementalDetokenizer(tok, skip_control_tokens=False)
    assert raw.push(special["<|im_end|>"]) == "<|im_end|>"


def test_misuse_is_a_usage_error() -> None:
    detok = IncrementalDetokenizer(ByteChunkTokenizer([b"x"]))
    for bad in (-1, True, "3", 1.0):
        with pytest.raises(UsageError):
            detok.push(bad)  # type: ignore[arg-type]
    detok.flush()
    with pytest.raises(UsageError):
        detok.push(0)


def test_token_stream_parser_matches_the_text_parse_on_real_ids() -> None:
    tok = real_qwen_tokenizer()
    special = tok.special_tokens
    reasoning, answer = "Sum the digits: 1+2+3 = 6 ✓", "The total is 6. 合計は6です。"
    call = '{"name": "record", "arguments": {"value": 6, "note": "和"}}'
    ids = [
        special["<think>"], *tok.encode_text(f"\n{reasoning}\n"), special["</think>"],
        *tok.encode_text(f"\n\n{answer}\n"), special["<tool_call>"], *tok.encode_text(f"\n{call}\n"),
        special["</tool_call>"], special["<|im_end|>"],
    ]
    stream = TokenStreamParser(
        tok, starts_in_reasoning=False, tool_parser=HermesParser(), tool_ids=ToolCallIds(seed=2)
    )
    events = [e for i in ids for e in stream.feed_ids([i])] + stream.finish()
    assert not any("\ufffd" in e.text for e in events if isinstance(e, (ReasoningDelta, ContentDelta)))
    streamed = ParsedOutput.from_events(events)
    assert streamed.reasoning == reasoning
    assert streamed.content == answer
    calls = [(c.name, c.arguments_dict()) for c in streamed.tool_calls]
    assert calls == [("record", {"value": 6, "note": "和"})]
    assert streamed.finish_reason == "tool_calls"
    text = f"<think>\n{reasoning}\n</think>\n\n{answer}\n<tool_call>\n{call}\n</tool_call>"
    whole = parse_output(
        text, starts_in_reasoning=False, tool_parser=HermesParser(), tool_ids=ToolCallIds(seed=2)
    )
    assert streamed == whole


def test_token_stream_parser_reports_reasoning_state() -> None:
    tok = real_qwen_tokenizer()
    stream = TokenStreamParser(tok, starts_in_reasoning=True)
    stream.feed_ids(tok.encode_text("hmm"))
    assert stream.in_reasoning
    stream.feed_ids([tok.special_tokens["</think>"]])
    assert not stream.in_reasoning
