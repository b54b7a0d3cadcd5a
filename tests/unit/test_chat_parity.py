"""encode_chat gives the same ids as transformers' apply_chat_template on ordinary conversations."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from qwenkit.chat import builtin_template, encode_chat, gguf_chat_template
from qwenkit.chat.hf_tokenizer import HFTokenizer

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city — température, 天气",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "City name"},
                "days": {"type": "integer"},
            },
            "required": ["city"],
        },
    },
}
CLOCK = {
    "type": "function",
    "function": {"name": "now", "description": "The time", "parameters": {"type": "object"}},
}


def _call(name: str, args: Any, call_id: str = "call_1") -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": args}}


U = {"role": "user", "content": "What is the capital of France?"}
S = {"role": "system", "content": "You are a terse assistant."}
A = {"role": "assistant", "content": "Paris."}
U2 = {"role": "user", "content": "And of Germany?"}
CALL = {"role": "assistant", "content": "", "tool_calls": [_call("get_weather", {"city": "Paris"})]}
PAR = {
    "role": "assistant",
    "content": "",
    "tool_calls": [
        _call("get_weather", {"city": "Paris"}),
        _call("get_weather", {"city": "Köln", "days": 2}, "c2"),
    ],
}
T1 = {"role": "tool", "tool_call_id": "call_1", "content": '{"temp": 21, "sky": "clear"}'}
T2 = {"role": "tool", "tool_call_id": "c2", "content": "rain, 12°C"}

CONTINUE: dict[str, Any] = {"continue_final_message": True, "add_generation_prompt": False}
# (id, messages given to encode_chat, messages given to transformers or None for the same, tools, kwargs)
CASES: list[tuple[str, list[Any], list[Any] | None, list[Any] | None, dict[str, Any]]] = [
    ("user", [U], None, None, {}),
    ("system-user", [S, U], None, None, {}),
    ("multi-turn", [U, A, U2], None, None, {}),
    ("system-multi-turn", [S, U, A, U2], None, None, {}),
    ("thinking-off", [U], None, None, {"enable_thinking": False}),
    ("thinking-off-multi", [S, U, A, U2], None, None, {"enable_thinking": False}),
    ("thinking-on", [U], None, None, {"enable_thinking": True}),
    ("reasoning-earlier-dropped", [U, {**A, "reasoning_content": "France... Paris."}, U2], None, None, {}),
    (
        "inline-think-earlier-dropped",
        [U, {"role": "assistant", "content": "<think>\nhmm\n</think>\n\nParis."}, U2],
        None,
        None,
        {},
    ),
    (
        "reasoning-last-kept",
        [U, {**A, "reasoning_content": "Easy one."}],
        None,
        None,
        {"add_generation_prompt": False},
    ),
    (
        "inline-think-last-kept",
        [U, {"role": "assistant", "content": "<think>\nso\n</think>\n\nParis."}],
        None,
        None,
        {"add_generation_prompt": False},
    ),
    ("no-generation-prompt", [S, U, A], None, None, {"add_generation_prompt": False}),
    ("tools", [U], None, [WEATHER], {}),
    ("tools-system", [S, U], None, [WEATHER, CLOCK], {}),
    ("tool-call-result", [U, CALL, T1], None, [WEATHER], {}),
    ("parallel-calls-merged-results", [U, PAR, T1, T2], None, [WEATHER], {}),
    ("call-with-content", [U, {**CALL, "content": "Let me check."}, T1], None, [WEATHER], {}),
    (
        "multi-step-tools",
        [U, CALL, T1, {**PAR, "reasoning_content": "need more"}, T1, T2],
        None,
        [WEATHER],
        {},
    ),
    (
        "tool-args-json-string",
        [U, {**CALL, "tool_calls": [_call("get_weather", '{"city": "Paris"}')]}, T1],
        [U, CALL, T1],
        [WEATHER],
        {},
    ),
    (
        "tool-then-answer",
        [U, CALL, T1, {"role": "assistant", "content": "21 and clear."}, U2],
        None,
        [WEATHER],
        {},
    ),
    (
        "text-parts-user",
        [{"role": "user", "content": [{"type": "text", "text": "Hi"}, {"type": "text", "text": "there"}]}],
        [{"role": "user", "content": "Hi\nthere"}],
        None,
        {},
    ),
    (
        "text-parts-system",
        [{"role": "system", "content": [{"type": "text", "text": "Be kind."}]}, U],
        [{"role": "system", "content": "Be kind."}, U],
        None,
        {},
    ),
    ("unicode", [{"role": "user", "content": "北京的天气怎么样？ 🌦️ naïve café"}], None, None, {}),
    ("whitespace-code", [{"role": "user", "content": "\n  def f(x):\n\treturn x  \n\n"}], None, None, {}),
    ("json-content", [{"role": "user", "content": '{"a": [1, 2, {"b": null}], "c": "\\n"}'}], None, None, {}),
    ("soft-no-think", [U, A, {"role": "user", "content": "Again please /no_think"}], None, None, {}),
    ("soft-think", [{"role": "user", "content": "Prove it. /think"}], None, None, {}),
    ("empty-user", [{"role": "user", "content": ""}], None, None, {}),
    (
        "nested-args",
        [U, {**CALL, "tool_calls": [_call("get_weather", {"city": "Zürich", "opts": [1, {"u": "°C"}]})]}, T1],
        None,
        [WEATHER],
        {},
    ),
    ("second-system", [S, U, {"role": "system", "content": "Now answer in French."}, U2], None, None, {}),
    (
        "developer-role",
        [{"role": "developer", "content": "Rules."}, U],
        [{"role": "system", "content": "Rules."}, U],
        None,
        {},
    ),
    (
        "ten-turns",
        [S]
        + [
            m
            for i in range(5)
            for m in ({"role": "user", "content": f"Q{i}?"}, {"role": "assistant", "content": f"A{i}."})
        ]
        + [U],
        None,
        None,
        {},
    ),
    ("tool-result-first-turn-thinking-off", [U, CALL, T1], None, [WEATHER], {"enable_thinking": False}),
    # A pre-filled answer (vLLM's and transformers' continue_final_message): the final turn stays open.
    ("continue-final", [U, {"role": "assistant", "content": "The capital is"}], None, None, CONTINUE),
    (
        "continue-final-code-fence",
        [S, U, A, U2, {"role": "assistant", "content": "Here it is:\n```python\n"}],
        None,
        None,
        CONTINUE,
    ),
    (
        "continue-final-with-reasoning",
        [U, {"role": "assistant", "content": "Par", "reasoning_content": "Easy."}],
        None,
        None,
        CONTINUE,
    ),
]


@pytest.fixture(scope="module")
def hf_auto(qwen3_tokenizer_dir: Path) -> Any:
    import transformers
    return transformers.AutoTokenizer.from_pretrained(str(qwen3_tokenizer_dir))


@pytest.fixture(scope="module")
def qwen3_tok(qwen3_tokenizer_dir: Path) -> HFTokenizer:
    return HFTokenizer.from_dir(qwen3_tokenizer_dir)


def _reference(
    hf_auto: Any, template: str, messages: list[Any], tools: Any, kwargs: dict[str, Any]
) -> list[int]:
    add = kwargs.get("add_generation_prompt", True)
    extra = {k: v for k, v in kwargs.items() if k != "add_generation_prompt"}
    ids = hf_auto.apply_chat_template(
        messages,
        tools=tools,
        chat_template=template,
        add_generation_prompt=add,
        tokenize=True,
        return_dict=False,
        **extra,
    )
    return list(ids)


# Inline <think> tags are ordinary content only for templates that split them off (Qwen3); for Qwen2.5
# they are added-token text inside caller content, which transformers turns into control tokens and we don't.
SPLITS_INLINE_THINK = {"inline-think-earlier-dropped", "inline-think-last-kept"}


def _check_table(tok: HFTokenizer, hf_auto: Any, template: str) -> int:
    checked = 0
    for case_id, ours, theirs, tools, kwargs in CASES:
        if case_id in SPLITS_INLINE_THINK and "reasoning_content" not in template:
            continue
        encoded = encode_chat(ours, tok, tools=tools, **kwargs)
        expected = _reference(hf_auto, template, theirs if theirs is not None else ours, tools, kwargs)
        assert list(encoded.ids) == expected, f"{case_id}: ids differ\n{encoded.text}"
        assert tok.decode(encoded.ids) == encoded.text, case_id
        checked += 1
    return checked


def test_table_is_large_enough() -> None:
    assert len(CASES) >= 30
    assert len({c[0] for c in CASES}) == len(CASES)


def test_qwen3_parity_with_transformers(qwen3_tok: HFTokenizer, hf_auto: Any) -> None:
    template = qwen3_tok.chat_template
    assert template is not None and "enable_thinking" in template
    assert _check_table(qwen3_tok, hf_auto, template) == len(CASES)


def test_qwen25_builtin_parity_with_transformers(qwen3_tokenizer_dir: Path, hf_auto: Any) -> None:
    template = builtin_template("qwen2.5")
    tok = HFTokenizer.from_dir(qwen3_tokenizer_dir, chat_template=template)
    assert _check_table(tok, hf_auto, template) == len(CASES) - len(SPLITS_INLINE_THINK) >= 30


@pytest.mark.realmodel
def test_qwen25_gguf_template_parity(real_model_path: Path, qwen3_tokenizer_dir: Path, hf_auto: Any) -> None:
    """The real Qwen2.5-Coder GGUF's embedded template: equal to the official built-in, same ids as HF."""
    template = gguf_chat_template(real_model_path)
    assert template is not None
    assert template == builtin_template("qwen2.5")
    assert "You are Qwen, created by Alibaba Cloud. You are a helpful assistant." in template
    tok = HFTokenizer.from_dir(qwen3_tokenizer_dir, chat_template=template)
    assert _check_table(tok, hf_auto, template) == len(CASES) - len(SPLITS_INLINE_THINK) >= 30


def test_qwen3_builtin_is_the_shipped_template(qwen3_tokenizer_dir: Path) -> None:
    config = json.loads((qwen3_tokenizer_dir / "tokenizer_config.json").read_text(encoding="utf-8"))
    assert builtin_template("qwen3") == config["chat_template"]


def test_qwen25_default_system_prompt(qwen3_tokenizer_dir: Path, hf_auto: Any) -> None:
    tok = HFTokenizer.from_dir(qwen3_tokenizer_dir, chat_template=builtin_template("qwen2.5"))
    encoded = encode_chat([U], tok)
    assert encoded.text.startswith(
        "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
    )
    assert list(encoded.ids) == _reference(hf_auto, builtin_template("qwen2.5"), [U], None, {})
