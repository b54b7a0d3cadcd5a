"""The whole path on the real Qwen2.5-Coder-0.5B: its Q4_K_M GGUF -> safetensors (transformers
dequantizes it) -> f16 GGUF (llama.cpp's converter) -> Q8_0 and Q4_K_M; each file answers in
``qwenkit run``, and a one-chunk perplexity (255 scored tokens) with KL divergence against the f16 ranks them.

About three minutes on 2 cores; the multi-GB intermediate files are deleted at the end.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from _cli import offline_env, run_qwenkit

from qwenkit.convert import convert, quantize
from qwenkit.models.gguf_reader import read_gguf_metadata

pytestmark = [pytest.mark.slow, pytest.mark.realmodel]

ROOT = Path(__file__).resolve().parents[2]
# The corpus: ../shared/data beside the checkout (a worktree's is two levels up). A clone
# elsewhere has no such folder; the standard library's argparse source (code, which suits a Coder
# model) is on every machine and long enough for the chunk scored here.
_CANDIDATES = [p / "shared/data/tinyshakespeare/input.txt" for p in (ROOT.parent, ROOT.parents[1])]
TEXT = next((p for p in _CANDIDATES if p.is_file()), Path(argparse.__file__))
CODER = "qwen2.5-coder-0.5b-instruct"
PROMPT = "Write a Python function that returns the square of a number. Only the code."


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("convert-real")
    yield root
    shutil.rmtree(root, ignore_errors=True)  # several GB: not left for pytest's last-three-runs keep


@pytest.fixture(scope="module")
def f16(work: Path, real_model_path: Path) -> Path:
    hf = work / "hf"
    code = (
        "from qwenkit.convert.from_gguf import gguf_to_checkpoint; "
        f"gguf_to_checkpoint({str(real_model_path)!r}, {str(hf)!r})"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=600)  # its ~3 GB go with the process
    assert (hf / "config.json").is_file() and list(hf.glob("*.safetensors"))
    result = convert(hf, work / "coder-F16.gguf", "f16")
    shutil.rmtree(hf)
    # 0.49 B, plus the output matrix the published GGUF stores beside the tied embeddings (136 M)
    assert result.architecture == "Qwen2ForCausalLM" and 0.6e9 < result.parameters < 0.65e9
    return result.path


@pytest.fixture(scope="module")
def env(work: Path) -> dict[str, str]:
    return offline_env(work / "home")


@pytest.fixture(scope="module")
def quantized(f16: Path, work: Path, env: dict[str, str]) -> dict[str, Path]:
    """Q8_0 through the CLI, recorded as a version of the catalog entry; Q4_K_M through the library."""
    proc = run_qwenkit(
        "quantize",
        str(f16),
        "-t",
        "Q8_0",
        "-o",
        str(work / "coder-Q8_0.gguf"),
        "--model-id",
        CODER,
        "--json",
        env=env,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    q8 = json.loads(proc.stdout)
    assert q8["fallbacks"] == [] and q8["ref"] == f"{CODER}:q8_0"
    q4 = quantize(f16, "Q4_K_M", work / "coder-Q4_K_M.gguf")
    # Width 896 and the FFN's 4864 are not multiples of 256: llama-quantize reports 145 of 291 here.
    assert len(q4.fallbacks) > 100 and all(f.columns % 256 for f in q4.fallbacks)
    assert q4.size < q8["size"] < f16.stat().st_size / 1.8
    return {"Q8_0": Path(q8["path"]), "Q4_K_M": q4.path}


def test_the_f16_gguf_is_a_qwen2_with_the_tokenizer_and_template(f16: Path, real_model_path: Path) -> None:
    ours, theirs = read_gguf_metadata(f16), read_gguf_metadata(real_model_path)
    assert ours.architecture == theirs.architecture == "qwen2"
    assert ours.file_type_name == "F16"
    assert ours.token_count == theirs.token_count
    assert ours.metadata["tokenizer.ggml.pre"] == "qwen2"
    assert ours.chat_template is not None and "<|im_start|>" in ours.chat_template


def test_list_shows_the_made_file(quantized: dict[str, Path], env: dict[str, str]) -> None:
    proc = run_qwenkit("list", "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    made = [e for e in json.loads(proc.stdout) if e["source"] == "made-locally"]
    assert [(e["ref"], e["path"]) for e in made] == [(f"{CODER}:q8_0", str(quantized["Q8_0"].resolve()))]


@pytest.mark.parametrize("which", ["F16", "Q8_0", "Q4_K_M"])
def test_each_file_answers_in_qwenkit_run(
    f16: Path, quantized: dict[str, Path], env: dict[str, str], which: str
) -> None:
    """The Q8_0 by its catalog reference: the catalog knows the file made here."""
    ref = {"F16": str(f16), "Q8_0": f"{CODER}:q8_0", "Q4_K_M": str(quantized["Q4_K_M"])}[which]
    args = ("run", ref, PROMPT, "--max-tokens", "60", "--temperature", "0", "--json")
    proc = run_qwenkit(*args, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    answer = json.loads(proc.stdout)["content"]
    assert "def " in answer and "return" in answer, answer


def test_perplexity_and_kl_of_the_quantizations(
    f16: Path, quantized: dict[str, Path], work: Path, env: dict[str, str]
) -> None:
    base = work / "f16-base.npz"
    args = ["--text", str(TEXT), "--chunks", "1", "--json"]
    first = run_qwenkit("perplexity", str(f16), *args, "--save-base", str(base), env=env, timeout=600)
    assert first.returncode == 0, first.stderr
    f16_ppl = json.loads(first.stdout)["ppl"]
    kl = {}
    for name, path in quantized.items():
        proc = run_qwenkit("perplexity", str(path), *args, "--kl-base", str(base), env=env, timeout=600)
        assert proc.returncode == 0, proc.stderr
        result = json.loads(proc.stdout)
        kl[name] = result["kl"]
        assert result["tokens"] == 255
        assert kl[name]["base_ppl"] == pytest.approx(f16_ppl)
    # The f16 carries the published file's 4-bit rounding, so a Q4_K_M of it lands close to that grid
    # again: both stay close to the f16, neither is ranked above the other here.
    for name in ("Q8_0", "Q4_K_M"):
        assert 0 <= kl[name]["kl_mean"] < 0.1, kl
        assert kl[name]["top1_agreement"] > 0.85, kl
        assert abs(kl[name]["ppl_ratio"] - 1) < 0.05, kl
