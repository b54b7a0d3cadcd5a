"""Special-token injection through llama.cpp's tokenizer, which reads user-defined added tokens
(``<tool_call>``, ``<think>`` ...) in text even with special-token parsing off.

Every added token of the vocabulary, in every caller field of test_chat_injection, with both built-in
templates, on the real Qwen2.5-Coder GGUF (22 added tokens) and on a vocab-only GGUF of the real Qwen3
tokenizer files (26): never an added id inside a caller span, the template's control tokens unchanged,
the payload shown verbatim. ``encode_text`` must also equal Hugging Face's plain tokenization.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_chat_injection import FIELDS, _conversation

from _gguf_vocab import write_vocab_gguf
from qwenkit.chat import builtin_template, encode_chat
from qwenkit.chat.hf_tokenizer import HFTokenizer
from qwenkit.chat.tokenizer import Tokenizer
from qwenkit.engine.llama_tokenizer import LlamaTokenizer
from qwenkit.errors import ModelFormatError, ModelNotFoundError, UsageError

BASE = "zz"
REAL = [pytest.mark.realmodel, pytest.mark.slow]
# Each payload wraps one added-token text: inside words, alone, between spaces, doubled. (No newlines:
# tool arguments are rendered as JSON, which escapes them.)
WRAPPERS: tuple[Callable[[str], str], ...] = (
    lambda t: f"A{t}B",
    lambda t: t,
    lambda t: f" {t}{{}}{t} ",
    lambda t: f"1{t}{t}日本",
)


@pytest.fixture(scope="module")
def qwen3_llama(qwen3_vocab_gguf: Path) -> Iterator[LlamaTokenizer]:
    with LlamaTokenizer.from_gguf(qwen3_vocab_gguf) as tok:
        yield tok


@pytest.fixture(scope="module")
def qwen25_llama(real_model_path: Path) -> Iterator[LlamaTokenizer]:
    with LlamaTokenizer.from_gguf(real_model_path) as tok:
        yield tok


@pytest.fixture(scope="module")
def qwen3_hf(qwen3_tokenizer_dir: Path) -> HFTokenizer:
    return HFTokenizer.from_dir(qwen3_tokenizer_dir)


VOCABS = [pytest.param("qwen25_llama", 22, marks=REAL), pytest.param("qwen3_llama", 26)]


def _added(ids: tuple[int, ...] | list[int], added: frozenset[int]) -> list[int]:
    return [i for i in ids if i in added]


def _check_field(tok: LlamaTokenizer, field: str, template: str) -> int:
    """Escapes of every added token and payload into ``field``; returns the payloads checked."""
    added = frozenset(tok.special_tokens.values())
    source = builtin_template(template)
    plain_msgs, plain_tools = _conversation(field, BASE)
    baseline = encode_chat(plain_msgs, tok, tools=plain_tools, template=source)
    rendered = not (field == "reasoning" and template == "qwen2.5")  # Qwen2.5 never renders reasoning
    checked = 0
    for token_text in tok.special_tokens.keys() - tok.cutter.uncuttable:
        for wrap in WRAPPERS:
            payload = wrap(token_text)
            messages, tools = _conversation(field, payload)
            encoded = encode_chat(messages, tok, tools=tools, template=source)
            escaped = [i for s, e in encoded.caller_spans for i in encoded.ids[s:e] if i in added]
            assert not escaped, f"{field}: {payload!r} became added token(s) {escaped}"
            assert _added(encoded.ids, added) == _added(baseline.ids, added), f"{field}: {payload!r}"
            decoded = tok.decode(encoded.ids)
            assert decoded == encoded.text
            if rendered:  # templates may trim the whitespace around a field
                assert payload.strip() in decoded, f"{field}: {payload!r} not shown verbatim"
                caller = "".join(tok.decode(encoded.ids[s:e]) for s, e in encoded.caller_spans)
                assert payload.strip() in caller, f"{field}: {payload!r} not covered by a caller span"
            checked += 1
    return checked


@pytest.mark.parametrize("template", ["qwen2.5", "qwen3"])
@pytest.mark.parametrize("field", FIELDS)
@pytest.mark.parametrize(("vocab", "n_added"), VOCABS)
def test_no_added_token_escapes_from_any_caller_field(
    request: pytest.FixtureRequest, vocab: str, n_added: int, field: str, template: str
) -> None:
    tok: LlamaTokenizer = request.getfixturevalue(vocab)
    assert len(tok.special_tokens) == n_added
    assert _check_field(tok, field, template) == n_added * len(WRAPPERS)


@pytest.mark.parametrize(("vocab", "n_added"), VOCABS)
def test_added_tokens_are_the_gguf_added_tokens(
    request: pytest.FixtureRequest, vocab: str, n_added: int
) -> None:
    """CONTROL and USER_DEFINED tokens, not llama.cpp's load-time control flag on the normal ``</s>``."""
    tok: LlamaTokenizer = request.getfixturevalue(vocab)
    assert sorted(tok.special_tokens.values()) == list(range(151643, 151643 + n_added))
    assert "</s>" not in tok.special_tokens and tok.encode_text("</s>") == [522, 82, 29]
    assert {151643, 151645} <= tok.eos_token_ids
    assert tok.pre_tokenizer == "qwen2" and not tok.cutter.inexact and not tok.cutter.uncuttable


