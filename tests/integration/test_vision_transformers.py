"""A tiny random Qwen2.5-VL on the transformers backend: image prompts through ``qwenkit.load`` as a
user sends them (data: URLs, files, PIL pictures), the same tokens as transformers' own generate on
the same inputs, image tokens counted in usage, and refusals that name the part."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image

import qwenkit
from qwenkit.chat import encode_chat
from qwenkit.engine.image_prompt import ImagePrompt, ImageRules
from qwenkit.engine.llm import LLM
from qwenkit.engine.params import ChatParams
from qwenkit.engine.types import Capability, SamplingParams
from qwenkit.errors import ImageError, ImageFetchRefusedError, UsageError
from qwenkit.media import fit_image

QUESTION = "What is in this picture?"
GREEDY = SamplingParams(temperature=0.0, max_tokens=16, ignore_eos=True)


def png(width: int, height: int, seed: int = 40) -> bytes:
    out = io.BytesIO()
    Image.effect_noise((width, height), seed).convert("RGB").save(out, format="PNG")
    return out.getvalue()


def data_url(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode()


def ask(*images: Any, text: str = QUESTION) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = [{"type": "image", "image": image} for image in images]
    return [{"role": "user", "content": [*parts, {"type": "text", "text": text}]}]


@pytest.fixture(scope="module")
def vl(tiny_qwen2_5_vl_dir: Path) -> Iterator[LLM]:
    llm = qwenkit.load(str(tiny_qwen2_5_vl_dir), backend="transformers")
    yield llm
    llm.close()


def prompt_of(llm: LLM, messages: list[dict[str, Any]]) -> ImagePrompt:
    prompt = llm.encode(messages, ChatParams())
    assert isinstance(prompt, ImagePrompt)
    return prompt


def engine_tokens(llm: LLM, messages: list[dict[str, Any]], params: SamplingParams = GREEDY) -> list[int]:
    prompt = prompt_of(llm, messages)
    return [event.token_id for event in llm.backend.submit(prompt.ids, params, prompt.prepared)]


def reference_tokens(llm: LLM, messages: list[dict[str, Any]], n: int) -> list[int]:
    """transformers' own generate on the prompt and pixels qwenkit made (no qwenkit engine)."""
    runner: Any = llm.backend.runner  # type: ignore[attr-defined]
    prompt = prompt_of(llm, messages)
    pixels = runner._vision.processor(images=[p.image for p in prompt.prepared], return_tensors="pt")
    ids = torch.tensor([prompt.ids])
    with torch.no_grad():
        out = runner.model.generate(
            input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=n, min_new_tokens=n,
            do_sample=False, pixel_values=pixels["pixel_values"], image_grid_thw=pixels["image_grid_thw"],
        )
    return list(out[0, ids.shape[1]:].tolist())


def test_the_backend_declares_images(vl: LLM) -> None:
    assert Capability.IMAGES in vl.backend.capabilities
    assert vl.backend.vision_grid.factor == 28  # type: ignore[attr-defined]


@pytest.mark.parametrize("size", [(300, 200), (56, 56), (28, 1400)])
def test_an_image_prompt_gives_transformers_own_tokens(vl: LLM, size: tuple[int, int]) -> None:
    data = png(*size)
    messages = ask(data_url(data))
    result = vl.chat(messages, max_tokens=16, temperature=0, ignore_eos=True)
    fit = fit_image(size[1], size[0])
    text_only = encode_chat(ask(text=QUESTION)[0:1], vl.tokenizer, template="qwen2.5-vl")
    # The prompt is the text prompt plus <|vision_start|>, the image's pads and <|vision_end|>.
    assert result.usage.prompt_tokens == len(text_only.ids) + fit.tokens + 2
    assert engine_tokens(vl, messages) == reference_tokens(vl, messages, 16)


def test_files_and_pictures_in_the_python_api(vl: LLM, tmp_path: Path) -> None:
    data = png(120, 90, seed=7)
    file = tmp_path / "chart.png"
    file.write_bytes(data)
    picture = Image.open(io.BytesIO(data))
    answers = [engine_tokens(vl, ask(source)) for source in (str(file), picture, data_url(data))]
    assert answers[0] == answers[1] == answers[2]


def test_two_images_and_a_text_stream_together(vl: LLM) -> None:
    first, second = data_url(png(100, 60, 3)), data_url(png(60, 100, 5))
    hello = [{"role": "user", "content": "hello"}]
    streams = [vl.start_chat(ask(first, second), max_tokens=8, temperature=0, ignore_eos=True),
               vl.start_chat(hello, max_tokens=8, temperature=0, ignore_eos=True)]
    results = [s.result() for s in streams]
    assert [r.usage.completion_tokens for r in results] == [8, 8]
    expected = encode_chat(ask("a", "b"), vl.tokenizer, template="qwen2.5-vl",
                           image_tokens=[fit_image(60, 100).tokens, fit_image(100, 60).tokens])
    assert results[0].usage.prompt_tokens == len(expected.ids)


