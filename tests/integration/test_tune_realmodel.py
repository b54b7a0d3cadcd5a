"""Acceptance: LoRA on the real Qwen2.5-Coder-0.5B teaches a made-up fact without forgetting, and the
result serves: merged -> converted -> Q8_0 -> ``qwenkit serve`` (llama.cpp), and as a GGUF adapter
chosen per request next to the base model on the same server.

One training run (module fixture, the default recipe, short sequences) feeds every test here.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _fact_data import HELD_OUT, correct, write
from _serve_process import serve_process

from qwenkit.finetune.config import TuneConfig
from qwenkit.finetune.run import TuneResult, tune_config

# The training run (39 steps, the probe included) is the first test's setup: 660 s on a 2-core VM where
# CI is slow (stop 38), 209 s on 2 faster cores; then 203 s (merge, convert, serve) and 55 s. Each load
# of the GGUF base through transformers costs about 100 s there, so the tests load it no more than they must.
pytestmark = [pytest.mark.slow, pytest.mark.realmodel, pytest.mark.timeout(2400)]

PPL_BOUND = 1.20  # perplexity on unrelated text may rise by less than 20% (measured: x1.128)
QUESTIONS = [[{"role": "user", "content": q}] for q in HELD_OUT]


@pytest.fixture(scope="module")
def tuned(
    real_model_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[TuneResult, Path]]:
    root = tmp_path_factory.mktemp("tune-real")
    config = TuneConfig.build(
        {
            "base": str(real_model_path),
            "data": write(root / "fact.jsonl"),
            "output": root / "out",
            "max_length": 256,
        }
    )
    yield tune_config(config, say=print), root


def test_nothing_unrelated_is_forgotten(tuned: tuple[TuneResult, Path]) -> None:
    """The probe ran in the same process as the training, on the same weights with the adapter off and on.

    Whether the fact was learned is asked where the adapter is used: served as a GGUF adapter beside the
    base (which must not know it), and merged into a Q8_0 file (the two tests below).
    """
    result, _ = tuned
    probe = result.probe
    assert probe is not None
    assert probe.kept >= 9, probe.to_dict()["answers"]
    assert len(probe.answers) >= 10
    assert probe.ppl_ratio < PPL_BOUND, (probe.ppl_base, probe.ppl_tuned)
    assert "Forgetting probe" in (result.report.parent / "report.md").read_text()


def _ask(url: str, model: str) -> list[str]:
    from openai import OpenAI

    client = OpenAI(base_url=f"{url}/v1", api_key="none")
    out = []
    for messages in QUESTIONS:
        reply = client.chat.completions.create(model=model, messages=messages, temperature=0, max_tokens=40)  # type: ignore[arg-type]
        out.append(reply.choices[0].message.content or "")
    return out


def test_merge_convert_quantize_serve(tuned: tuple[TuneResult, Path], real_model_path: Path) -> None:
    from qwenkit.convert import convert, quantize
    from qwenkit.finetune.merge import merge

    result, root = tuned
    merged = merge(str(real_model_path), result.adapter, root / "merged")
    gen = (merged / "generation_config.json").read_text()
    assert '"temperature"' in gen and '"top_p"' in gen
    f16 = convert(merged, root / "merged-f16.gguf", "f16").path
    q8 = quantize(f16, "Q8_0", root / "merged-q8_0.gguf").path
    f16.unlink()
    with serve_process(q8, backend="llamacpp") as server:
        answers = _ask(server.url, "merged-q8_0.gguf")
    assert correct(answers) >= 4, answers


def test_gguf_adapter_is_chosen_per_request(tuned: tuple[TuneResult, Path], real_model_path: Path) -> None:
    import httpx

    from qwenkit.finetune.export import export_gguf

    result, root = tuned
    adapter = export_gguf(result.adapter, root / "fact-lora.gguf")
    with serve_process(real_model_path, "--lora", f"fact={adapter}", backend="llamacpp") as server:
        models: Any = httpx.get(f"{server.url}/v1/models", timeout=30).json()
        ids = [m["id"] for m in models["data"]]
        assert "fact" in ids and models["data"][ids.index("fact")]["parent"] == ids[0]
        tuned_answers = _ask(server.url, "fact")
        base_answers = _ask(server.url, ids[0])
    assert correct(tuned_answers) >= 4, tuned_answers
    assert correct(base_answers) == 0, base_answers
