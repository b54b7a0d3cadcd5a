"""Images for Qwen's vision models: one decode and resize pipeline, and safe fetching.

Every backend receives the image this package prepared (decoded, upright, RGB, resized by Qwen's
rule), so the number of image tokens is known before inference and is the same everywhere.
"""

from qwenkit.media.decode import DecodeLimits, decode_image
from qwenkit.media.fetch import FetchPolicy, ImageFetcher
from qwenkit.media.prepare import PreparedImage, prepare_image, prepare_picture
from qwenkit.media.resize import QWEN2_VL_GRID, QWEN3_VL_GRID, ImageFit, PixelBudget, VisionGrid, fit_image
from qwenkit.media.source import ImageInput, ImageSourceKind, load_image_bytes

__all__ = [
    "QWEN2_VL_GRID",
    "QWEN3_VL_GRID",
    "DecodeLimits",
    "FetchPolicy",
    "ImageFetcher",
    "ImageFit",
    "ImageInput",
    "ImageSourceKind",
    "PixelBudget",
    "PreparedImage",
    "VisionGrid",
    "decode_image",
    "fit_image",
    "load_image_bytes",
    "prepare_image",
    "prepare_picture",
]
