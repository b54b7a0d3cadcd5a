"""Image parts in messages: the shapes clients send, where they may appear, and the refusal by name
for a model that cannot read them (nothing is dropped from the prompt in silence)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from qwenkit.chat import encode_chat
from qwenkit.chat.hf_tokenizer import HFTokenizer
from qwenkit.chat.messages import ImagePart, image_positions, normalize_messages
from qwenkit.errors import UsageError

URL = "https://example.com/chart.png"
DATA = "data:image/png;base64,iVBORw0KGgo="
FIRST = "messages[0].content[0]"


@pytest.fixture(scope="module")
def tok(qwen3_tokenizer_dir: Path) -> HFTokenizer:
    return HFTokenizer.from_dir(qwen3_tokenizer_dir)


def user(*parts: Any) -> dict[str, Any]:
    return {"role": "user", "content": list(parts)}


@pytest.mark.parametrize(("part", "expected"), [
    ({"type": "image_url", "image_url": {"url": URL}}, ImagePart(URL)),
    ({"type": "image_url", "image_url": {"url": DATA, "detail": "high"}}, ImagePart(DATA)),
    ({"type": "image_url", "image_url": URL}, ImagePart(URL)),  # vLLM also takes the bare string
    ({"type": "image", "image": "/tmp/a.png"}, ImagePart("/tmp/a.png")),  # qwen_vl_utils' shape
    ({"type": "image", "image": URL, "min_pixels": 3136, "max_pixels": 200704}, ImagePart(URL, 3136, 200704)),
    ({"type": "image_url", "image_url": {"url": URL, "max_pixels": 50176}}, ImagePart(URL, None, 50176)),
])
def test_image_part_shapes(part: dict[str, Any], expected: ImagePart) -> None:
    (message,) = normalize_messages([user({"type": "text", "text": "What is this?"}, part)])
    assert message.parts == ("What is this?", expected)
    assert message.content == "What is this?" and message.text_parts == ("What is this?",)
    assert message.images == (expected,)


def test_a_pil_picture_is_an_image_in_the_python_api() -> None:
    picture = Image.new("RGB", (8, 8))
    (message,) = normalize_messages([user({"type": "image", "image": picture})])
    assert message.images[0].image is picture


def test_images_keep_their_place_among_texts() -> None:
    messages = normalize_messages([
        {"role": "system", "content": "Be brief."},
        user({"type": "image", "image": URL}, "and", {"type": "image", "image": DATA}, "compare"),
    ])
    assert messages[1].parts == (ImagePart(URL), "and", ImagePart(DATA), "compare")
    assert messages[1].content == "and\ncompare"
    assert image_positions(messages) == [(1, 0), (1, 2)]


@pytest.mark.parametrize(("message", "param", "text"), [
    (user({"type": "image_url", "image_url": {"url": ""}}), "messages[0].content[0].image_url.url", "empty"),
    (user({"type": "image_url", "image_url": {}}), "messages[0].content[0].image_url.url", "URL string"),
    (user({"type": "image_url", "image_url": 5}), "messages[0].content[0].image_url", "URL string"),
    (user({"type": "image", "image": 5}), "messages[0].content[0].image", "URL string"),
    (user({"type": "image_url", "image_url": {"url": URL, "detail": "ultra"}}),
     "messages[0].content[0].image_url.detail", "auto, low or high"),
    (user({"type": "image", "image": URL, "max_pixels": 0}), f"{FIRST}.max_pixels", "positive"),
    (user({"type": "image", "image": URL, "min_pixels": "9"}), f"{FIRST}.min_pixels", "positive"),
    (user({"type": "video", "video": URL}), FIRST, "'video'"),
    ({"role": "system", "content": [{"type": "image", "image": URL}]}, FIRST, "user messages"),
    ({"role": "assistant", "content": [{"type": "image", "image": URL}]}, "messages[0].content[0]",
     "user messages"),
    ({"role": "tool", "content": [{"type": "image", "image": URL}], "tool_call_id": "c"},
     "messages[0].content[0]", "user messages"),
])
def test_malformed_or_misplaced_images(message: dict[str, Any], param: str, text: str) -> None:
    with pytest.raises(UsageError, match=text) as caught:
        normalize_messages([message])
    assert caught.value.param == param


def test_a_text_model_refuses_an_image_by_name(tok: HFTokenizer) -> None:
    messages = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"},
                user("look", {"type": "image_url", "image_url": {"url": DATA}})]
    for template in ("qwen3", "qwen2.5"):
        with pytest.raises(UsageError, match="reads text only") as caught:
            encode_chat(messages, tok, template=template)
        assert caught.value.param == "messages[2].content[1]"


def test_a_vision_template_is_not_given_a_prompt_without_its_images(tok: HFTokenizer) -> None:
    vision = ("{% for m in messages %}<|im_start|>{{ m.role }}\n{% if m.content is string %}{{ m.content }}"
              "{% else %}{% for p in m.content %}{% if p.type == 'text' %}{{ p.text }}{% else %}"
              "<|vision_start|><|image_pad|><|vision_end|>{% endif %}{% endfor %}{% endif %}<|im_end|>\n"
              "{% endfor %}<|im_start|>assistant\n")
    with pytest.raises(UsageError, match="backend does not take images") as caught:
        encode_chat([user({"type": "image", "image": DATA})], tok, template=vision)
    assert caught.value.param == "messages[0].content[0]"
    assert encode_chat([{"role": "user", "content": "text is fine"}], tok, template=vision).ids
