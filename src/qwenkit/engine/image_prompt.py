"""The images of a chat request, made ready before the prompt is encoded.

Each image part is loaded under the caller's rules (a Python API caller may name local files; a
server's requests may not, and fetch URLs only under the server's policy), resized for the model's
vision grid within the request's pixel bounds (capped by a ceiling), and counted, so that the
prompt's pad tokens, ``usage.prompt_tokens`` and the context check all see the real number.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from qwenkit.chat.encode import EncodedPrompt
from qwenkit.chat.messages import ImagePart, Message
from qwenkit.errors import UsageError
from qwenkit.media import (
    DecodeLimits,
    FetchPolicy,
    ImageFetcher,
    ImageInput,
    ImageSourceKind,
    PixelBudget,
    PreparedImage,
    VisionGrid,
    load_image_bytes,
    prepare_image,
    prepare_picture,
)

# The checkpoints' own preprocessor limit (16384 tokens of 28 x 28 pixels): no request goes above it.
CEILING = PixelBudget(56 * 56, 28 * 28 * 16384)


@dataclass(frozen=True)
class ImageRules:
    """Where an LLM takes images from, and how large they may be."""

    allow_files: bool = True  # the Python API's caller is the machine's user; servers turn this off
    fetch: FetchPolicy = field(default_factory=FetchPolicy)
    default_budget: PixelBudget = field(default_factory=PixelBudget)
    ceiling: PixelBudget = CEILING
    limits: DecodeLimits = field(default_factory=DecodeLimits)

    def budget_for(self, min_pixels: int | None, max_pixels: int | None) -> PixelBudget:
        low = min_pixels if min_pixels is not None else self.default_budget.min_pixels
        high = max_pixels if max_pixels is not None else max(self.default_budget.max_pixels, low)
        return PixelBudget(low, high).within(self.ceiling)


@dataclass(frozen=True)
class ImagePrompt(EncodedPrompt):
    """An encoded prompt and the prepared images its pad runs stand for."""

    prepared: tuple[PreparedImage, ...] = ()


def _prepare(part: ImagePart, grid: VisionGrid, rules: ImageRules, fetcher: ImageFetcher) -> PreparedImage:
    budget = rules.budget_for(part.min_pixels, part.max_pixels)
    source = ImageInput.of(part.image)
    if source.kind is ImageSourceKind.PICTURE and source.picture is not None:
        return prepare_picture(source.picture, grid, budget)
    data = load_image_bytes(source, fetcher=fetcher, allow_files=rules.allow_files, limits=rules.limits)
    return prepare_image(data, grid, budget, rules.limits)


def prepare_message_images(
    messages: Sequence[Message], grid: VisionGrid, rules: ImageRules
) -> tuple[PreparedImage, ...]:
    """Every image part, in prompt order, loaded and resized; a refusal names its part."""
    fetcher = ImageFetcher(rules.fetch)
    out = []
    for i, message in enumerate(messages):
        for j, part in enumerate(message.parts or ()):
            if not isinstance(part, ImagePart):
                continue
            where = f"messages[{i}].content[{j}]"
            try:
                out.append(_prepare(part, grid, rules, fetcher))
            except UsageError as exc:
                raise type(exc)(f"{where}: {exc.message}", param=exc.param or where, hint=exc.hint) from None
    return tuple(out)


def with_images(encoded: EncodedPrompt, prepared: tuple[PreparedImage, ...]) -> EncodedPrompt:
    if not prepared:
        return encoded
    return ImagePrompt(**{name: getattr(encoded, name) for name in encoded.__dataclass_fields__},
                       prepared=prepared)
