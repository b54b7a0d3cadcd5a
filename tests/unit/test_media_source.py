"""Image references in messages: data: URLs, web URLs, files (only where the caller may read them)."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import pytest
from PIL import Image

from qwenkit.errors import ImageError, ImageFetchRefusedError
from qwenkit.media import DecodeLimits, ImageInput, ImageSourceKind, load_image_bytes

PNG = io.BytesIO()
Image.new("RGB", (4, 4)).save(PNG, format="PNG")
PNG_BYTES = PNG.getvalue()
DATA_URL = "data:image/png;base64," + base64.b64encode(PNG_BYTES).decode()


@pytest.mark.parametrize(("value", "kind"), [
    (DATA_URL, ImageSourceKind.DATA_URL),
    ("https://example.com/a.png", ImageSourceKind.WEB_URL),
    ("HTTP://example.com/a.png", ImageSourceKind.WEB_URL),
    ("file:///tmp/a%20b.png", ImageSourceKind.FILE),
    ("/tmp/a.png", ImageSourceKind.FILE),
    ("C:\\images\\a.png", ImageSourceKind.FILE),
    (Path("rel/a.png"), ImageSourceKind.FILE),
])
def test_references_are_classified(value: str | Path, kind: ImageSourceKind) -> None:
    assert ImageInput.of(value).kind is kind


def test_file_urls_name_their_path() -> None:
    assert ImageInput.of("file:///tmp/a%20b.png").reference == "/tmp/a b.png"


def test_pictures_and_unknown_schemes() -> None:
    assert ImageInput.of(Image.new("RGB", (2, 2))).kind is ImageSourceKind.PICTURE
    with pytest.raises(ImageError, match="'ftp'"):
        ImageInput.of("ftp://example.com/a.png")


def test_data_urls_decode() -> None:
    assert load_image_bytes(ImageInput.of(DATA_URL)) == PNG_BYTES
    spaced = DATA_URL[:40] + "\n" + DATA_URL[40:]
    assert load_image_bytes(ImageInput.of(spaced)) == PNG_BYTES
    assert ImageInput.of(DATA_URL).describe() == "data:image/png;base64,..."


@pytest.mark.parametrize(("url", "message"), [
    ("data:image/png;base64", "needs a comma"),
    ("data:image/png," + "abc", "must be base64"),
    ("data:text/plain;base64,aGVsbG8=", "not an image type"),
    ("data:image/png;base64,@@@not-base64@@@", "malformed"),
])
def test_bad_data_urls(url: str, message: str) -> None:
    with pytest.raises(ImageError, match=message):
        load_image_bytes(ImageInput.of(url))


def test_data_url_size_is_checked_before_decoding() -> None:
    with pytest.raises(ImageError, match="the limit is 10"):
        load_image_bytes(ImageInput.of(DATA_URL), limits=DecodeLimits(max_bytes=10))


def test_files_are_read_only_where_the_caller_allows(tmp_path: Path) -> None:
    picture = tmp_path / "a.png"
    picture.write_bytes(PNG_BYTES)
    with pytest.raises(ImageFetchRefusedError, match="not read for requests over HTTP"):
        load_image_bytes(ImageInput.of(str(picture)))
    with pytest.raises(ImageFetchRefusedError, match="not read for requests over HTTP"):
        load_image_bytes(ImageInput.of(picture.as_uri()))
    assert load_image_bytes(ImageInput.of(str(picture)), allow_files=True) == PNG_BYTES
    with pytest.raises(ImageError, match="no image file"):
        load_image_bytes(ImageInput.of(str(tmp_path / "missing.png")), allow_files=True)
    with pytest.raises(ImageError, match="is a directory"):
        load_image_bytes(ImageInput.of(str(tmp_path)), allow_files=True)


def test_web_urls_go_through_the_fetch_policy() -> None:
    with pytest.raises(ImageFetchRefusedError, match="does not fetch image URLs"):
        load_image_bytes(ImageInput.of("https://example.com/a.png"))
