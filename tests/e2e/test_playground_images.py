"""Images in the playground, in a real headless Chromium against ``qwenkit serve`` with the tiny random
Qwen2.5-VL: attach a file, see its thumbnail and the image-token count the server gives, get a streamed
answer, and find the picture again after a reload."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image
from test_playground import Server, open_tab, start_server, stop_server

from qwenkit.media import fit_image

pytestmark = pytest.mark.slow

QUESTION = "What is in this chart?"


@pytest.fixture(scope="module")
def vl_server(tiny_qwen2_5_vl_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(tiny_qwen2_5_vl_dir, tmp_path_factory.mktemp("serve-vl"), "--backend", "transformers")
    yield srv
    stop_server(srv)


def chart(path: Path, width: int, height: int) -> Path:
    pixels = np.random.default_rng(5).integers(0, 256, (height, width, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def test_an_attached_image_is_shown_counted_and_answered(
    browser: Any, vl_server: Server, tmp_path: Path
) -> None:
    picture = chart(tmp_path / "chart.png", 300, 200)
    tokens = fit_image(200, 300).tokens
    with open_tab(browser, vl_server.origin) as tab:
        tab.open()
        tab.page.set_input_files("#image-input", str(picture))
        caption = tab.page.wait_for_selector("#attachments .image-tokens:text-matches('\\\\d+ image tokens')")
        assert caption.inner_text() == f"{tokens} image tokens"
        tab.send(QUESTION, max_tokens=8, wait=False)
        # Not .streaming: eight tokens may all arrive between two animation frames, so the page can
        # draw the answer only once, finished.
        tab.page.wait_for_function(
            "() => { const b = document.querySelector('article.msg-assistant .msg-body');"
            " return b !== null && b.textContent.length > 0; }",
            timeout=60_000,
        )
        tab.wait_idle()
        assert tab.page.is_hidden("#attachments")  # the tray was emptied into the message
        (body,) = tab.chat_bodies()
        image_part, text_part = body["messages"][-1]["content"]
        assert image_part["image_url"]["url"].startswith("data:image/png;base64,")
        assert text_part == {"type": "text", "text": QUESTION}
        assert tab.page.inner_text("article.msg-user .image-tokens") == f"{tokens} image tokens"
        # The prompt figure is the server's count of the same messages, image tokens included.
        counted = httpx.post(f"{vl_server.origin}/tokenize", json={"messages": body["messages"]}, timeout=60)
        prompt = int(tab.page.inner_text("#fig-tokens").split(" prompt")[0])
        assert prompt == counted.json()["count"] and counted.json()["image_tokens"] == [tokens]
        tab.page.reload()
        tab.page.wait_for_selector("article.msg-user .msg-images img")
        assert tab.page.inner_text("#chat-title").startswith("What is in this chart")
        assert not tab.errors, tab.errors
        tab.assert_same_origin()


def test_a_file_that_is_no_image_is_refused_in_the_page(
    browser: Any, vl_server: Server, tmp_path: Path
) -> None:
    fake = tmp_path / "notes.png"
    fake.write_text("these are notes, not pixels")
    with open_tab(browser, vl_server.origin) as tab:
        tab.open()
        tab.page.set_input_files("#image-input", str(fake))
        tab.page.wait_for_selector("#status.error")
        assert "not a readable image" in tab.page.inner_text("#status")
        assert tab.page.is_hidden("#attachments")
        assert not [r for r in tab.requests if r.url.endswith("/tokenize")]  # nothing was sent
