"""Qwen's image resize rule and the image-token count that follows from it.

Qwen's vision towers cut an image into ``patch_size`` squares and merge ``merge_size`` x
``merge_size`` of them into one language-model token, so both sides of the image must be multiples
of ``patch_size * merge_size`` (28 for Qwen2-VL and Qwen2.5-VL, 32 for Qwen3-VL). The rule below is
the one Qwen's processors apply (``smart_resize``): keep the aspect ratio, round each side to that
factor, and scale the whole image into ``[min_pixels, max_pixels]``. It is written once here and
every backend receives an image already at its size, so the token count is known before inference
and is identical on every backend (a resized image is a fixed point of the rule).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from qwenkit.errors import ImageError, UsageError

# Qwen's processors refuse anything longer than 200 times its width (or the reverse).
MAX_ASPECT_RATIO = 200


@dataclass(frozen=True)
class VisionGrid:
    """How a vision tower tiles an image (a model's ``vision_config``)."""

    patch_size: int = 14
    merge_size: int = 2
    temporal_patch_size: int = 2

    @property
    def factor(self) -> int:
        """Both sides of a resized image are multiples of this."""
        return self.patch_size * self.merge_size


QWEN2_VL_GRID = VisionGrid(patch_size=14, merge_size=2)  # Qwen2-VL and Qwen2.5-VL
QWEN3_VL_GRID = VisionGrid(patch_size=16, merge_size=2)  # Qwen3-VL and Qwen3.5


@dataclass(frozen=True)
class PixelBudget:
    """Bounds on a resized image's area (vLLM's and transformers' ``min_pixels`` / ``max_pixels``).

    The default ceiling, 1280 tokens' worth of pixels at factor 28, is the one Qwen's documentation
    recommends for memory; the checkpoints' own preprocessor configs allow 16384 tokens, which is
    how a single screenshot exhausts a GPU.
    """

    min_pixels: int = 56 * 56
    max_pixels: int = 28 * 28 * 1280

    def __post_init__(self) -> None:
        if self.min_pixels < 1:
            raise UsageError(f"min_pixels must be at least 1, got {self.min_pixels}", param="min_pixels")
        if self.max_pixels < self.min_pixels:
            raise UsageError(
                f"max_pixels ({self.max_pixels}) must not be below min_pixels ({self.min_pixels})",
                param="max_pixels",
            )

    def within(self, ceiling: PixelBudget) -> PixelBudget:
        """This budget, refused if it asks for more than ``ceiling`` (a server's limit) allows."""
        if self.max_pixels > ceiling.max_pixels:
            raise UsageError(
                f"max_pixels {self.max_pixels} is above this server's limit of {ceiling.max_pixels}",
                param="max_pixels",
            )
        return self


@dataclass(frozen=True)
class ImageFit:
    """The size an image is resized to and what it costs in the model."""

    height: int
    width: int
    grid_h: int  # patches down
    grid_w: int  # patches across
    tokens: int  # image-pad tokens in the prompt

    @property
    def grid_thw(self) -> tuple[int, int, int]:
        """transformers' ``image_grid_thw`` row for this image (one temporal patch)."""
        return (1, self.grid_h, self.grid_w)


def fit_image(height: int, width: int, grid: VisionGrid = QWEN2_VL_GRID,
              budget: PixelBudget | None = None) -> ImageFit:
    """The resized size of a ``height`` x ``width`` image and its token count."""
    budget = budget or PixelBudget()
    if height < 1 or width < 1:
        raise ImageError(f"an image must have at least one pixel a side, got {width} x {height}")
    ratio = max(height, width) / min(height, width)
    if ratio > MAX_ASPECT_RATIO:
        raise ImageError(
            f"the image is {width} x {height}, an aspect ratio of {ratio:.0f}:1; Qwen's vision models "
            f"take at most {MAX_ASPECT_RATIO}:1"
        )
    factor = grid.factor
    # Python's round() rounds halves to even, as the reference rule does; the results must agree.
    new_h = round(height / factor) * factor
    new_w = round(width / factor) * factor
    if new_h * new_w > budget.max_pixels:
        beta = math.sqrt((height * width) / budget.max_pixels)
        new_h = max(factor, math.floor(height / beta / factor) * factor)
        new_w = max(factor, math.floor(width / beta / factor) * factor)
    elif new_h * new_w < budget.min_pixels:
        beta = math.sqrt(budget.min_pixels / (height * width))
        new_h = math.ceil(height * beta / factor) * factor
        new_w = math.ceil(width * beta / factor) * factor
    grid_h, grid_w = new_h // grid.patch_size, new_w // grid.patch_size
    return ImageFit(height=new_h, width=new_w, grid_h=grid_h, grid_w=grid_w,
                    tokens=grid_h * grid_w // grid.merge_size**2)
