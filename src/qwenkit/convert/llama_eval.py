"""A GGUF model evaluated whole-chunk at a time through llama.cpp's low-level API.

One context of exactly ``context`` tokens, a batch as large (so one ``llama_decode`` per chunk), and
logits for every position, as llama.cpp's ``llama-perplexity`` sets itself up. The logits come back as
a NumPy view of llama.cpp's own buffer: valid until the next decode.
"""

from __future__ import annotations

import ctypes
import time
from pathlib import Path
from typing import Any

import numpy as np

from qwenkit.engine.llama_lib import llama_lib
from qwenkit.engine.llamacpp import default_threads
from qwenkit.errors import ConversionError, ModelNotFoundError


class ChunkEvaluator:
    """Loads a GGUF and evaluates token chunks of one fixed length with all logits."""

    def __init__(self, path: str | Path, context: int, threads: int | None = None) -> None:
        lib = llama_lib()
        self._lib = lib
        path = Path(path)
        if not path.is_file():
            raise ModelNotFoundError(f"no model file at {path}")
        self._model = lib.llama_model_load_from_file(str(path).encode(), lib.llama_model_default_params())
        if not self._model:
            raise ConversionError(f"llama.cpp could not load {path}: not a valid GGUF model")
        self._vocab = lib.llama_model_get_vocab(self._model)
        self.n_vocab = int(lib.llama_vocab_n_tokens(self._vocab))
        self.context = context
        cparams = lib.llama_context_default_params()
        cparams.n_ctx = cparams.n_batch = cparams.n_ubatch = context
        cparams.n_seq_max = 1
        cparams.n_threads = cparams.n_threads_batch = threads or default_threads()
        cparams.no_perf = True
        self._ctx = lib.llama_init_from_model(self._model, cparams)
        if not self._ctx:
            lib.llama_model_free(self._model)
            raise ConversionError(f"llama.cpp could not create a context of {context} tokens")
        self._mem = lib.llama_get_memory(self._ctx)
        self._batch = lib.llama_batch_init(context, 0, 1)

    @property
    def adds_bos(self) -> bool:
        return bool(self._lib.llama_vocab_get_add_bos(self._vocab))

    @property
    def bos(self) -> int:
        return int(self._lib.llama_vocab_bos(self._vocab))

    def tokenize(self, text: str) -> np.ndarray:
        """The whole text as llama-perplexity tokenizes it: special tokens added as the model asks
        (a BOS only where the vocabulary wants one, so none for Qwen), special text not parsed."""
        raw = text.encode("utf-8")
        capacity = len(raw) + 8
        while True:
            buf = (self._lib.llama_token * capacity)()
            n = self._lib.llama_tokenize(self._vocab, raw, len(raw), buf, capacity, True, False)
            if n >= 0:
                return np.ctypeslib.as_array(buf)[:n].astype(np.int32)
            capacity = -n

    def _decode(self, tokens: np.ndarray, start: int, all_logits: bool) -> None:
        batch = self._batch
        for i, token in enumerate(tokens.tolist()):
            batch.token[i], batch.pos[i], batch.n_seq_id[i] = token, start + i, 1
            batch.seq_id[i][0], batch.logits[i] = 0, int(all_logits or i == len(tokens) - 1)
        batch.n_tokens = len(tokens)
        if self._lib.llama_decode(self._ctx, batch) != 0:
            raise ConversionError("llama.cpp failed to evaluate a chunk")

    def logits(self, chunk: np.ndarray) -> np.ndarray:
        """(len(chunk), n_vocab) float32 logits of one chunk evaluated from an empty cache."""
        if len(chunk) > self.context:
            raise ValueError(f"chunk of {len(chunk)} tokens exceeds the context {self.context}")
        self._lib.llama_memory_clear(self._mem, True)
        self._decode(chunk, 0, all_logits=True)
        pointer = self._lib.llama_get_logits(self._ctx)
        return np.ctypeslib.as_array(
            ctypes.cast(pointer, ctypes.POINTER(ctypes.c_float)), shape=(len(chunk), self.n_vocab)
        )

    def decode_speed(self, prompt: np.ndarray, steps: int) -> float:
        """Greedy tokens per second, one token per ``llama_decode``, after ``prompt`` (at most
        context - steps tokens of it) is prefilled: the single-stream decode rate."""
        prompt = prompt[: max(1, self.context - steps)]
        self._lib.llama_memory_clear(self._mem, True)
        self._decode(prompt, 0, all_logits=False)
        pos, token = len(prompt), int(np.argmax(self._last_logits()))
        began = time.perf_counter()
        for _ in range(steps):
            self._decode(np.array([token], dtype=np.int32), pos, all_logits=False)
            pos, token = pos + 1, int(np.argmax(self._last_logits()))
        return steps / (time.perf_counter() - began)

    def _last_logits(self) -> np.ndarray:
        pointer = self._lib.llama_get_logits_ith(self._ctx, -1)
        return np.ctypeslib.as_array(
            ctypes.cast(pointer, ctypes.POINTER(ctypes.c_float)), shape=(self.n_vocab,)
        )

    def close(self) -> None:
        lib: Any = self._lib
        if self._ctx:
            lib.llama_batch_free(self._batch)
            lib.llama_free(self._ctx)
            lib.llama_model_free(self._model)
            self._ctx = None

    def __enter__(self) -> ChunkEvaluator:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