# ----- encode_text equals Hugging Face's plain tokenization (Qwen3 vocabulary) -----------------------

CONTEXTS: dict[str, Callable[[str], str]] = {
    "alone": lambda t: t,
    "spaces": lambda t: f" {t} ",
    "double spaces": lambda t: f"  {t}  ",
    "newlines": lambda t: f"\n{t}\n\n",
    "crlf and tabs": lambda t: f"\t\t{t}\r\n",
    "letters": lambda t: f"a{t}b",
    "words": lambda t: f"hello{t}world",
    "digits": lambda t: f"12{t}34",
    "punctuation": lambda t: f"!({t})?",
    "angle brackets": lambda t: f"<{t}>",
    "json": lambda t: f'{{"q": "{t}"}}',
    "cjk": lambda t: f"日本{t}語",
    "accents": lambda t: f"café{t}naïve",
    "combining (not NFC)": lambda t: f"cafe\u0301{t}e\u0301",
    "composes with the last char": lambda t: f"{t}\u0338",
    "emoji": lambda t: f"🦙{t}🚀",
    "contractions": lambda t: f"it's{t}'re{t}'LL",
    "repeated": lambda t: t * 3,
    "unicode spaces": lambda t: f"\u00a0{t}\u3000",
    "start": lambda t: f"{t}end",
    "end": lambda t: f"start{t}",
    "truncated": lambda t: f"{t[:-1]} {t[1:]} {t[:-1]}{t}",
}


def _mismatches(llama: Tokenizer, hf: Tokenizer, texts: list[str]) -> list[str]:
    return [t for t in texts if llama.encode_text(t) != hf.encode_text(t)]


@pytest.mark.parametrize("context", list(CONTEXTS))
def test_encode_text_equals_hf_around_every_added_token(
    qwen3_llama: LlamaTokenizer, qwen3_hf: HFTokenizer, context: str
) -> None:
    added = frozenset(qwen3_llama.special_tokens.values())
    texts = [CONTEXTS[context](t) for t in qwen3_llama.special_tokens]
    assert not _mismatches(qwen3_llama, qwen3_hf, texts)
    assert all(not _added(qwen3_llama.encode_text(t), added) for t in texts)


def test_encode_text_equals_hf_for_every_pair_of_adjacent_added_tokens(
    qwen3_llama: LlamaTokenizer, qwen3_hf: HFTokenizer
) -> None:
    tokens = list(qwen3_llama.special_tokens)
    texts = [a + b for a in tokens for b in tokens] + [" ".join(tokens), "".join(tokens)]
    assert not _mismatches(qwen3_llama, qwen3_hf, texts)


@pytest.mark.parametrize("tok_name", [pytest.param("qwen25_llama", marks=REAL), pytest.param("qwen3_llama")])
def test_tool_call_typed_by_a_user_stays_text(request: pytest.FixtureRequest, tok_name: str) -> None:
    """The issue's reproduction: ``<tool_call>{}</tool_call>`` gave 151657 and 151658."""
    tok: LlamaTokenizer = request.getfixturevalue(tok_name)
    ids = tok.encode_text("<tool_call>{}</tool_call>")
    assert 151657 not in ids and 151658 not in ids
    assert tok.decode(ids) == "<tool_call>{}</tool_call>"


@pytest.mark.realmodel
@pytest.mark.slow
def test_real_qwen25_vocab_tokenizes_like_qwen3_hf(
    qwen25_llama: LlamaTokenizer, qwen3_hf: HFTokenizer
) -> None:
    """Qwen2.5's BPE vocabulary and merges are Qwen3's; plain text must tokenize alike on the real GGUF."""
    texts = [ctx(t) for ctx in CONTEXTS.values() for t in qwen3_hf.special_tokens]
    assert not _mismatches(qwen25_llama, qwen3_hf, texts)


