"""Tiny random Qwen2 and Qwen3 checkpoints (shapes from the catalog) through llama.cpp's converter.

The f32 GGUF must compute what transformers computes in f32: the llama.cpp backend's 32 greedy tokens
equal the transformers backend's, and the logits of a prompt agree within LOGIT_ATOL (logits here
spread over about +/-4; measured: at most 0.006, because llama.cpp keeps its KV cache in f16, where
transformers keeps f32). Weights are drawn wider than the default 0.02 so that
greedy choices are not near-ties; a divergence is still accepted where the transformers run's top two
were within NEAR_TIE nats (tests/_greedy.py), as a rounding difference could flip such a choice.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
import torch
import transformers

from _greedy import TOP_K, GreedyReference, divergence
from qwenkit.catalog import load_catalog
from qwenkit.catalog.hf_config import hf_config_dict
from qwenkit.convert import convert, quantize
from qwenkit.convert.llama_eval import ChunkEvaluator
from qwenkit.convert.perplexity import perplexity
from qwenkit.convert.quantize import QuantType
from qwenkit.convert.report import ReportRequest, build_report, table_rows, write_plot
from qwenkit.engine.llamacpp import LlamaCppBackend
from qwenkit.engine.transformers import TransformersBackend
from qwenkit.engine.types import BackendOptions, SamplingParams
from qwenkit.models.gguf_reader import read_gguf_metadata

pytestmark = pytest.mark.slow

LOGIT_ATOL = 0.02
NEAR_TIE = 0.01
STEPS = 32
PROMPT = [785, 3974, 13876, 38835, 34208, 916, 279, 15678, 5562, 13]
GREEDY = SamplingParams(temperature=0.0, max_tokens=STEPS, ignore_eos=True)


def _tiny_checkpoint(root: Path, catalog_id: str, tokenizer_dir: Path) -> Path:
    config = hf_config_dict(
        load_catalog().get(catalog_id), layers=2, hidden_size=64, num_attention_heads=4, num_kv_heads=2,
        head_dim=16, intermediate_size=128,
    )  # fmt: skip
    config["initializer_range"] = 0.15
    out = root / catalog_id
    out.mkdir(parents=True)
    (out / "config.json").write_text(json.dumps(config))
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_config(transformers.AutoConfig.from_pretrained(out))
    # Rows past the tokenizer's last id pad the matrix; trained models keep them tiny. The transformers
    # backend never samples them, llama.cpp would: zero them so that no random row wins.
    n_tokens = len(transformers.AutoTokenizer.from_pretrained(tokenizer_dir))
    with torch.no_grad():
        model.get_input_embeddings().weight[n_tokens:] = 0
        model.get_output_embeddings().weight[n_tokens:] = 0
    model.save_pretrained(out, safe_serialization=True)
    for name in ("tokenizer.json", "vocab.json", "merges.txt", "tokenizer_config.json"):
        shutil.copy(tokenizer_dir / name, out / name)
    return out


@pytest.fixture(scope="module", params=["qwen2.5-0.5b-instruct", "qwen3-0.6b"])
def converted(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, qwen3_tokenizer_dir: Path
) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("convert")
    ckpt = _tiny_checkpoint(root, request.param, qwen3_tokenizer_dir)
    result = convert(ckpt, root / "tiny-F32.gguf", "f32")
    assert result.path.is_file() and result.parameters > 0
    return ckpt, result.path


def test_the_gguf_says_what_it_is(converted: tuple[Path, Path]) -> None:
    ckpt, gguf_path = converted
    meta = read_gguf_metadata(gguf_path)
    expected = "qwen3" if "qwen3" in ckpt.name else "qwen2"
    assert meta.architecture == expected
    assert meta.arch_int("block_count") == 2 and meta.arch_int("embedding_length") == 64
    assert set(meta.tensor_type_histogram()) == {"F32"}
    assert meta.metadata["tokenizer.ggml.pre"] == "qwen2"


def test_llama_cpp_logits_match_transformers_in_f32(converted: tuple[Path, Path]) -> None:
    ckpt, gguf_path = converted
    model = transformers.AutoModelForCausalLM.from_pretrained(ckpt, dtype=torch.float32)
    with torch.no_grad():
        expected = model(torch.tensor([PROMPT])).logits[0].numpy()
    with ChunkEvaluator(gguf_path, context=64, threads=2) as ev:
        actual = ev.logits(np.array(PROMPT, dtype=np.int32)).copy()
    assert actual.shape == expected.shape
    assert float(np.abs(actual - expected).max()) < LOGIT_ATOL
    top2 = np.sort(expected, axis=1)[:, -2:]
    clear = top2[:, 1] - top2[:, 0] > 2 * LOGIT_ATOL  # where the best token is no near-tie
    np.testing.assert_array_equal(actual.argmax(axis=1)[clear], expected.argmax(axis=1)[clear])
    assert clear.sum() >= len(PROMPT) - 1


def test_greedy_tokens_of_both_backends_agree(converted: tuple[Path, Path]) -> None:
    ckpt, gguf_path = converted
    recorded = dataclasses.replace(GREEDY, logprobs=True, top_logprobs=TOP_K)
    options = BackendOptions(device="cpu", dtype="float32", parallel=1, context=128)
    with TransformersBackend.load(ckpt, options) as hf:
        reference = GreedyReference.from_events(hf.submit(PROMPT, recorded))
    with LlamaCppBackend.load(gguf_path, BackendOptions(context=128, parallel=1, threads=2)) as llama:
        tokens = [e.token_id for e in llama.submit(PROMPT, GREEDY)]
    assert len(tokens) == STEPS
    divergence(tokens, reference, threshold=NEAR_TIE)  # raises unless equal, or apart only at a near-tie


def test_quantize_reports_the_fallbacks_of_a_narrow_model(
    converted: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Width 64 is not a multiple of 256: every K-quant matrix falls back to a 32-block type. (The f16
    is converted from relative paths: llama.cpp's converter runs in its own folder.)"""
    _, gguf_path = converted
    monkeypatch.chdir(tmp_path)
    relative = Path(os.path.relpath(converted[0], tmp_path))
    f16 = tmp_path / convert(relative, Path("tiny-F16.gguf"), "f16").path
    result = quantize(f16, "Q4_K_M", tmp_path / "tiny-Q4_K_M.gguf")
    assert result.fallbacks and {f.wanted for f in result.fallbacks} <= {"q4_K", "q6_K", "q5_K"}
    assert all(f.columns % 256 for f in result.fallbacks)
    assert result.tensors == read_gguf_metadata(result.path).tensor_count
    assert "Q4_K" not in result.tensor_types  # nothing could use it
    q8 = quantize(gguf_path, "Q8_0", tmp_path / "tiny-Q8_0.gguf")
    assert q8.fallbacks == () and "Q8_0" in q8.tensor_types
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["tiny-F16.gguf", "tiny-Q4_K_M.gguf", "tiny-Q8_0.gguf"]  # no temporary files left