def test_a_fit_just_past_the_aspect_limit_is_read(vl: LLM) -> None:
    """29 x 5615 (193.6:1) fits to 28 x 5628 (201:1) under this bound: it must not be resized again."""
    wide = {"type": "image", "image": data_url(png(5615, 29)), "max_pixels": 157584}
    result = vl.chat([{"role": "user", "content": [wide, {"type": "text", "text": QUESTION}]}], max_tokens=2)
    assert result.usage.completion_tokens >= 1


def test_pixel_bounds_per_image(vl: LLM) -> None:
    data = data_url(png(640, 480))
    bounded = {"type": "image", "image": data, "max_pixels": 28 * 28 * 16}
    small = [{"role": "user", "content": [bounded, {"type": "text", "text": QUESTION}]}]
    result = vl.chat(small, max_tokens=2, temperature=0)
    default = vl.chat(ask(data), max_tokens=2, temperature=0)
    assert default.usage.prompt_tokens - result.usage.prompt_tokens == fit_image(480, 640).tokens - 12
    too_big = [{"role": "user", "content": [{"type": "image", "image": data, "max_pixels": 10**9}]}]
    with pytest.raises(UsageError, match="above this server's limit") as caught:
        vl.chat(too_big, max_tokens=2)
    assert caught.value.param == "max_pixels"


@pytest.mark.parametrize(("source", "error", "message"), [
    (data_url(b"not an image at all"), ImageError, "not an image"),
    ("https://example.com/a.png", ImageFetchRefusedError, "does not fetch"),
    ("/nonexistent/chart.png", ImageError, "no image file"),
])
def test_bad_images_name_their_part(vl: LLM, source: str, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message) as caught:
        vl.chat(ask(source), max_tokens=2)
    assert "messages[0].content[0]" in str(caught.value)


def test_chat_attaches_images_with_slash_image(vl: LLM, tmp_path: Path) -> None:
    """`qwenkit chat`'s /image FILE: said with its token count, sent with the next message only; a
    wrong path is an error line and the conversation goes on."""
    from rich.console import Console

    from qwenkit.cli.chat_session import ChatSession, run_repl

    file = tmp_path / "chart.png"
    file.write_bytes(png(120, 90))
    out = io.StringIO()
    session = ChatSession(vl, max_tokens=2, console=Console(file=out, width=300),
                          err_console=Console(file=io.StringIO()))
    lines = iter([f"/image {file}", "/image /nonexistent/x.png", "what is this?", "and now?", "/exit"])
    run_repl(session, input_fn=lambda _prompt: next(lines))
    assert f"({fit_image(90, 120).tokens} image tokens)" in out.getvalue()
    assert "error: no image file at /nonexistent/x.png" in out.getvalue()
    asked = [m["content"] for m in session.messages if m["role"] == "user"]
    assert asked == [[{"type": "image", "image": str(file)}, {"type": "text", "text": "what is this?"}],
                     "and now?"]


def test_a_server_reads_no_local_files(vl: LLM, tmp_path: Path) -> None:
    file = tmp_path / "secret.png"
    file.write_bytes(png(20, 20))
    rules = vl.image_rules
    vl.image_rules = ImageRules(allow_files=False)
    try:
        with pytest.raises(ImageFetchRefusedError, match="local file paths are not read"):
            vl.chat(ask(str(file)), max_tokens=2)
    finally:
        vl.image_rules = rules


def test_the_server_answers_images_and_reads_no_files(tiny_qwen2_5_vl_dir: Path, tmp_path: Path) -> None:
    """Over HTTP: an image_url part is answered with its tokens in usage; a path is a 400 naming it."""
    import httpx
    from _server_harness import live_server

    llm = qwenkit.load(str(tiny_qwen2_5_vl_dir), backend="transformers")
    file = tmp_path / "secret.png"
    file.write_bytes(png(20, 20))
    part = {"type": "image_url", "image_url": {"url": data_url(png(300, 200))}}
    try:
        with live_server(llm) as server:
            body = {"model": "qwen2.5-vl-3b-instruct", "max_tokens": 4, "temperature": 0,
                    "messages": [{"role": "user", "content": [part, {"type": "text", "text": QUESTION}]}]}
            reply = httpx.post(f"{server.base_url}/v1/chat/completions", json=body, timeout=120)
            assert reply.status_code == 200, reply.text
            expected = prompt_of(llm, body["messages"])
            assert reply.json()["usage"]["prompt_tokens"] == len(expected.ids)
            counted = httpx.post(f"{server.base_url}/tokenize", json={"messages": body["messages"]})
            assert counted.status_code == 200, counted.text
            assert counted.json()["tokens"] == list(expected.ids)
            assert counted.json()["image_tokens"] == [fit_image(200, 300).tokens]
            body["messages"] = ask(str(file))
            refused = httpx.post(f"{server.base_url}/v1/chat/completions", json=body, timeout=120)
            assert refused.status_code == 400
            error = refused.json()["error"]
            assert error["param"] == "messages[0].content[0]" and "local file paths" in error["message"]
    finally:
        llm.close()
