"""Decoding hostile image bytes: each refusal is an ImageError naming the problem, decided early."""

from __future__ import annotations

import io
import struct
import time
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from qwenkit.errors import ImageError
from qwenkit.media import DecodeLimits, decode_image, prepare_image


def encoded(picture: Image.Image, fmt: str = "PNG", **kw: object) -> bytes:
    out = io.BytesIO()
    picture.save(out, format=fmt, **kw)
    return out.getvalue()


def png_declaring(width: int, height: int) -> bytes:
    """A tiny PNG whose header declares width x height (its data would inflate to gigabytes)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    rows = zlib.compress(b"\x00" * (1 + 3 * 64) * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "GIF", "BMP"])
def test_raster_formats_decode_to_rgb(fmt: str) -> None:
    picture = decode_image(encoded(Image.new("RGB", (64, 48), (200, 10, 10)), fmt))
    assert picture.mode == "RGB" and picture.size == (64, 48)


@pytest.mark.parametrize(("data", "message"), [
    (b"", "empty"),
    (b"hello, this is plain text and not a picture at all", "not an image"),
    (b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>', "SVG"),
    (b'  <svg width="10" height="10"></svg>', "SVG"),
    (b"%PDF-1.7\n1 0 obj\n", "not an image"),
], ids=["empty", "text", "svg-xml", "svg", "pdf"])
def test_non_images_are_refused(data: bytes, message: str) -> None:
    with pytest.raises(ImageError, match=message):
        decode_image(data)


def test_a_truncated_png_is_refused() -> None:
    whole = encoded(Image.effect_noise((256, 256), 64).convert("RGB"))
    with pytest.raises(ImageError, match="truncated or corrupt"):
        decode_image(whole[: len(whole) // 2])


def test_a_truncated_jpeg_is_refused() -> None:
    whole = encoded(Image.effect_noise((256, 256), 64).convert("RGB"), "JPEG")
    with pytest.raises(ImageError, match="truncated or corrupt"):
        decode_image(whole[: len(whole) // 3])


@pytest.mark.parametrize(("width", "height"), [(20000, 20000), (9000, 9000), (70000, 1000)])
def test_huge_declared_sizes_are_refused_before_decoding(width: int, height: int) -> None:
    data = png_declaring(width, height)
    assert len(data) < 2000
    started = time.process_time()
    with pytest.raises(ImageError, match="pixels"):
        decode_image(data)
    assert time.process_time() - started < 1.0  # refused from the header, nothing inflated


def test_byte_limit() -> None:
    with pytest.raises(ImageError, match="the limit is 1,000"):
        decode_image(encoded(Image.effect_noise((128, 128), 64)), DecodeLimits(max_bytes=1000))


def test_exif_orientation_is_applied() -> None:
    wide = Image.new("RGB", (80, 40), (0, 0, 255))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    upright = decode_image(encoded(wide, "JPEG", exif=exif))
    assert upright.size == (40, 80)


def test_transparency_is_composited_on_white() -> None:
    clear = Image.new("RGBA", (8, 8), (255, 0, 0, 0))
    assert decode_image(encoded(clear)).getpixel((3, 3)) == (255, 255, 255)
    half = Image.new("LA", (8, 8), (0, 128))
    assert decode_image(encoded(half)).getpixel((3, 3)) == (127, 127, 127)


def test_an_animation_gives_its_first_frame() -> None:
    frames = [Image.new("RGB", (16, 16), color) for color in ((255, 0, 0), (0, 255, 0))]
    out = io.BytesIO()
    frames[0].save(out, format="GIF", save_all=True, append_images=frames[1:])
    assert decode_image(out.getvalue()).getpixel((0, 0)) == (255, 0, 0)


def test_prepare_image_counts_tokens_and_keys_pixels() -> None:
    png = encoded(Image.new("RGB", (640, 480), (1, 2, 3)))
    bmp = encoded(Image.new("RGB", (640, 480), (1, 2, 3)), "BMP")
    prepared = prepare_image(png)
    assert prepared.tokens == (644 // 28) * (476 // 28)
    assert prepare_image(bmp).digest == prepared.digest  # same pixels, another encoding


SAMPLES = [encoded(Image.effect_noise((48, 32), 50).convert("RGB"), fmt)
           for fmt in ("PNG", "JPEG", "GIF", "WEBP")]


@settings(max_examples=300, deadline=None)
@given(sample=st.sampled_from(SAMPLES), edits=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)),
                                                      max_size=8), cut=st.integers(0, 10**6))
def test_damaged_images_decode_or_are_refused(sample: bytes, edits: list[tuple[int, int]], cut: int) -> None:
    """Flipped bytes and cut tails anywhere in real files: an image, or an ImageError, never anything else."""
    data = bytearray(sample)
    for where, value in edits:
        data[where % len(data)] = value
    data = data[: max(1, cut % (len(data) + 1))]
    try:
        picture = decode_image(bytes(data))
    except ImageError:
        return
    assert picture.mode == "RGB"
