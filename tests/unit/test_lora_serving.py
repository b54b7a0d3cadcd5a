"""Adapters served by name: settings, /v1/models, routing a request's ``model`` to its adapter, the core's
refusal where no adapter is loaded, and llama.cpp's grouping of sequences by adapter."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from _chat_tokenizer import real_qwen_tokenizer
from _scripted import ScriptedBackend
from fastapi.testclient import TestClient

from qwenkit.engine.handle import QueuedHandle
from qwenkit.engine.llama_adapters import LlamaAdapters
from qwenkit.engine.llm import LLM, ModelFacts
from qwenkit.engine.sequence import Sequence
from qwenkit.engine.types import SamplingParams
from qwenkit.errors import UsageError
from qwenkit.server.app import create_app
from qwenkit.server.settings import ServerSettings, load_settings


def test_lora_settings_are_name_equals_path() -> None:
    settings = load_settings(lora=["a=/x/a.gguf", "b=/x/b"])
    assert settings.lora_pairs == (("a", "/x/a.gguf"), ("b", "/x/b"))
    for bad, why in (
        (["a"], "is not name=path"),
        (["=p"], "is not name=path"),
        (["a=1", "a=2"], "given twice"),
    ):
        with pytest.raises(UsageError, match=why):
            load_settings(lora=bad)


def test_a_request_names_an_adapter_by_model() -> None:
    backend = ScriptedBackend(real_qwen_tokenizer(), "", "ok")
    llm = LLM(backend, ModelFacts(path=Path("base.gguf"), variant=None, template_family=None))
    with TestClient(create_app(ServerSettings(lora=["fact=/nowhere.gguf"]), llm)) as client:
        cards = client.get("/v1/models").json()["data"]
        assert [c["id"] for c in cards] == ["base.gguf", "fact"] and cards[1]["parent"] == "base.gguf"
        assert client.get("/v1/models/fact").json()["parent"] == "base.gguf"
        messages = [{"role": "user", "content": "hi"}]
        reply = client.post("/v1/chat/completions", json={"model": "fact", "messages": messages}).json()
        assert reply["model"] == "fact"
        client.post("/v1/chat/completions", json={"model": "base.gguf", "messages": messages})
        client.post("/v1/completions", json={"model": "fact", "prompt": "x", "max_tokens": 2})
        missing = client.post("/v1/chat/completions", json={"model": "other", "messages": messages})
    assert [p.adapter for _, p in backend.submitted] == ["fact", None, "fact"]
    assert missing.status_code == 404


class _FakeLib:
    llama_adapter_lora_p_ctypes: Any = None

    def __init__(self) -> None:
        self.applied: list[Any] = []

    def llama_adapter_lora_init(self, model: Any, path: bytes) -> int:
        return 1

    def llama_set_adapters_lora(self, ctx: Any, adapters: Any, n: int, scales: Any) -> int:
        self.applied.append(n)
        return 0


def _seq(adapter: str | None) -> Sequence:
    return Sequence([1, 2], SamplingParams(adapter=adapter), QueuedHandle(vocab_size=10), frozenset())


def test_llama_groups_take_turns(tmp_path: Path) -> None:
    path = tmp_path / "a.gguf"
    path.write_bytes(b"GGUF")
    lib = _FakeLib()
    adapters = LlamaAdapters(lib, object(), [("a", str(path))])
    base, tuned1, tuned2 = _seq(None), _seq("a"), _seq("a")
    chosen = [adapters.group([base, tuned1, tuned2]) for _ in range(4)]
    assert chosen[0] == [base] and chosen[1] == [tuned1, tuned2] and chosen[2] == [base]
    assert adapters.group([tuned1]) == [tuned1]  # one group: it runs every step
    adapters.apply(None, None)  # already none: no call
    assert lib.applied == []
    with pytest.raises(UsageError, match="no adapter named 'b'"):
        adapters.check("b")
    with pytest.raises(Exception, match="no GGUF adapter file"):
        LlamaAdapters(lib, object(), [("x", str(tmp_path / "missing.gguf"))])
