"""One image made ready for a vision model: decoded, resized by Qwen's rule, counted and keyed."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from PIL import Image

from qwenkit.media.decode import DecodeLimits, decode_image, to_rgb
from qwenkit.media.resize import QWEN2_VL_GRID, ImageFit, PixelBudget, VisionGrid, fit_image


@dataclass(frozen=True)
class PreparedImage:
    """What every backend receives for one image.

    ``digest`` hashes the resized pixels (not the encoded bytes), so the same picture sent as PNG
    or as JPEG-of-the-same-pixels, or re-encoded by a client, keys the same prefix-cache entry, and
    two different pictures never share one.
    """

    image: Image.Image  # RGB, already at fit.width x fit.height
    fit: ImageFit
    source_width: int
    source_height: int
    digest: str

    @property
    def tokens(self) -> int:
        return self.fit.tokens


def pixel_digest(image: Image.Image) -> str:
    """sha256 over the size and the raw RGB pixels."""
    hasher = hashlib.sha256(f"{image.width}x{image.height}:".encode())
    hasher.update(image.tobytes())
    return hasher.hexdigest()


def prepare_picture(picture: Image.Image, grid: VisionGrid = QWEN2_VL_GRID,
                    budget: PixelBudget | None = None) -> PreparedImage:
    """Resize a decoded, upright picture (made RGB here) by the rule of ``resize.py``."""
    picture = to_rgb(picture)
    fit = fit_image(picture.height, picture.width, grid, budget)
    resized = picture
    if (picture.width, picture.height) != (fit.width, fit.height):
        resized = picture.resize((fit.width, fit.height), Image.Resampling.BICUBIC)
    return PreparedImage(image=resized, fit=fit, source_width=picture.width, source_height=picture.height,
                         digest=pixel_digest(resized))


def prepare_image(data: bytes, grid: VisionGrid = QWEN2_VL_GRID, budget: PixelBudget | None = None,
                  limits: DecodeLimits | None = None) -> PreparedImage:
    """Encoded bytes to a PreparedImage; every refusal is an ImageError naming the problem."""
    return prepare_picture(decode_image(data, limits), grid, budget)
