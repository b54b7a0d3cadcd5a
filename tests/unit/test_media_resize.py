"""Qwen's resize rule and image-token count against transformers' processor, on a table of sizes."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from transformers import Qwen2VLImageProcessorPil
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize

from qwenkit.errors import ImageError, UsageError
from qwenkit.media import QWEN2_VL_GRID, QWEN3_VL_GRID, PixelBudget, fit_image, prepare_picture

DEFAULT = PixelBudget()
SIZES = [  # (height, width)
    # tiny; 42 and 70 are halves of 28 and round to even
    (1, 1), (10, 10), (27, 29), (28, 28), (42, 42), (70, 70), (56, 56), (100, 3),
    (224, 224), (333, 777), (480, 640), (1080, 1920), (2048, 2048), (3000, 4000),
    (8192, 8192), (20000, 15000), (15000, 20000),  # huge
    (28, 5600), (5600, 28), (1, 200), (3, 600), (14, 2800), (40, 7999), (12000, 61),  # extreme aspect ratios
]
BUDGETS = [DEFAULT, PixelBudget(256 * 28 * 28, 16384 * 28 * 28), PixelBudget(3136, 3136),
           PixelBudget(4, 28 * 28 * 4)]


@pytest.mark.parametrize("budget", BUDGETS, ids=lambda b: f"{b.min_pixels}-{b.max_pixels}")
@pytest.mark.parametrize(("height", "width"), SIZES)
def test_fit_equals_transformers(height: int, width: int, budget: PixelBudget) -> None:
    ours = fit_image(height, width, QWEN2_VL_GRID, budget)
    theirs = smart_resize(height, width, 28, min_pixels=budget.min_pixels, max_pixels=budget.max_pixels)
    assert (ours.height, ours.width) == theirs
    processor = Qwen2VLImageProcessorPil(min_pixels=budget.min_pixels, max_pixels=budget.max_pixels)
    patches = processor.get_number_of_image_patches(height, width, {})
    assert ours.grid_h * ours.grid_w == patches
    assert ours.tokens == patches // 4


@pytest.mark.parametrize(("height", "width"), [(1, 1), (333, 777), (1080, 1920), (28, 5600), (3000, 4000)])
def test_token_count_is_what_the_processor_makes(height: int, width: int) -> None:
    processor = Qwen2VLImageProcessorPil(min_pixels=DEFAULT.min_pixels, max_pixels=DEFAULT.max_pixels)
    out = processor(images=[Image.new("RGB", (width, height), (10, 200, 30))], return_tensors="pt")
    fit = fit_image(height, width)
    assert tuple(out["image_grid_thw"][0].tolist()) == fit.grid_thw
    assert out["pixel_values"].shape[0] == fit.grid_h * fit.grid_w


@settings(max_examples=300, deadline=None)
@given(height=st.integers(1, 30000), width=st.integers(1, 30000),
       min_tokens=st.integers(1, 64), extra_tokens=st.integers(0, 20000))
def test_any_size_agrees_and_is_a_fixed_point(height: int, width: int, min_tokens: int,
                                              extra_tokens: int) -> None:
    budget = PixelBudget(min_tokens * 28 * 28, (min_tokens + extra_tokens) * 28 * 28)
    if max(height, width) / min(height, width) > 200:
        with pytest.raises(ImageError, match="aspect ratio"):
            fit_image(height, width, budget=budget)
        with pytest.raises(ValueError):
            smart_resize(height, width, 28, budget.min_pixels, budget.max_pixels)
        return
    fit = fit_image(height, width, budget=budget)
    assert (fit.height, fit.width) == smart_resize(height, width, 28, budget.min_pixels, budget.max_pixels)
    assert fit.height % 28 == 0 and fit.width % 28 == 0
    # An image already at its fitted size is a fixed point of the rule, unless the fit itself crossed the
    # 200:1 limit (29 x 5615 fits to 28 x 5628): backends are told not to resize again for that reason.
    crossed = max(fit.height, fit.width) / min(fit.height, fit.width) > 200
    if budget.min_pixels <= fit.height * fit.width <= budget.max_pixels and not crossed:
        again = fit_image(fit.height, fit.width, budget=budget)
        assert (again.height, again.width) == (fit.height, fit.width)


def test_a_fit_may_cross_the_aspect_limit_by_rounding() -> None:
    fit = fit_image(29, 5615, budget=PixelBudget(784, 157584))  # 193.6:1, within the limit
    assert (fit.height, fit.width) == smart_resize(29, 5615, 28, 784, 157584) == (28, 5628)
    with pytest.raises(ImageError, match="201:1"):
        fit_image(fit.height, fit.width)


def test_qwen3_vl_grid_uses_factor_32() -> None:
    fit = fit_image(1000, 1000, QWEN3_VL_GRID, PixelBudget(32 * 32 * 4, 32 * 32 * 256))
    assert (fit.height, fit.width) == smart_resize(1000, 1000, 32, 32 * 32 * 4, 32 * 32 * 256)
    assert fit.tokens == (fit.height // 32) * (fit.width // 32)


@pytest.mark.parametrize(("low", "high", "message"), [(0, 10, "at least 1"), (100, 99, "must not be below")])
def test_invalid_budgets_are_refused(low: int, high: int, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        PixelBudget(low, high)


def test_a_budget_above_the_server_ceiling_is_refused() -> None:
    with pytest.raises(UsageError, match="above this server's limit"):
        PixelBudget(3136, 28 * 28 * 16384).within(DEFAULT)
    assert PixelBudget(3136, 28 * 28 * 64).within(DEFAULT).max_pixels == 28 * 28 * 64


def test_prepared_picture_is_at_its_fit_and_keyed_by_pixels() -> None:
    red = Image.new("RGB", (640, 480), (255, 0, 0))
    prepared = prepare_picture(red)
    assert prepared.image.size == (prepared.fit.width, prepared.fit.height) == (644, 476)
    assert (prepared.source_width, prepared.source_height) == (640, 480)
    assert prepare_picture(red.copy()).digest == prepared.digest
    assert prepare_picture(Image.new("RGB", (640, 480), (254, 0, 0))).digest != prepared.digest
    rgba = Image.new("RGBA", (56, 56), (0, 0, 0, 0))
    assert prepare_picture(rgba).image.getpixel((0, 0)) == (255, 255, 255)
