"""A step's second ``llama_decode`` on the llama.cpp backend: a piece of one image's embeddings.

It runs before the step's token batch, because a decode's logits last only until the next decode, and
takes a share of the step's token budget, so decoding streams keep their pace while an image is fed.
"""

from __future__ import annotations

import ctypes
from collections.abc import Iterable
from concurrent import futures
from typing import Any

import numpy as np

from qwenkit.engine.llama_slots import SlotCache
from qwenkit.engine.llama_vision import ImageRun
from qwenkit.errors import QwenkitError

IMAGE_WAIT = 0.05  # seconds the engine thread waits for an encoder when nothing else can run
MROPE_SECTIONS = 4  # with M-RoPE an embedding takes four positions, section after section


class ImageFeeder:
    """The embedding batch of one context, and how a ready image's rows go into a sequence's KV."""

    def __init__(self, lib: Any, ctx: Any, n_embd: int, n_batch: int) -> None:
        self._lib, self._ctx = lib, ctx
        self._batch = lib.llama_batch_init(n_batch * MROPE_SECTIONS, n_embd, 1)

    def feed(self, run: ImageRun, slot: int, cache: SlotCache, count: int) -> None:
        """Decode ``count`` more embeddings of ``run`` (ready) into sequence ``slot``'s KV."""
        assert run.embedding is not None
        embedding = run.embedding.result()
        if run.fed == 0:
            run.start = cache.next_position
        rows = np.ascontiguousarray(embedding.embd[run.fed : run.fed + count], dtype=np.float32)
        batch = self._batch
        ctypes.memmove(batch.embd, rows.ctypes.data, rows.nbytes)
        for j, position in enumerate(embedding.positions(run.start, run.fed, count)):
            batch.pos[j] = position
        for j in range(count):
            batch.n_seq_id[j] = 1
            batch.seq_id[j][0] = slot
            batch.logits[j] = 0
        batch.n_tokens = count
        status = self._lib.llama_decode(self._ctx, batch)
        if status != 0:
            raise QwenkitError(f"llama_decode failed on an image with status {status}")
        cache.add_image(run.key, count, run.start + embedding.n_pos)
        run.fed += count

    def close(self) -> None:
        self._lib.llama_batch_free(self._batch)


def wait_for_images(runs: Iterable[ImageRun]) -> None:
    """Nothing could run: every sequence waits for an image encoder. Wait for one a little, rather
    than spin the engine thread against the encoder's."""
    pending = [run.embedding for run in runs if run.embedding is not None and not run.embedding.done()]
    if pending:
        futures.wait(pending, timeout=IMAGE_WAIT, return_when=futures.FIRST_COMPLETED)
