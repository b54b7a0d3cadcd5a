"""Chat templates are untrusted code: no Python internals, bounded work, bounded size, clear errors."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime

import pytest

from qwenkit.chat import encode_chat
from qwenkit.chat.sandbox import RenderBudget
from qwenkit.chat.template import compile_template, render
from qwenkit.errors import TemplateError, UsageError


class CharTokenizer:
    """A minimal Tokenizer: one id per byte, ChatML control tokens above 256."""

    SPECIALS: Mapping[str, int] = {"<|im_start|>": 300, "<|im_end|>": 301, "<think>": 302, "</think>": 303}

    @property
    def special_tokens(self) -> Mapping[str, int]:
        return self.SPECIALS

    @property
    def eos_token_ids(self) -> frozenset[int]:
        return frozenset({301})

    @property
    def chat_template(self) -> str | None:
        return None

    @property
    def vocab_size(self) -> int:
        return 304

    def encode_text(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))

    def token_bytes(self, token_id: int) -> bytes:
        by_id = {v: k for k, v in self.SPECIALS.items()}
        return by_id[token_id].encode() if token_id in by_id else bytes([token_id])

    def decode(self, ids: Sequence[int]) -> str:
        return b"".join(self.token_bytes(i) for i in ids).decode("utf-8", errors="replace")


USER = [{"role": "user", "content": "hello"}]
SMALL = RenderBudget(max_chars=100_000, max_steps=50_000)

ESCAPES = [
    "{{ ''.__class__.__mro__ }}",
    "{{ ''.__class__ }}",
    "{{ cycler.__init__.__globals__ }}",
    "{{ joiner.__init__.__globals__.os.system('id') }}",
    "{{ namespace.__init__ }}",
    "{{ self.__init__.__globals__ }}",
    "{{ raise_exception.__globals__ }}",
    "{{ messages.__class__.__base__.__subclasses__() }}",
    "{{ ''['__class__'] }}",
    "{{ ''|attr('__class__') }}",
    "{{ '{0.__class__}'.format('') }}",
    "{{ messages[0].items.__self__ }}",
    "{% set ns = namespace(_hidden=1) %}",
]


@pytest.mark.parametrize("source", ESCAPES)
def test_reaching_for_python_internals_is_a_template_error(source: str) -> None:
    with pytest.raises(TemplateError, match=r"sandbox|not allowed"):
        encode_chat(USER, CharTokenizer(), template=source)


@pytest.mark.parametrize(
    "source",
    [
        "{{ 'x' * 10**9 }}",
        "{{ [1] * 10**9 }}",
        "{{ 2 ** (10 ** 8) }}",
        "{{ '%999999999s' % 'x' }}",
        "{{ '%*s' % (999999999, 'x') }}",
        "{{ '{:999999999}'.format('x') }}",
        "{{ 'x'.center(999999999) }}",
        "{{ 'x'|center(999999999) }}",
        "{{ 'a\nb'|indent(999999999) }}",
        "{% set ns = namespace(s='x') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
        "{% set ns = namespace(s='x') %}{% for i in range(64) %}{% set ns.s = ns.s + ns.s %}{% endfor %}",
        "{% set ns = namespace(s='xx') %}{% for i in range(64) %}"
        "{% set ns.s = ns.s|replace('x', 'xx') %}{% endfor %}",
        "{% set ns = namespace(s='xx') %}{% for i in range(64) %}"
        "{% set ns.s = ns.s.replace('x', 'xx') %}{% endfor %}",
        "{% for i in range(100000) %}{% for j in range(1000) %}xxxxxxxxxx{% endfor %}{% endfor %}",
    ],
)
def test_output_and_value_sizes_are_bounded(source: str) -> None:
    with pytest.raises(TemplateError, match=r"size|huge"):
        render(source, {"messages": USER}, RenderBudget(max_chars=100_000, max_steps=10**9))


def test_loops_are_bounded() -> None:
    source = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
    with pytest.raises(TemplateError, match="loop steps"):
        render(source, {}, SMALL)


def test_default_budget_stops_a_runaway_template_through_encode_chat() -> None:
    source = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
    with pytest.raises(TemplateError, match=r"loop steps|longer than"):
        encode_chat(USER, CharTokenizer(), template=source)


def test_unbounded_recursion_is_a_template_error() -> None:
    with pytest.raises(TemplateError, match=r"recursed|loop steps"):
        render("{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}", {}, SMALL)


def test_raise_exception_syntax_and_undefined_errors_are_clear() -> None:
    with pytest.raises(TemplateError, match="rejected the conversation: only user turns"):
        encode_chat(USER, CharTokenizer(), template="{{ raise_exception('only user turns') }}")
    with pytest.raises(TemplateError, match="syntax error at line 2"):
        encode_chat(USER, CharTokenizer(), template="ok {{ 1 }}\n{% if %}")
    with pytest.raises(TemplateError, match="undefined"):
        encode_chat(USER, CharTokenizer(), template="{{ nothing.at.all }}")


def test_template_error_is_a_usage_error_with_its_code() -> None:
    with pytest.raises(UsageError) as info:
        encode_chat(USER, CharTokenizer(), template="{{ ''.__class__.__mro__ }}")
    assert info.value.to_openai()["error"]["code"] == "template_error"


def test_transformers_filters_and_globals() -> None:
    source = (
        "{{ {'a': '<é>', 'b': [1, 2]}|tojson }}|{{ [1]|tojson(indent=2) }}|{{ 'x'|tojson }}|"
        "{{ strftime_now('%Y') }}|"
        "{% for i in range(5) %}{% if i == 3 %}{% break %}{% endif %}{% if i == 1 %}{% continue %}{% endif %}"
        "{{ i }}{% endfor %}|{% generation %}G{% endgeneration %}|{{ dict(a=1)['a'] }}|"
        "{% set ns = namespace(n=1) %}{% set ns.n = ns.n + 1 %}{{ ns.n }}"
    )
    out = render(source, {})
    year = datetime.now().strftime("%Y")
    assert out == f'{{"a": "<é>", "b": [1, 2]}}|[\n  1\n]|"x"|{year}|02|G|1|2'


def test_trim_and_lstrip_blocks_like_transformers() -> None:
    source = "{% for m in messages %}\n    {{ m.content }}\n{% endfor %}"
    assert render(source, {"messages": USER}) == "    hello\n"


def test_compiled_templates_are_cached_by_source() -> None:
    source = "{{ messages|length }} cached"
    assert compile_template(source) is compile_template(source)
    assert compile_template(source) is not compile_template(source + " ")


def test_generators_in_loops_still_know_their_length() -> None:
    """The loop guard wraps iterables in a generator; loop.last/length/revindex must keep working."""
    source = (
        "{% for m in messages[::-1] %}{{ loop.index0 }}{{ loop.length }}{{ loop.revindex }}{{ loop.last }}"
        "{% endfor %}"
    )
    two = [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]
    assert render(source, {"messages": two}) == "022False121True"


def _guard_iter() -> Iterator[int]:
    yield from range(3)


def test_budget_outside_encode_uses_a_fresh_default() -> None:
    assert render("{% for i in it %}{{ i }}{% endfor %}", {"it": _guard_iter()}) == "012"
