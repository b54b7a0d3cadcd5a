"""Where an image in a message comes from: a data: URL, an http(s) URL, a local file, or a picture.

OpenAI's ``image_url`` parts carry a data: URL (base64) or a web URL; ``qwen_vl_utils``' shape
``{"type": "image", "image": ...}`` also takes a path or a PIL image (Python API). Local files are
read only where the caller is the machine's own user (the CLI and the Python API), never for a
request that came over HTTP, whatever its URL says.
"""

from __future__ import annotations

import base64
import binascii
import enum
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from PIL import Image

from qwenkit.errors import ImageError, ImageFetchRefusedError
from qwenkit.media.decode import DecodeLimits
from qwenkit.media.fetch import ImageFetcher


class ImageSourceKind(enum.Enum):
    DATA_URL = "data"
    WEB_URL = "web"
    FILE = "file"
    PICTURE = "picture"  # an already decoded PIL image (Python API)


@dataclass(frozen=True)
class ImageInput:
    """One image reference from a message, classified; ``picture`` only for PICTURE."""

    kind: ImageSourceKind
    reference: str = ""
    picture: Image.Image | None = None

    @classmethod
    def of(cls, value: str | Path | Image.Image) -> ImageInput:
        if isinstance(value, Image.Image):
            return cls(ImageSourceKind.PICTURE, picture=value)
        text = str(value).strip()
        scheme = urlsplit(text).scheme.lower() if not isinstance(value, Path) else ""
        if scheme == "data":
            return cls(ImageSourceKind.DATA_URL, text)
        if scheme in ("http", "https"):
            return cls(ImageSourceKind.WEB_URL, text)
        if scheme == "file":
            return cls(ImageSourceKind.FILE, unquote(urlsplit(text).path))
        if scheme and len(scheme) > 1:  # one letter is a Windows drive, not a scheme
            raise ImageError(f"image URLs with the scheme {scheme!r} are not read (data:, http, https)")
        return cls(ImageSourceKind.FILE, text)

    def describe(self) -> str:
        """A short label for messages and logs (never the whole base64 payload)."""
        if self.kind is ImageSourceKind.DATA_URL:
            return self.reference[: self.reference.find(",") if "," in self.reference else 32] + ",..."
        if self.kind is ImageSourceKind.PICTURE:
            return "a PIL image"
        return self.reference


def decode_data_url(url: str, limits: DecodeLimits) -> bytes:
    """The bytes of ``data:image/...;base64,...``, size-checked before decoding."""
    header, comma, payload = url.partition(",")
    if not comma:
        raise ImageError("a data: URL needs a comma between its header and its data")
    media_type, *params = header[len("data:"):].split(";")
    if "base64" not in (p.strip().lower() for p in params):
        raise ImageError("image data: URLs must be base64 (data:image/png;base64,...)")
    if media_type and not media_type.strip().lower().startswith("image/"):
        raise ImageError(f"the data: URL says {media_type!r}, not an image type")
    limits.check_bytes(len(payload) * 3 // 4)
    try:
        return base64.b64decode("".join(payload.split()), validate=True)
    except (binascii.Error, ValueError):
        raise ImageError("the data: URL's base64 is malformed") from None


def read_image_file(path: str, limits: DecodeLimits) -> bytes:
    file = Path(path).expanduser()
    try:
        size = file.stat().st_size
        limits.check_bytes(size)
        return file.read_bytes()
    except FileNotFoundError:
        raise ImageError(f"no image file at {path}") from None
    except IsADirectoryError:
        raise ImageError(f"{path} is a directory, not an image") from None
    except OSError as exc:
        raise ImageError(f"cannot read the image file {path}: {exc.strerror or exc}") from None


def load_image_bytes(source: ImageInput, *, fetcher: ImageFetcher | None = None, allow_files: bool = False,
                     limits: DecodeLimits | None = None) -> bytes:
    """The encoded bytes an image reference names, under the caller's rules."""
    limits = limits or DecodeLimits()
    if source.kind is ImageSourceKind.DATA_URL:
        return decode_data_url(source.reference, limits)
    if source.kind is ImageSourceKind.WEB_URL:
        data, _ = (fetcher or ImageFetcher()).fetch(source.reference)
        return data
    if source.kind is ImageSourceKind.FILE:
        if not allow_files:
            raise ImageFetchRefusedError(
                "local file paths are not read for requests over HTTP; send the image as a data: URL"
            )
        return read_image_file(source.reference, limits)
    raise ImageError("a decoded picture has no bytes to load; prepare it with prepare_picture")
