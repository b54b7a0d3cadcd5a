"""The llama.cpp backend's image bookkeeping without a model: pad runs, pixel keys for the prefix cache,
M-RoPE positions, where a vision projector is looked for, and the server's image settings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from qwenkit.engine.llama_vision import (
    ImageEmbedding,
    check_runs,
    cut_before_image,
    find_mmproj,
    image_key,
    image_runs,
    keyed_prompt,
)
from qwenkit.engine.registry import BACKENDS, check_options
from qwenkit.engine.types import BackendKind, BackendOptions
from qwenkit.errors import ModelFormatError, QwenkitError, UsageError
from qwenkit.media import prepare_picture
from qwenkit.server.settings import load_settings

PAD = 9


def prepared(width: int, height: int, seed: int) -> object:
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return prepare_picture(Image.fromarray(pixels))


def test_runs_pair_pads_with_images_and_keys_are_the_pixels() -> None:
    first, second = prepared(56, 56, 1), prepared(56, 84, 2)
    prompt = [1, 2, *[PAD] * 4, 3, *[PAD] * 6, 4]
    runs = image_runs(prompt, PAD, (first, second))  # type: ignore[arg-type]
    assert [(r.begin, r.length) for r in runs] == [(2, 4), (7, 6)]
    check_runs(prompt, PAD, runs, (first, second))  # type: ignore[arg-type]
    keys = keyed_prompt(prompt, runs)
    assert keys[:2] == [1, 2] and keys[6] == 3 and keys[-1] == 4
    assert set(keys[2:6]) == {image_key(first.digest)} and set(keys[7:13]) == {image_key(second.digest)}  # type: ignore[attr-defined]
    assert image_key(first.digest) < 0 and image_key(first.digest) != image_key(second.digest)  # type: ignore[attr-defined]
    assert image_key(prepared(56, 56, 1).digest) == image_key(first.digest)  # type: ignore[attr-defined]


def test_a_mismatch_fails_the_sequence_not_the_slot_choice() -> None:
    image = prepared(56, 56, 1)
    two_places = [*[PAD] * 4, 3, *[PAD] * 4, 5]
    runs = image_runs(two_places, PAD, (image,))  # type: ignore[arg-type]
    assert len(runs) == 1  # image_runs never raises: it runs while a slot is chosen
    with pytest.raises(QwenkitError, match="1 image"):
        check_runs(two_places, PAD, runs, (image,))  # type: ignore[arg-type]
    short = [1, *[PAD] * 3, 2]
    with pytest.raises(QwenkitError, match="4 tokens has 3 pads"):
        check_runs(short, PAD, image_runs(short, PAD, (image,)), (image,))  # type: ignore[arg-type]
    ending = [1, *[PAD] * 4]
    with pytest.raises(QwenkitError, match="end inside an image"):
        check_runs(ending, PAD, image_runs(ending, PAD, (image,)), (image,))  # type: ignore[arg-type]


def test_reuse_never_ends_inside_an_image() -> None:
    image = prepared(56, 56, 1)
    runs = image_runs([1, 2, *[PAD] * 4, 3], PAD, (image,))  # type: ignore[arg-type]
    assert [cut_before_image(n, runs) for n in (0, 2, 3, 5, 6, 7)] == [0, 2, 2, 2, 6, 7]


def test_mrope_positions_are_time_row_column_section_by_section() -> None:
    """Qwen2-VL's rule (transformers' get_rope_index): t = start, h = start + row, w = start + col."""
    embedding = ImageEmbedding(np.zeros((6, 2), dtype=np.float32), rows=2, cols=3, mrope=True)
    assert embedding.n_pos == 3
    assert embedding.positions(10, 0, 6) == [10] * 6 + [10, 10, 10, 11, 11, 11] + [10, 11, 12] * 2 + [0] * 6
    assert embedding.positions(10, 4, 2) == [10, 10, 11, 11, 11, 12, 0, 0]  # a later piece of the image
    flat = ImageEmbedding(np.zeros((6, 2), dtype=np.float32), rows=2, cols=3, mrope=False)
    assert flat.n_pos == 6 and flat.positions(10, 4, 2) == [14, 15]


def test_the_projector_is_found_beside_a_vision_model_only(tmp_path: Path, qwen3_vocab_gguf: Path) -> None:
    text_model = tmp_path / "model.gguf"
    text_model.write_bytes(qwen3_vocab_gguf.read_bytes())
    (tmp_path / "mmproj-model.gguf").write_bytes(b"GGUF")
    assert find_mmproj(text_model) is None  # a qwen3 text model reads no images, whatever lies beside it
    assert find_mmproj(text_model, tmp_path / "mmproj-model.gguf") == tmp_path / "mmproj-model.gguf"
    with pytest.raises(ModelFormatError, match="no vision projector"):
        find_mmproj(text_model, tmp_path / "missing.gguf")


def test_a_projector_is_refused_on_the_backends_that_do_not_read_one() -> None:
    check_options(BACKENDS[BackendKind.LLAMACPP], BackendOptions(mmproj="x.gguf"))
    with pytest.raises(UsageError, match=r"\(mmproj\) is llama"):
        check_options(BACKENDS[BackendKind.TRANSFORMERS], BackendOptions(mmproj="x.gguf"))


def test_server_image_settings() -> None:
    default = load_settings().image_rules
    assert not default.allow_files and not default.fetch.enabled
    rules = load_settings(image_fetch_hosts=["cdn.example.com, *.example.org"], image_max_pixels=28 * 28 * 64)
    assert rules.image_rules.fetch.allowed_hosts == ("cdn.example.com", "*.example.org")
    assert rules.image_rules.default_budget.max_pixels == 28 * 28 * 64
    with pytest.raises(UsageError, match="image_max_pixels"):
        load_settings(image_max_pixels=100)
    with pytest.raises(UsageError, match="above this server's limit"):
        _ = load_settings(image_max_pixels=28 * 28 * 20000).image_rules
