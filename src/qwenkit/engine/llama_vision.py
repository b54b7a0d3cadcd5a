"""Images on the llama.cpp backend: the vision projector (mmproj GGUF) through llama.cpp's ``mtmd``.

Only the vision tower comes from ``mtmd``; the rest stays qwenkit's. The pictures arrive resized by
``qwenkit.media`` and ``mtmd`` is opened with token limits that let them through unchanged, so the
number of image tokens is the one qwenkit counted and the transformers backend reads. An image is
encoded on this object's own thread (``encode`` returns a future): the engine thread goes on decoding
the other sequences meanwhile, and feeds the embeddings in batch-sized pieces once they are ready.
Their M-RoPE positions follow Qwen2-VL: the image's start position on the time axis, start + row and
start + column on the height and width axes; text after the image resumes at start + max(rows, cols).
"""

from __future__ import annotations

import ctypes
import struct
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from qwenkit.engine.llama_lib import log_callback
from qwenkit.errors import ModelFormatError, QwenkitError
from qwenkit.media import VisionGrid
from qwenkit.models.gguf_reader import read_gguf_metadata

if TYPE_CHECKING:
    from qwenkit.media import PreparedImage

# mtmd's own floor (8 tokens) and ceiling (4096) would resize small and large fitted images again.
MTMD_MIN_TOKENS = 1
MTMD_MAX_TOKENS = 1 << 16
_CHUNK_TYPE_IMAGE = 1
VISION_TEXT_ARCHITECTURES = frozenset({"qwen2vl", "qwen3vl", "qwen3vlmoe"})


def find_mmproj(model: Path, explicit: str | Path | None = None) -> Path | None:
    """The vision projector for a text GGUF: the one given, else ``mmproj-NAME`` beside it (what
    ``qwenkit convert`` writes), else the only ``mmproj-*.gguf`` in its folder; only for the
    architectures that read images."""
    if explicit is not None:
        path = Path(explicit)
        if not path.is_file():
            raise ModelFormatError(f"no vision projector (mmproj) at {path}")
        return path
    try:
        architecture = read_gguf_metadata(model).architecture
    except Exception:  # an unreadable file is llama.cpp's to report
        return None
    if architecture not in VISION_TEXT_ARCHITECTURES:
        return None
    beside = model.with_name(f"mmproj-{model.name}")
    if beside.is_file():
        return beside
    found = sorted(model.parent.glob("mmproj-*.gguf"))
    return found[0] if len(found) == 1 else None


