"""/v1/models carries the catalog's facts (size, thinking mode, Qwen's presets) when the model is known."""

from __future__ import annotations

from pathlib import Path

from _chat_tokenizer import real_qwen_tokenizer
from _scripted import ScriptedBackend
from fastapi.testclient import TestClient

from qwenkit.catalog import load_catalog
from qwenkit.chat.template import TemplateFamily
from qwenkit.engine.llm import LLM, ModelFacts
from qwenkit.server.app import create_app
from qwenkit.server.settings import ServerSettings


def test_models_card_has_catalog_facts() -> None:
    variant = load_catalog().get("qwen3-8b")
    backend = ScriptedBackend(real_qwen_tokenizer(), "", "ok")
    facts = ModelFacts(path=Path("qwen3-8b.gguf"), variant=variant, template_family=TemplateFamily.QWEN3)
    llm = LLM(backend, facts)
    with TestClient(create_app(ServerSettings(), llm)) as client:
        card = client.get("/v1/models").json()["data"][0]
    assert card["params_total"] == variant.params_total
    assert card["thinking"] == "hybrid"
    assert card["sampling"]["thinking"]["temperature"] == 0.6
    assert card["sampling"]["non_thinking"]["top_p"] == 0.8
    assert card["display_name"] == variant.display_name
