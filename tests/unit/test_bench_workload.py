"""Workload parsing and exact-length prompts built from random vocabulary words."""

from __future__ import annotations

import asyncio

import pytest
from _chat_tokenizer import real_qwen_tokenizer

from qwenkit.bench.workload import (
    COMMON_WORDS,
    Level,
    PromptFactory,
    Workload,
    parse_int_list,
    user_messages,
    vocabulary_words,
)
from qwenkit.chat.encode import encode_chat
from qwenkit.errors import UsageError


def test_parse_int_list_keeps_order_and_drops_repeats() -> None:
    assert parse_int_list("1, 4,8,4,", "concurrency") == (1, 4, 8)


@pytest.mark.parametrize("text", ["", ",", "1,x", "0", "2,-1", "1.5"])
def test_parse_int_list_rejects_bad_input(text: str) -> None:
    with pytest.raises(UsageError):
        parse_int_list(text, "concurrency")


def test_levels_default_to_one_wave_per_concurrency() -> None:
    w = Workload(concurrency=(1, 4), prompt_tokens=(64, 256), output_tokens=8)
    assert w.levels() == [Level(1, 64, 1), Level(4, 64, 4), Level(1, 256, 1), Level(4, 256, 4)]
    assert Workload(concurrency=(2, 8), requests=5).levels() == [Level(2, 128, 5), Level(8, 128, 5)]
    assert w.max_concurrency == 4 and w.max_sequence == 264


@pytest.mark.parametrize(
    "kwargs",
    [{"output_tokens": 0}, {"requests": 0}, {"warmup": -1}, {"temperature": 3.0}, {"concurrency": ()}],
)
def test_workload_rejects_impossible_values(kwargs: dict[str, object]) -> None:
    with pytest.raises(UsageError):
        Workload(**kwargs)  # type: ignore[arg-type]


def _counter():  # type: ignore[no-untyped-def]
    tok = real_qwen_tokenizer()

    async def count(messages: list[dict[str, object]]) -> int:
        return len(encode_chat(messages, tok).ids)

    return tok, count


@pytest.mark.parametrize("target", [40, 128, 517, 1024])
def test_prompts_have_exactly_the_target_length_with_the_real_tokenizer(target: int) -> None:
    tok, count = _counter()
    factory = PromptFactory(vocabulary_words(tok), count, seed=3)
    prompts = [asyncio.run(factory.make(target)) for _ in range(3)]
    for prompt in prompts:
        assert prompt.exact
        assert prompt.tokens == target == len(encode_chat(prompt.messages, tok).ids)
    contents = {p.messages[0]["content"] for p in prompts}
    assert len(contents) == 3  # each request its own words: no prefix-cache reuse between them


def test_a_target_inside_the_template_overhead_is_a_usage_error() -> None:
    tok, count = _counter()
    factory = PromptFactory(COMMON_WORDS, count)
    overhead = asyncio.run(factory.overhead())
    assert overhead == len(encode_chat(user_messages([" time"]), tok).ids) - 1
    with pytest.raises(UsageError, match="template"):
        asyncio.run(factory.make(overhead))


def test_without_a_counter_each_word_is_one_token_after_the_given_overhead() -> None:
    factory = PromptFactory(COMMON_WORDS, None, seed=1, overhead=20)
    prompt = asyncio.run(factory.make(100))
    assert not prompt.exact and prompt.tokens == 100
    assert len(str(prompt.messages[0]["content"]).split()) == 80


def test_same_seed_same_prompts() -> None:
    a = asyncio.run(PromptFactory(COMMON_WORDS, None, seed=7).make(50))
    b = asyncio.run(PromptFactory(COMMON_WORDS, None, seed=7).make(50))
    c = asyncio.run(PromptFactory(COMMON_WORDS, None, seed=8).make(50))
    assert a.messages == b.messages != c.messages


def test_vocabulary_words_are_single_space_led_tokens() -> None:
    tok = real_qwen_tokenizer()
    words = vocabulary_words(tok, limit=300)
    assert len(words) == 300
    for word in words:
        assert word.startswith(" ") and word[1:].isalpha()
        assert len(tok.encode_text(word)) == 1


def test_common_words_are_single_tokens_for_qwen() -> None:
    tok = real_qwen_tokenizer()
    assert len(set(COMMON_WORDS)) == len(COMMON_WORDS) > 200
    assert [w for w in COMMON_WORDS if len(tok.encode_text(w)) != 1] == []
    assert len(tok.encode_text("".join(COMMON_WORDS))) == len(COMMON_WORDS)