@dataclass(frozen=True)
class ImageEmbedding:
    """One encoded image: ``rows x cols`` merged patches, one embedding each, row-major."""

    embd: np.ndarray  # (rows * cols, n_embd) float32
    rows: int
    cols: int
    mrope: bool

    @property
    def n_tokens(self) -> int:
        return self.rows * self.cols

    @property
    def n_pos(self) -> int:
        """Positions the image takes: text after it starts this far past its start."""
        return max(self.rows, self.cols) if self.mrope else self.n_tokens

    def positions(self, start: int, begin: int, count: int) -> list[int]:
        """Positions of tokens ``begin .. begin+count`` for a batch of ``count`` embeddings: one per
        token, or with M-RoPE four sections (time, row, column, unused), section after section."""
        index = range(begin, begin + count)
        if not self.mrope:
            return [start + i for i in index]
        return ([start] * count + [start + i // self.cols for i in index]
                + [start + i % self.cols for i in index] + [0] * count)  # fmt: skip


class LlamaVision:
    """An ``mtmd`` context over a loaded text model, and the one thread that encodes with it."""

    def __init__(self, mtmd: Any, ctx: Any, grid: VisionGrid, n_embd: int) -> None:
        self._mtmd = mtmd
        self._ctx = ctx
        self.grid = grid
        self.n_embd = n_embd
        self.mrope = bool(mtmd.mtmd_decode_use_mrope(ctx))
        self._worker = ThreadPoolExecutor(1, thread_name_prefix="qwenkit-vision")
        self.windows: deque[tuple[float, float]] = deque(maxlen=16)  # when recent encodes ran

    @classmethod
    def open(cls, mmproj: Path, model: Any, n_embd: int, threads: int) -> LlamaVision:
        from llama_cpp import mtmd_cpp

        mtmd_cpp.mtmd_log_set(log_callback(), ctypes.c_void_p(0))
        mtmd_cpp.mtmd_helper_log_set(log_callback(), ctypes.c_void_p(0))
        metadata = read_gguf_metadata(mmproj)
        patch = metadata.metadata.get("clip.vision.patch_size")
        if not isinstance(patch, int):
            raise ModelFormatError(f"{mmproj} is not a vision projector (mmproj) GGUF")
        merge = metadata.metadata.get("clip.vision.spatial_merge_size", 2)
        params = mtmd_cpp.mtmd_context_params_default()
        params.use_gpu = False
        params.print_timings = False
        params.warmup = False  # a first image pays its own graph setup; loading stays quick
        params.n_threads = threads
        params.image_min_tokens = MTMD_MIN_TOKENS
        params.image_max_tokens = MTMD_MAX_TOKENS
        ctx = mtmd_cpp.mtmd_init_from_file(str(mmproj).encode(), model, params)
        if not ctx:
            raise ModelFormatError(
                f"llama.cpp could not load the vision projector {mmproj}",
                hint="it must be the mmproj converted from the same checkpoint as the text GGUF",
            )
        if not mtmd_cpp.mtmd_support_vision(ctx):
            mtmd_cpp.mtmd_free(ctx)
            raise ModelFormatError(f"{mmproj} holds no vision encoder")
        return cls(mtmd_cpp, ctx, VisionGrid(patch_size=patch, merge_size=int(merge)), n_embd)

    def encode(self, image: PreparedImage, expected_tokens: int) -> Future[ImageEmbedding]:
        """Encode on the vision thread; the future fails with QwenkitError if llama.cpp disagrees with
        qwenkit about the image's token count, or cannot encode it."""
        return self._worker.submit(self._encode, image, expected_tokens)

    def _encode(self, image: PreparedImage, expected_tokens: int) -> ImageEmbedding:
        mtmd, rgb = self._mtmd, image.image.tobytes()
        pixels = (ctypes.c_uint8 * len(rgb)).from_buffer_copy(rgb)
        bitmap = mtmd.mtmd_bitmap_init(image.image.width, image.image.height, pixels)
        chunks = mtmd.mtmd_input_chunks_init()
        try:
            marker = mtmd.mtmd_default_marker()
            text = mtmd.mtmd_input_text(marker, len(marker), False, True)
            bitmaps = (mtmd.mtmd_bitmap_p_ctypes * 1)(bitmap)
            if mtmd.mtmd_tokenize(self._ctx, chunks, ctypes.byref(text), bitmaps, 1) != 0:
                raise QwenkitError("llama.cpp could not read this image")
            chunk = self._image_chunk(chunks)
            tokens = mtmd.mtmd_input_chunk_get_tokens_image(chunk)
            rows, cols = mtmd.mtmd_image_tokens_get_ny(tokens), mtmd.mtmd_image_tokens_get_nx(tokens)
            if rows * cols != expected_tokens:
                raise QwenkitError(
                    f"llama.cpp reads this {image.image.width} x {image.image.height} image as {rows} x "
                    f"{cols} tokens where qwenkit counted {expected_tokens}: the mmproj is not this model's"
                )
            began = time.perf_counter()
            if mtmd.mtmd_encode_chunk(self._ctx, chunk) != 0:
                raise QwenkitError("llama.cpp could not encode this image")
            self.windows.append((began, time.perf_counter()))
            out = mtmd.mtmd_get_output_embd(self._ctx)
            flat = np.ctypeslib.as_array(out, shape=(rows * cols * self.n_embd,))
            embd = flat.reshape(rows * cols, self.n_embd).copy()  # the buffer is reused by the next image
            return ImageEmbedding(embd, rows, cols, self.mrope)
        finally:
            mtmd.mtmd_input_chunks_free(chunks)
            mtmd.mtmd_bitmap_free(bitmap)

    def _image_chunk(self, chunks: Any) -> Any:
        mtmd = self._mtmd
        for i in range(mtmd.mtmd_input_chunks_size(chunks)):
            chunk = mtmd.mtmd_input_chunks_get(chunks, i)
            if mtmd.mtmd_input_chunk_get_type(chunk) == _CHUNK_TYPE_IMAGE:
                return chunk
        raise QwenkitError("llama.cpp made no image out of this picture")

    def close(self) -> None:
        self._worker.shutdown(wait=True, cancel_futures=True)
        self._mtmd.mtmd_free(self._ctx)


def image_key(digest: str) -> int:
    """A negative stand-in for an image's pad tokens in the prefix cache: equal for equal pixels,
    and never a token id."""
    return -1 - struct.unpack(">Q", bytes.fromhex(digest[:16]))[0] % (1 << 62)


@dataclass
class ImageRun:
    """One image's pads in a prompt, and how far their embeddings have been fed."""

    begin: int  # prompt index of its first pad
    length: int
    key: int
    image: PreparedImage
    embedding: Future[ImageEmbedding] | None = None
    start: int = -1  # position of its first token, known when it is first fed
    fed: int = 0

    @property
    def end(self) -> int:
        return self.begin + self.length


def image_runs(prompt: list[int], pad_id: int, images: tuple[PreparedImage, ...]) -> list[ImageRun]:
    """The runs of ``pad_id`` in the prompt, paired with the images in order; never raises (it runs
    while a slot is chosen): ``check_runs`` reports a mismatch for the one sequence."""
    runs: list[ImageRun] = []
    i = 0
    while i < len(prompt):
        if prompt[i] != pad_id:
            i += 1
            continue
        j = i
        while j < len(prompt) and prompt[j] == pad_id:
            j += 1
        if len(runs) < len(images):
            image = images[len(runs)]
            runs.append(ImageRun(i, j - i, image_key(image.digest), image))
        i = j
    return runs


def check_runs(
    prompt: list[int], pad_id: int, runs: list[ImageRun], images: tuple[PreparedImage, ...]
) -> None:
    """One run of pads per image, each as long as the image's token count, and text after the last."""
    places = sum(token == pad_id and (i == 0 or prompt[i - 1] != pad_id) for i, token in enumerate(prompt))
    if places != len(images):
        raise QwenkitError(f"{len(images)} image(s) sent for {places} place(s) in the prompt")
    if runs and runs[-1].end >= len(prompt):
        raise QwenkitError("a prompt must not end inside an image")
    for run in runs:
        if run.length != run.image.tokens:
            raise QwenkitError(f"an image of {run.image.tokens} tokens has {run.length} pads in the prompt")


def keyed_prompt(prompt: list[int], runs: list[ImageRun]) -> list[int]:
    """The prompt as the prefix cache compares it: each image's pads replaced by its pixel key."""
    if not runs:
        return prompt
    keys = list(prompt)
    for run in runs:
        keys[run.begin : run.end] = [run.key] * run.length
    return keys


def cut_before_image(reuse: int, runs: list[ImageRun]) -> int:
    """Reuse never ends inside an image: its embeddings go into the KV whole, so a cache that holds
    part of one (the same picture, a longer prompt cut earlier) restarts at its first pad."""
    for run in runs:
        if run.begin < reuse < run.end:
            return run.begin
    return reuse
