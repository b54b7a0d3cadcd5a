"""The same workload in-process and over HTTP against our own server (real app, real uvicorn).

The engine is a paced fake (tokens of real words at a fixed pace through the real QueuedHandle),
so this is fast and model-independent: a tiny random model would emit tokens without any text,
which no client can time. The realmodel comparison of decode speeds is in test_bench_realmodel.py.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from _server_harness import live_server

import qwenkit.cli.bench_cmds  # noqa: F401  (registers bench)
from qwenkit.bench.driver import run_workload
from qwenkit.bench.runner_http import HttpTarget
from qwenkit.bench.runner_inprocess import InProcessTarget
from qwenkit.bench.target import TargetInfo
from qwenkit.bench.workload import COMMON_WORDS, Workload, vocabulary_words
from qwenkit.chat.template import TemplateFamily
from qwenkit.cli import main
from qwenkit.engine.handle import QueuedHandle
from qwenkit.engine.llm import LLM, ModelFacts
from qwenkit.engine.types import BackendKind, Capability, FinishReason, SamplingParams, TokenEvent

WORKLOAD = Workload(concurrency=(1, 2), prompt_tokens=(60,), output_tokens=8, warmup=1)


class PacedBackend:
    """Emits ``max_tokens`` word tokens, one every ``delay`` s, on its own thread; stops early at
    "EOS" (after 3 tokens) unless ``ignore_eos``."""

    kind = BackendKind.TRANSFORMERS  # a stand-in: what /v1/models and bench report
    capabilities = Capability.LOGPROBS

    def __init__(self, tokenizer: Any, delay: float = 0.003) -> None:
        self.tokenizer, self.context_length, self.delay = tokenizer, 1024, delay
        self.word_ids = tokenizer.encode_text(" alpha beta gamma delta")
        self.params: list[SamplingParams] = []

    def _produce(self, handle: QueuedHandle, params: SamplingParams) -> None:
        limit = params.max_tokens if params.ignore_eos else min(3, params.max_tokens)
        for i in range(limit):
            time.sleep(self.delay)
            handle.push(TokenEvent(self.word_ids[i % len(self.word_ids)]))
        handle.finish(FinishReason.LENGTH if limit == params.max_tokens else FinishReason.STOP)

    def submit(self, prompt_ids: Sequence[int], params: SamplingParams) -> QueuedHandle:
        self.params.append(params)
        handle = QueuedHandle(vocab_size=self.tokenizer.vocab_size)
        handle.timings.prompt_tokens = len(prompt_ids)
        threading.Thread(target=self._produce, args=(handle, params), daemon=True).start()
        return handle

    def close(self) -> None:
        pass


@pytest.fixture(scope="module")
def tiny_llm(qwen3_tokenizer_dir: Path) -> Iterator[LLM]:
    from qwenkit.chat.hf_tokenizer import HFTokenizer

    backend = PacedBackend(HFTokenizer.from_dir(str(qwen3_tokenizer_dir)))
    llm = LLM(backend, ModelFacts(path=None, variant=None, template_family=TemplateFamily.QWEN3))
    yield llm
    llm.close()


def test_in_process_levels_have_exact_prompts_and_outputs(tiny_llm: LLM) -> None:
    target = InProcessTarget(tiny_llm, TargetInfo(kind="in-process", model="tiny"))
    result = asyncio.run(run_workload(target, WORKLOAD, vocabulary_words(tiny_llm.tokenizer)))
    for level in result.levels:
        assert level.errors == 0 and level.short_outputs == 0
        assert level.prompt_tokens_mean == 60
        assert level.completion_tokens_total == 8 * level.requests


def test_http_runner_against_qwenkit_serve_counts_with_tokenize_and_usage(tiny_llm: LLM) -> None:
    with live_server(tiny_llm) as server:

        async def go():  # type: ignore[no-untyped-def]
            target = HttpTarget(server.base_url)
            await target.connect()
            try:
                return target.info, await run_workload(target, WORKLOAD, COMMON_WORDS)
            finally:
                await target.aclose()

        info, result = asyncio.run(go())
    assert info.kind == "http" and info.model
    assert result.notes[0] == "prompt lengths counted exactly"  # the server's /tokenize was used
    for level in result.levels:
        assert level.errors == 0, level.error_samples
        assert level.prompt_tokens_mean == 60  # from the server's usage: the calibration was exact
        assert level.ttft is not None and level.decode_tps is not None and level.itl is not None
    # ignore_eos reached the engine: every answer has the full length.
    assert all(lv.completion_tokens_total == 8 * lv.requests for lv in result.levels)
    assert all(p.ignore_eos for p in tiny_llm.backend.params)  # type: ignore[attr-defined]


def test_bench_cli_with_url_writes_json_and_png(tiny_llm: LLM, tmp_path: Path) -> None:
    import matplotlib  # noqa: F401
    report, plot = tmp_path / "r.json", tmp_path / "r.png"
    with live_server(tiny_llm) as server:
        code = main(["bench", "--url", server.base_url + "/v1", "--concurrency", "1,2",
                     "--prompt-tokens", "50", "--output-tokens", "6", "--json", str(report),
                     "--plot", str(plot), "--no-roofline"])
    assert code == 0
    data = json.loads(report.read_text())
    assert data["target"]["kind"] == "http" and data["target"]["url"] == server.base_url
    assert [lv["concurrency"] for lv in data["levels"]] == [1, 2]
    assert all(lv["errors"] == 0 and lv["prompt_tokens_mean"] == 50 for lv in data["levels"])
    assert data["bandwidth"] is None and data["roofline"] is None
    assert plot.read_bytes()[:4] == b"\x89PNG"


def test_a_local_server_is_found_by_its_port_for_memory_sampling(tiny_llm: LLM) -> None:
    import os

    from qwenkit.bench.runner_http import local_server_pids

    with live_server(tiny_llm) as server:
        assert local_server_pids(server.base_url) == (os.getpid(),)
        assert local_server_pids(server.base_url.replace("127.0.0.1", "localhost")) == (os.getpid(),)
    assert local_server_pids("http://example.invalid:8000") == ()
