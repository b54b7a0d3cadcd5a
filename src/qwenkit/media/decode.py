"""Bytes to an upright RGB picture, refusing what is not a raster image or is too big to decode.

Images arrive from strangers (base64 in a request, a fetched URL), so decoding checks the declared
size before any pixel is decompressed: a 20,000 x 20,000 PNG of a few kilobytes would otherwise
expand to over a gigabyte. Pillow's own bomb check (a warning up to twice its limit) is made an
error, and the format is restricted to the raster formats Qwen's processors read.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

from PIL import Image, ImageOps, UnidentifiedImageError

from qwenkit.errors import ImageError

# Raster formats read; everything else (SVG, PDF, TIFF's many codecs, PSD ...) is refused by name.
READ_FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP")
WHITE = (255, 255, 255, 255)


@dataclass(frozen=True)
class DecodeLimits:
    """What one image may cost before it is resized."""

    max_bytes: int = 20 * 1024 * 1024
    max_pixels: int = 8192 * 8192  # decoded source area; 64 Mpx is 192 MiB as RGB

    def check_bytes(self, size: int) -> None:
        if size > self.max_bytes:
            raise ImageError(f"the image is {size:,} bytes; the limit is {self.max_bytes:,}")


def _looks_like_markup(data: bytes) -> bool:
    head = data[:512].lstrip().lower()
    return head.startswith((b"<?xml", b"<svg", b"<!doctype", b"<html"))


def _open(data: bytes, limits: DecodeLimits) -> Image.Image:
    """Read the header only: format and declared size, nothing decompressed yet."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            picture = Image.open(io.BytesIO(data), formats=READ_FORMATS)
        except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
            raise ImageError(f"the image declares more pixels than qwenkit decodes ({exc})") from None
        except UnidentifiedImageError:
            raise ImageError(
                "the data is not an image qwenkit reads (PNG, JPEG, WebP, GIF or BMP)"
            ) from None
        except Exception as exc:  # hostile bytes reach parsers in many ways; each is the image's fault
            raise ImageError(f"the image header is corrupt: {exc}") from None
    width, height = picture.size
    if width * height > limits.max_pixels:
        raise ImageError(
            f"the image is {width:,} x {height:,} pixels ({width * height:,}); qwenkit decodes at most "
            f"{limits.max_pixels:,} pixels (it is resized to far fewer anyway: send a smaller image)"
        )
    return picture


def to_rgb(picture: Image.Image) -> Image.Image:
    """RGB with any transparency composited onto white (as Qwen's processors do)."""
    if picture.mode == "RGB":
        return picture
    if "A" in picture.getbands() or picture.info.get("transparency") is not None:
        rgba = picture.convert("RGBA")
        return Image.alpha_composite(Image.new("RGBA", rgba.size, WHITE), rgba).convert("RGB")
    return picture.convert("RGB")


def decode_image(data: bytes, limits: DecodeLimits | None = None) -> Image.Image:
    """An upright RGB image from encoded bytes (the first frame of an animation)."""
    limits = limits or DecodeLimits()
    if not data:
        raise ImageError("the image is empty (0 bytes)")
    limits.check_bytes(len(data))
    if _looks_like_markup(data):
        raise ImageError("SVG and other markup are not images qwenkit reads; send a PNG or JPEG rendering")
    picture = _open(data, limits)
    try:
        picture.seek(0)
        picture.load()
        upright = ImageOps.exif_transpose(picture)
    except Exception as exc:  # as in _open: whatever the decoder trips on, the data is at fault
        raise ImageError(f"the {picture.format} image is truncated or corrupt: {exc}") from None
    return to_rgb(upright)
