"""A prompt with images equals the one transformers' Qwen2-VL processor builds: the template's
placeholders, each ``<|image_pad|>`` repeated by the image processor's own count, the same ids.

(transformers' ``Qwen2VLProcessor`` needs torchvision for its video half; its image step is what it
does for text: replace each ``<|image_pad|>`` by ``grid_t * grid_h * grid_w // merge**2`` copies and
tokenize, which the reference below does with the processor's own image processor and tokenizer.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from transformers import AutoTokenizer, Qwen2VLImageProcessorPil

from qwenkit.chat import builtin_template, encode_chat
from qwenkit.chat.hf_tokenizer import HFTokenizer
from qwenkit.chat.vision import ImageSpan
from qwenkit.errors import UsageError
from qwenkit.media import PixelBudget, fit_image

BUDGET = PixelBudget()
PAD = 151655


@pytest.fixture(scope="module")
def tok(qwen3_tokenizer_dir: Path) -> HFTokenizer:
    return HFTokenizer.from_dir(qwen3_tokenizer_dir)


@pytest.fixture(scope="module")
def reference_tokenizer(qwen3_tokenizer_dir: Path) -> Any:
    return AutoTokenizer.from_pretrained(str(qwen3_tokenizer_dir))


def reference_ids(
    reference_tokenizer: Any, messages: list[dict[str, Any]], sizes: list[tuple[int, int]]
) -> list[int]:
    text = reference_tokenizer.apply_chat_template(
        messages, chat_template=builtin_template("qwen2.5-vl"), add_generation_prompt=True, tokenize=False
    )
    processor = Qwen2VLImageProcessorPil(min_pixels=BUDGET.min_pixels, max_pixels=BUDGET.max_pixels)
    grids = processor(images=[Image.new("RGB", size) for size in sizes], return_tensors="pt")[
        "image_grid_thw"
    ]
    pieces = text.split("<|image_pad|>")
    assert len(pieces) == len(sizes) + 1
    expanded = pieces[0]
    for grid, rest in zip(grids, pieces[1:], strict=True):
        expanded += "<|image_pad|>" * (int(grid.prod()) // 4) + rest
    return list(reference_tokenizer(expanded, add_special_tokens=False)["input_ids"])


CONVERSATIONS: list[tuple[str, list[dict[str, Any]], list[tuple[int, int]]]] = [
    (
        "one",
        [
            {
                "role": "user",
                "content": [
                    {"type": "image", "image": "a.png"},
                    {"type": "text", "text": "What is in this chart?"},
                ],
            }
        ],
        [(640, 480)],
    ),
    (
        "two-and-system",
        [
            {"role": "system", "content": "You read documents."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Compare"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA"}},
                    {"type": "text", "text": "with"},
                    {"type": "image", "image": "b.png"},
                ],
            },
        ],
        [(28, 5600), (1920, 1080)],
    ),
    (
        "turns",
        [
            {
                "role": "user",
                "content": [{"type": "image", "image": "a.png"}, {"type": "text", "text": "Describe."}],
            },
            {"role": "assistant", "content": "A red square."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "And this <|image_pad|> one?"},
                    {"type": "image", "image": "b.png"},
                ],
            },
        ],
        [(10, 10), (3000, 4000)],
    ),
]


@pytest.mark.parametrize(("name", "messages", "sizes"), CONVERSATIONS, ids=[c[0] for c in CONVERSATIONS])
def test_image_prompt_equals_the_processors(
    tok: HFTokenizer,
    reference_tokenizer: Any,
    name: str,
    messages: list[dict[str, Any]],
    sizes: list[tuple[int, int]],
) -> None:
    counts = [fit_image(h, w, budget=BUDGET).tokens for w, h in sizes]
    encoded = encode_chat(messages, tok, template="qwen2.5-vl", image_tokens=counts)
    if name != "turns":  # the caller's literal "<|image_pad|>" is text to us, a token to the reference
        assert list(encoded.ids) == reference_ids(reference_tokenizer, messages, sizes)
    assert [span.length for span in encoded.images] == counts
    for span in encoded.images:
        assert set(encoded.ids[span.start : span.start + span.length]) == {PAD}
        assert encoded.ids[span.start - 1] == 151652 and encoded.ids[span.start + span.length] == 151653
    assert encoded.ids.count(PAD) == sum(counts)  # caller text never adds a pad
    for start, end in encoded.caller_spans:  # caller spans moved with the expansion
        assert PAD not in encoded.ids[start:end]
    decoded = [tok.decode(encoded.ids[a:b]) for a, b in encoded.caller_spans]
    assert any("What is in this chart?" in d or "Compare" in d or "Describe." in d for d in decoded)


def test_caller_spans_follow_the_expansion(tok: HFTokenizer) -> None:
    messages = [
        {"role": "user", "content": [{"type": "image", "image": "a.png"}, {"type": "text", "text": "zebra"}]}
    ]
    small = encode_chat(messages, tok, template="qwen2.5-vl", image_tokens=[1])
    large = encode_chat(messages, tok, template="qwen2.5-vl", image_tokens=[100])
    assert small.images[0].length == 1 and large.images == (ImageSpan(small.images[0].start, 100),)
    assert [(a + 99, b + 99) for a, b in small.caller_spans if a > small.images[0].start] == [
        (a, b) for a, b in large.caller_spans if a > large.images[0].start
    ]


def test_counts_must_match_the_images(tok: HFTokenizer) -> None:
    messages = CONVERSATIONS[1][1]
    with pytest.raises(ValueError, match="2 images"):
        encode_chat(messages, tok, template="qwen2.5-vl", image_tokens=[4])
    with pytest.raises(UsageError, match="backend does not take images"):
        encode_chat(messages, tok, template="qwen2.5-vl")
