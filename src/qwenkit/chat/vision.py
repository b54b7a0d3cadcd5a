"""Images in a prompt: where a Qwen-VL template puts them and how many tokens each one becomes.

A Qwen-VL chat template writes ``<|vision_start|><|image_pad|><|vision_end|>`` for each image part;
the model reads one ``<|image_pad|>`` per merged patch, so each pad is repeated by the image's token
count (``qwenkit.media.resize``), known before inference. The pads come from the template, never from
caller text (which is tokenized without special tokens), so a caller cannot forge or shift them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from qwenkit.chat.messages import ImagePart, Message, image_positions
from qwenkit.errors import UsageError

VISION_START = "<|vision_start|>"
IMAGE_PAD = "<|image_pad|>"


@dataclass(frozen=True)
class ImageSpan:
    """The run of ``<|image_pad|>`` ids standing for one image: ``ids[start:start + length]``."""

    start: int
    length: int


def takes_images(template_source: str) -> bool:
    return VISION_START in template_source and IMAGE_PAD in template_source


def content_parts(message: Message, text: Callable[[str], str]) -> list[dict[str, str]]:
    """The content list a Qwen-VL template iterates: text parts (through ``text``) and image parts."""
    return [{"type": "image"} if isinstance(part, ImagePart) else {"type": "text", "text": text(part)}
            for part in message.parts or ()]


NO_IMAGES = "this backend does not take images"


def check_image_counts(messages: Sequence[Message], template_source: str,
                       image_tokens: Sequence[int] | None, unavailable: str = NO_IMAGES) -> int:
    """How many images the prompt holds, refusing what cannot be encoded (by the part's name);
    ``unavailable`` says why a vision model's images cannot be read here (``image_tokens`` None)."""
    positions = image_positions(messages)
    if not positions:
        return 0
    i, j = positions[0]
    where = f"messages[{i}].content[{j}]"
    if not takes_images(template_source):
        problem = "this model reads text only; images need a vision model (Qwen2.5-VL, Qwen3-VL)"
        raise UsageError(f"{where}: {problem}", param=where)
    if image_tokens is None:
        raise UsageError(f"{where}: {unavailable}", param=where)
    if len(image_tokens) != len(positions) or any(n < 1 for n in image_tokens):
        counts = list(image_tokens)
        raise ValueError(f"{len(positions)} images need as many positive token counts, got {counts}")
    return len(positions)


def expand_image_pads(ids: list[int], caller_idx: list[int], pad_id: int,
                      image_tokens: Sequence[int]) -> tuple[list[int], list[int], tuple[ImageSpan, ...]]:
    """Repeat the k-th template ``<|image_pad|>`` image_tokens[k] times; caller indices move with it."""
    caller = set(caller_idx)
    pads = {i for i, token in enumerate(ids) if token == pad_id and i not in caller}
    if len(pads) != len(image_tokens):
        raise UsageError(
            f"the chat template wrote {len(pads)} image placeholders for {len(image_tokens)} images; "
            "images go in user messages' content parts")
    out: list[int] = []
    spans: list[ImageSpan] = []
    shift: list[int] = []  # new index of each old index
    counts = iter(image_tokens)
    for i, token in enumerate(ids):
        shift.append(len(out))
        if i in pads:
            length = next(counts)
            spans.append(ImageSpan(len(out), length))
            out.extend([pad_id] * length)
        else:
            out.append(token)
    return out, [shift[i] for i in caller_idx], tuple(spans)


def with_image_parts(data: dict[str, Any], message: Message, text: Callable[[str], str]) -> dict[str, Any]:
    """Template variables of a message whose content holds images: content becomes the parts list."""
    if message.images:
        data["content"] = content_parts(message, text)
    return data
