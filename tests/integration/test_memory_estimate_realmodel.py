"""The memory estimate against what llama.cpp really holds with the real Qwen2.5-Coder-0.5B GGUF.

What is compared: the growth of the resident set (``psutil`` RSS) of a fresh process from just
after ``import llama_cpp`` to just after ``Llama(model_path, n_ctx, n_threads=2)`` plus one short
eval (which touches every weight but the embedding rows not used). With ``use_mmap=False`` the
weights are read into anonymous memory and RSS counts all of them; with ``use_mmap=True`` (the
default) the whole file is mapped and prefetched, so RSS counts its page-cache pages as well as the
anonymous copy of the tensors llama.cpp repacks for the CPU: a few percent more. The estimate is
``estimate_memory(..., weights_bytes=<file size>)``: ``total`` for load + decode, ``peak`` once a
prompt has filled the context (prefill scratch, which stays resident afterwards).

Run as a script to reproduce the calibration figures in ``qwenkit.catalog.estimate``:

    python tests/integration/test_memory_estimate_realmodel.py MODEL.gguf N_CTX \
        [--fill] [--mmap] [--flash-attn]
"""

from __future__ import annotations

import collections
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

N_CTX = 4096
TOLERANCE = 0.15


def measure(path: str, n_ctx: int, *, fill: bool, mmap: bool, flash_attn: bool) -> dict[str, Any]:
    """RSS growth of this process around loading the model (and, with ``fill``, a full prompt)."""
    import llama_cpp
    import psutil

    proc = psutil.Process()
    before = proc.memory_info().rss
    llm = llama_cpp.Llama(
        model_path=path, n_ctx=n_ctx, n_threads=2, use_mmap=mmap, flash_attn=flash_attn, verbose=False
    )
    llm.eval(llm.tokenize(b"def fibonacci(n):", add_bos=False))
    result: dict[str, Any] = {"n_ctx": n_ctx, "mmap": mmap, "loaded": proc.memory_info().rss - before}
    if fill:
        llm.reset()
        text = b"import numpy as np\nx = np.arange(10)\n" * (n_ctx // 4)
        llm.eval(llm.tokenize(text, add_bos=False)[: n_ctx - 8])
        result["filled"] = proc.memory_info().rss - before
    return result


def measure_in_fresh_process(path: Path, n_ctx: int, *flags: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, str(path), str(n_ctx), *flags],
        capture_output=True, text=True, timeout=800, check=False,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def _arch() -> Any:
    from qwenkit.catalog import load_catalog

    return load_catalog().get("qwen2.5-coder-0.5b-instruct").arch


@pytest.mark.realmodel
def test_tensor_types_and_bytes_match_the_real_file(real_model_path: Path):
    """llama.cpp's per-tensor quant choices (as modelled) against the file's own tensor table."""
    from gguf import GGUFReader

    from qwenkit.catalog.estimate import tensor_specs, weight_bytes
    from qwenkit.catalog.quant import get_quant

    reader = GGUFReader(str(real_model_path))
    arch, quant = _arch(), get_quant("q4_k_m")
    assert quant.recipe is not None
    actual: collections.Counter[tuple[str, str]] = collections.Counter()
    for t in reader.tensors:
        if len(t.shape) == 2 or t.name in ("token_embd.weight", "output.weight"):
            kind = t.name.split(".")[-2] if t.name.startswith("blk.") else t.name.split(".")[0]
            actual[(kind, t.tensor_type.name)] += 1
    predicted: collections.Counter[tuple[str, str]] = collections.Counter()
    for spec in tensor_specs(arch, separate_output=True):
        if spec.is_matrix:
            ggml = quant.recipe.tensor_type(spec.kind, spec.ne0, spec.layer, arch.layers)
            predicted[(spec.kind, ggml.name)] += 1
    assert predicted == actual
    assert weight_bytes(arch, quant).total == sum(int(t.n_bytes) for t in reader.tensors)


def _estimate(path: Path, n_ctx: int, flash_attention: bool = False) -> Any:
    from qwenkit.catalog.estimate import estimate_memory
    from qwenkit.catalog.quant import get_quant

    size = path.stat().st_size
    quant = get_quant("q4_k_m")
    return estimate_memory(_arch(), quant, n_ctx, weights_bytes=size, flash_attention=flash_attention)


@pytest.mark.realmodel
@pytest.mark.slow
@pytest.mark.parametrize("mmap", [False, True], ids=["no-mmap", "mmap"])
def test_estimate_at_4096_is_within_15_percent_of_llama_cpp_rss(real_model_path: Path, mmap: bool):
    import llama_cpp  # noqa: F401
    measured = measure_in_fresh_process(real_model_path, N_CTX, *(["--mmap"] if mmap else []))
    est = _estimate(real_model_path, N_CTX)
    assert abs(est.total - measured["loaded"]) <= TOLERANCE * measured["loaded"], (est, measured)


@pytest.mark.realmodel
@pytest.mark.slow
@pytest.mark.parametrize("flash_attn", [False, True], ids=["scores", "flash-attn"])
def test_peak_after_a_full_prompt_is_within_15_percent(real_model_path: Path, flash_attn: bool):
    import llama_cpp  # noqa: F401
    n_ctx = 1024  # long enough that K*Q scores outgrow the MLP activations without flash attention
    flags = ["--fill", *(["--flash-attn"] if flash_attn else [])]
    measured = measure_in_fresh_process(real_model_path, n_ctx, *flags)
    est = _estimate(real_model_path, n_ctx, flash_attention=flash_attn)
    assert abs(est.peak - measured["filled"]) <= TOLERANCE * measured["filled"], (est, measured)
    assert measured["filled"] > measured["loaded"]


if __name__ == "__main__":
    args = sys.argv[1:]
    flags = {"fill": "--fill" in args, "mmap": "--mmap" in args, "flash_attn": "--flash-attn" in args}
    print(json.dumps(measure(args[0], int(args[1]), **flags)))