TEXT = "To be, or not to be, that is the question: whether 'tis nobler in the mind to suffer. " * 12


def test_perplexity_scores_the_second_half_of_each_chunk(converted: tuple[Path, Path]) -> None:
    """The same number from transformers' logits, chunk by chunk, as llama-perplexity defines it."""
    ckpt, gguf_path = converted
    context, chunks = 64, 3
    result, own = perplexity(gguf_path, TEXT, context=context, chunks=chunks, threads=2)
    tokens = transformers.AutoTokenizer.from_pretrained(ckpt)(TEXT)["input_ids"]
    model = transformers.AutoModelForCausalLM.from_pretrained(ckpt, dtype=torch.float32)
    nll = []
    with torch.no_grad():
        for c in range(chunks):
            chunk = torch.tensor([tokens[c * context : (c + 1) * context]])
            logprobs = torch.log_softmax(model(chunk).logits[0].double(), dim=-1)
            for i in range(context // 2, context - 1):
                nll.append(-float(logprobs[i, chunk[0, i + 1]]))
    assert result.tokens == len(nll) == chunks * (context // 2 - 1)
    assert result.ppl == pytest.approx(float(np.exp(np.mean(nll))), rel=1e-3)  # f16 KV cache
    np.testing.assert_allclose(own.nll, nll, atol=LOGIT_ATOL)
    assert result.ppl_err > 0 and len(result.chunk_ppl) == chunks


def test_report_compares_types_against_the_source(converted: tuple[Path, Path], tmp_path: Path) -> None:
    ckpt, _ = converted
    f16 = convert(ckpt, tmp_path / "tiny-F16.gguf", "f16").path
    req = ReportRequest(f16, [QuantType.Q8_0, QuantType.Q4_0], TEXT, "hamlet", tmp_path, context=64, chunks=2)
    report = build_report(req)
    source, q8, q4 = report.rows
    assert source.kl is None and q8.kl is not None and q4.kl is not None
    assert 0 <= q8.kl.kl_mean < q4.kl.kl_mean and q8.kl.top1_agreement >= q4.kl.top1_agreement
    assert source.size > q8.size > q4.size
    assert q8.decode_tokens_per_s and q8.rss_bytes > 0 and q8.quantize_seconds is not None
    write_plot(report, tmp_path / "report.png")
    report.write_json(tmp_path / "report.json")
    assert (tmp_path / "report.png").stat().st_size > 1000
    assert len(table_rows(report)) == 4


def _ctrl_c_as_in_a_terminal() -> None:
    """A job started in the background by a non-interactive shell (``make test &``, nohup) inherits
    SIGINT ignored, and so would this child: Python then installs no KeyboardInterrupt handler and the
    interrupt is lost. A user's Ctrl-C reaches a process in the foreground, with the default action."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_an_interrupted_convert_leaves_no_file(converted: tuple[Path, Path], tmp_path: Path) -> None:
    """Ctrl-C while llama.cpp's converter runs: the converter is stopped, nothing is left behind."""
    ckpt, _ = converted
    out = tmp_path / "out.gguf"
    proc = subprocess.Popen(
        [sys.executable, "-m", "qwenkit", "convert", str(ckpt), "-o", str(out), "-q"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=_ctrl_c_as_in_a_terminal,
    )  # fmt: skip
    parent = psutil.Process(proc.pid)

    def converters() -> list[psutil.Process]:
        """The converter's process only: a busy machine also shows short-lived children of the
        import (ctypes' find_library runs ldconfig), and an interrupt then would come too early."""
        found = []
        for child in parent.children():
            try:
                if any("convert_hf_to_gguf" in part for part in child.cmdline()):
                    found.append(child)
            except psutil.Error:
                continue
        return found

    converter: list[psutil.Process] = []
    try:
        deadline = time.monotonic() + 300
        while not (converter := converters()) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert converter, "the converter subprocess never started"
        for child in converter:  # it must not finish before the interrupt, however slow the machine is
            child.suspend()
        os.kill(proc.pid, signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
        survivors = [c for c in converter if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
    finally:  # a failed run leaves no suspended converter behind
        proc.kill()
        for child in converter:
            with contextlib.suppress(psutil.Error):
                child.kill()
    assert proc.returncode == 130 and stderr.strip().splitlines()[-1] == "aborted", stderr
    assert "Traceback" not in stderr
    assert list(tmp_path.iterdir()) == []
    assert survivors == []  # qwenkit stopped its converter on the way out