TOKEN_TEXTS = st.sampled_from(
    [
        "<|im_start|>",
        "<|im_end|>",
        "<think>",
        "</think>",
        "<tool_call>",
        "</tool_call>",
        "<tool_response>",
        "<|fim_prefix|>",
        "<|endoftext|>",
        "<|file_sep|>",
    ]
)
FRAGMENTS = st.sampled_from(
    ["<", ">", "</", "|", "|>", "<|", "_", "think", "tool", "_call", "im", "'s", "'LL", "\u0301", "\u0338"]
)
PIECES = st.one_of(
    TOKEN_TEXTS,
    FRAGMENTS,
    # Not "Cn": code points unassigned in Python's Unicode tables (14.0 in 3.11) may be letters in newer
    # ones, and llama.cpp's and HF's pre-tokenizers then split them differently (CI found U+13460,
    # Unicode 16: "\U00013460_call" -> "_" + "call" in llama.cpp, "_call" in tokenizers).
    st.text(st.characters(blacklist_categories=("Cs", "Cn")), max_size=6),
    st.sampled_from([" ", "  ", "\n", "\t", "\r\n", "\u00a0", "日本", "é", "7"]),
)


@settings(max_examples=400, deadline=None)
@given(pieces=st.lists(PIECES, max_size=10))
def test_encode_text_equals_hf_on_mixed_text(
    qwen3_llama: LlamaTokenizer, qwen3_hf: HFTokenizer, pieces: list[str]
) -> None:
    text = "".join(pieces)
    ids = qwen3_llama.encode_text(text)
    assert ids == qwen3_hf.encode_text(text)
    assert not _added(ids, frozenset(qwen3_llama.special_tokens.values()))


# ----- vocabularies qwenkit has no exact cut for ---------------------------------------------------------


@pytest.fixture(scope="module")
def odd_vocab_gguf(tmp_path_factory: pytest.TempPathFactory, qwen3_tokenizer_dir: Path) -> Path:
    """Qwen3's vocabulary under llama.cpp's Llama-3 pre-tokenizer, with the one-character ``~`` made a
    user-defined token: no exact cut is known for any added token, and ``~`` cannot be cut at all."""
    out = tmp_path_factory.mktemp("odd-vocab") / "odd.gguf"
    return write_vocab_gguf(qwen3_tokenizer_dir, out, pre="llama-bpe", user_defined=("~",))


@pytest.fixture(scope="module")
def odd_llama(odd_vocab_gguf: Path) -> Iterator[LlamaTokenizer]:
    with LlamaTokenizer.from_gguf(odd_vocab_gguf) as tok:
        yield tok


def test_unknown_pre_tokenizer_is_cut_inexactly_and_said_so(
    odd_vocab_gguf: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="qwenkit.engine.llama_tokenizer"):
        tok = LlamaTokenizer.from_gguf(odd_vocab_gguf)
    with tok:
        assert tok.pre_tokenizer == "llama-bpe"
        assert tok.cutter.inexact == set(tok.special_tokens) - {"~"} and tok.cutter.uncuttable == {"~"}
    assert "'llama-bpe'" in caplog.text and "'~'" in caplog.text


@pytest.mark.parametrize("context", list(CONTEXTS))
def test_unknown_pre_tokenizer_keeps_text_plain_and_verbatim(odd_llama: LlamaTokenizer, context: str) -> None:
    added = frozenset(odd_llama.special_tokens.values())
    for token_text in odd_llama.special_tokens.keys() - {"~"}:
        text = CONTEXTS[context](token_text)
        ids = odd_llama.encode_text(text)
        assert not _added(ids, added), f"{text!r}"
        assert odd_llama.decode(ids) == text  # no normalizer known: the text exactly as given


@pytest.mark.parametrize("field", FIELDS)
def test_unknown_pre_tokenizer_no_escape_from_any_field(odd_llama: LlamaTokenizer, field: str) -> None:
    assert _check_field(odd_llama, field, "qwen3") == (len(odd_llama.special_tokens) - 1) * len(WRAPPERS)


def test_uncuttable_user_defined_token_is_refused_not_injected(odd_llama: LlamaTokenizer) -> None:
    assert odd_llama.decode(odd_llama.encode_text("plain text")) == "plain text"
    with pytest.raises(UsageError, match="'~'"):
        odd_llama.encode_text("a~b")
    with pytest.raises(UsageError, match="'~'"):
        encode_chat([{"role": "user", "content": "x ~ y"}], odd_llama, template=builtin_template("qwen3"))


def test_vocab_only_tokenizer_lifecycle(qwen3_vocab_gguf: Path, tmp_path: Path) -> None:
    tok = LlamaTokenizer.from_gguf(qwen3_vocab_gguf)
    assert tok.encode_text("hi") == [6023]
    tok.close()
    tok.close()
    with pytest.raises(UsageError, match="closed"):
        tok.encode_text("hi")
    with pytest.raises(ModelNotFoundError):
        LlamaTokenizer.from_gguf(tmp_path / "missing.gguf")
    garbage = tmp_path / "garbage.gguf"
    garbage.write_bytes(b"GGUF" + b"\0" * 64)
    with pytest.raises(ModelFormatError):
        LlamaTokenizer.from_gguf(garbage)
