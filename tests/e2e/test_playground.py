"""The web playground in a real headless Chromium, against a real ``qwenkit serve`` subprocess.

The browser is Debian's chromium (``scripts/ensure-browser.sh`` installs it), driven by Playwright's
sync API through ``executable_path``: no browser download. Tests that need model output the random
tiny model cannot give (markup, reasoning, tool calls) fulfil the chat request with a canned SSE body.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from _ports import free_port

pytestmark = pytest.mark.slow  # a model server subprocess and a browser per module

START_TIMEOUT_S = 240.0
CHAT_PATH = "/v1/chat/completions"
KEY = "playground-test-key"


@dataclass
class Server:
    """One ``qwenkit serve`` process on a loopback port."""

    origin: str
    process: subprocess.Popen[bytes]
    log: Path

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def metric(self, name: str) -> float:
        text = httpx.get(f"{self.origin}/metrics", headers={"Authorization": f"Bearer {KEY}"}).text
        match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
        if match is None:
            raise AssertionError(f"/metrics has no {name}")
        return float(match.group(1))


def start_server(model: Path, log_dir: Path, *extra: str) -> Server:
    port = free_port()
    log = log_dir / f"serve-{port}.log"
    # Exactly what the `qwenkit` console script runs.
    cmd = [
        sys.executable, "-c", "from qwenkit.cli import main; raise SystemExit(main())",
        "serve", str(model), "--host", "127.0.0.1", "--port", str(port), *extra,
    ]
    with log.open("wb") as out:
        process = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    server = Server(f"http://127.0.0.1:{port}", process, log)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"qwenkit serve exited with {process.returncode}:\n{server.log_tail()}")
        try:
            if httpx.get(f"{server.origin}/ready", timeout=2).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    stop_server(server)
    pytest.fail(f"qwenkit serve was not ready within {START_TIMEOUT_S:.0f} s:\n{server.log_tail()}")


def stop_server(server: Server) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()


@pytest.fixture(scope="module")
def server(tiny_qwen3_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(tiny_qwen3_dir, tmp_path_factory.mktemp("serve"), "--backend", "transformers")
    yield srv
    stop_server(srv)


@dataclass
class Tab:
    """A fresh browser context (empty storage) with every request the page made, and its errors."""

    page: Any
    origin: str
    requests: list[Any] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def open(self) -> None:
        self.page.goto(f"{self.origin}/")
        self.page.wait_for_selector("#model-facts dd")

    def chat_bodies(self) -> list[dict[str, Any]]:
        return [
            json.loads(r.post_data) for r in self.requests if r.method == "POST" and r.url.endswith(CHAT_PATH)
        ]

    def send(self, text: str, *, max_tokens: int = 24, wait: bool = True) -> None:
        self.page.fill("#max_tokens", str(max_tokens))
        self.page.fill("#prompt", text)
        self.page.click("#send")
        if wait:
            self.wait_idle()

    def wait_idle(self) -> None:
        self.page.wait_for_selector("#stop", state="hidden", timeout=60_000)
        self.page.wait_for_selector("#messages > article.msg-assistant:last-child button[data-action=copy]")

    def assert_same_origin(self) -> None:
        foreign = [r.url for r in self.requests if not r.url.startswith(f"{self.origin}/")]
        assert not foreign, f"the page requested other origins: {foreign}"


@contextmanager
def open_tab(browser: Any, origin: str) -> Iterator[Tab]:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    tab = Tab(page, origin)
    page.on("request", lambda r: tab.requests.append(r))
    page.on("pageerror", lambda exc: tab.errors.append(f"page error: {exc}"))
    page.on("console", lambda m: tab.errors.append(m.text) if m.type == "error" else None)
    try:
        yield tab
    finally:
        context.close()


@pytest.fixture
def tab(browser: Any, server: Server) -> Iterator[Tab]:
    with open_tab(browser, server.origin) as opened:
        yield opened


def sse_body(chunks: list[dict[str, Any]]) -> str:
    head = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m"}
    frames = [{**head, **c} for c in chunks]
    return "".join(f"data: {json.dumps(f)}\n\n" for f in frames) + "data: [DONE]\n\n"


def delta(**fields: Any) -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": fields}]}


# ---- serving the page ---------------------------------------------------------------------------


def test_page_is_served_with_a_strict_csp_and_no_inline_code(server: Server) -> None:
    page = httpx.get(f"{server.origin}/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    for directive in ("default-src 'self'", "script-src 'self'", "connect-src 'self'", "object-src 'none'"):
        assert directive in csp
    assert "unsafe" not in csp
    html = page.text
    assert re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html) is None, "inline <script>"
    assert re.search(r"\son[a-z]+\s*=", html) is None, "inline event handler"
    assert re.search(r"\sstyle\s*=", html) is None, "inline style attribute"
    assert re.search(r"(src|href)=\"(https?:)?//", html) is None, "a resource from another host"
    served = (("app.js", "text/javascript"), ("style.css", "text/css"), ("markdown.js", "text/javascript"))
    for name, kind in served:
        resp = httpx.get(f"{server.origin}/static/{name}")
        assert resp.status_code == 200 and resp.headers["content-type"].startswith(kind)
        assert "default-src 'self'" in resp.headers["content-security-policy"]
    for bad in ("/static/nope.js", "/static/..%2Fplayground.py", "/static/__init__.py"):
        assert httpx.get(f"{server.origin}{bad}").status_code == 404


# ---- chatting against the real server -----------------------------------------------------------


def test_a_message_gets_a_streamed_answer_and_live_figures(tab: Tab) -> None:
    tab.open()
    facts = tab.page.inner_text("#model-facts")
    assert "qwen3-0.6b" in facts and "4,096 tokens" in facts and "transformers" in facts
    # Qwen3 thinks by default: the thinking preset is filled in.
    assert tab.page.input_value("#temperature") == "0.6" and tab.page.input_value("#top_p") == "0.95"
    tab.send("Hello there", max_tokens=200, wait=False)
    # Text appears while the answer is still streaming, not only at the end (200 tokens: more than a few
    # animation frames long on a loaded machine, where the page draws the streamed text).
    tab.page.wait_for_function(
        "() => { const b = document.querySelector('article.msg-assistant.streaming .msg-body');"
        " return b !== null && b.textContent.length > 0; }",
        timeout=60_000,
    )
    tab.wait_idle()
    answer = tab.page.inner_text("article.msg-assistant .msg-body")
    assert answer.strip()
    (body,) = tab.chat_bodies()
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert body["messages"] == [{"role": "user", "content": "Hello there"}]
    assert (body["temperature"], body["top_p"], body["top_k"], body["max_tokens"]) == (0.6, 0.95, 20, 200)
    assert body["enable_thinking"] is True and "thinking_budget" not in body
    tokens = re.fullmatch(r"(\d+) prompt \+ (\d+) answer = (\d+)", tab.page.inner_text("#fig-tokens"))
    assert tokens is not None
    prompt, completion, total = map(int, tokens.groups())
    assert 0 < completion <= 200 and prompt > 0 and total == prompt + completion
    assert re.fullmatch(r"\d+(\.\d+)? tok/s", tab.page.inner_text("#fig-speed"))
    assert re.fullmatch(r"\d+ ms|\d+\.\d\d s", tab.page.inner_text("#fig-ttft"))
    assert f"{total} of 4096" in tab.page.inner_text("#fig-context")
    assert not tab.errors, tab.errors
    tab.assert_same_origin()


def test_stop_aborts_the_request_and_the_server_stops_generating(tab: Tab, server: Server) -> None:
    tab.open()
    failed: list[str] = []
    tab.page.on("requestfailed", lambda r: failed.append(r.url) if r.url.endswith(CHAT_PATH) else None)
    tab.send("Write a very long story", max_tokens=3000, wait=False)
    tab.page.wait_for_function(
        "() => (document.querySelector('article.msg-assistant .msg-body')?.textContent || '').length > 0",
        timeout=60_000,
    )
    tab.page.click("#stop")
    tab.page.wait_for_selector("#send", state="visible")
    assert tab.page.inner_text("#status") == "Stopped."
    assert "stopped" in tab.page.inner_text("article.msg-assistant .msg-meta")
    assert failed == [f"{tab.origin}{CHAT_PATH}"]
    # The server notices the closed connection and ends the generation long before 3000 tokens.
    deadline = time.monotonic() + 30
    while server.metric("qwenkit:num_requests_running") > 0 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert server.metric("qwenkit:num_requests_running") == 0
    generated = server.metric("qwenkit:generation_tokens_total")
    time.sleep(1.0)
    assert server.metric("qwenkit:generation_tokens_total") == generated
    shown = tab.page.inner_text("article.msg-assistant .msg-body")
    assert shown.strip()  # the partial answer stays


def test_thinking_switch_and_budget_reach_the_request(tab: Tab) -> None:
    tab.open()
    tab.page.uncheck("#thinking")
    assert tab.page.inner_text("#thinking-label") == "off"
    # Without thinking, Qwen3's non-thinking preset applies.
    assert tab.page.input_value("#temperature") == "0.7" and tab.page.input_value("#top_p") == "0.8"
    assert tab.page.is_disabled("#thinking-budget")
    tab.send("No thinking please", max_tokens=8)
    tab.page.check("#thinking")
    tab.page.fill("#thinking-budget", "16")
    tab.send("Think a little", max_tokens=8)
    first, second = tab.chat_bodies()
    assert first["enable_thinking"] is False and "thinking_budget" not in first
    assert (first["temperature"], first["top_p"], first["top_k"]) == (0.7, 0.8, 20)
    assert second["enable_thinking"] is True and second["thinking_budget"] == 16
    assert (second["temperature"], second["top_p"]) == (0.6, 0.95)
    # The second request carries the whole conversation.
    roles = [m["role"] for m in second["messages"]]
    assert roles == ["user", "assistant", "user"]


def test_conversations_survive_a_reload_and_can_be_renamed_and_deleted(tab: Tab) -> None:
    tab.open()
    tab.page.fill("#system-prompt", "You are terse.")
    tab.send("remember this conversation", max_tokens=8)
    tab.page.click("#rename-chat")
    tab.page.fill("#rename-input", "Kept chat")
    tab.page.press("#rename-input", "Enter")
    tab.page.click("#new-chat")
    tab.send("a second one", max_tokens=8)
    assert tab.chat_bodies()[0]["messages"][0] == {"role": "system", "content": "You are terse."}

    tab.page.reload()
    tab.page.wait_for_selector("#model-facts dd")
    titles = tab.page.locator("#conversation-list .conv-item").all_inner_texts()
    assert titles == ["a second one", "Kept chat"]
    tab.page.click("#conversation-list .conv-item >> text=Kept chat")
    assert tab.page.inner_text("#chat-title") == "Kept chat"
    assert tab.page.input_value("#system-prompt") == "You are terse."
    assert tab.page.inner_text("article.msg-user .msg-body") == "remember this conversation"
    assert tab.page.inner_text("article.msg-assistant .msg-body").strip()

    tab.page.click("#delete-chat")  # arms
    tab.page.click("#delete-chat")  # deletes
    tab.page.reload()
    tab.page.wait_for_selector("#model-facts dd")
    assert tab.page.locator("#conversation-list .conv-item").all_inner_texts() == ["a second one"]


def test_regenerate_replaces_the_last_answer(tab: Tab) -> None:
    tab.open()
    tab.send("hi", max_tokens=8)
    tab.page.click("article.msg-assistant button[data-action=regenerate]")
    tab.wait_idle()
    assert tab.page.locator("article.msg-assistant").count() == 1
    first, second = tab.chat_bodies()
    assert first["messages"] == second["messages"] == [{"role": "user", "content": "hi"}]
    tab.assert_same_origin()


# ---- untrusted output ---------------------------------------------------------------------------

HOSTILE = (
    "Hello <script>window.__pwned = 1</script> and <img src=x onerror=\"window.__pwned = 2\">\n\n"
    "[click](javascript:window.__pwned=3) [docs](https://example.com/docs) "
    "<iframe src=\"https://example.com\"></iframe> ![pic](https://example.com/p.png)\n\n"
    "```python\ndef f(x):\n    return \"<b>\" + x  # comment\n```\n"
)


def test_model_output_is_rendered_as_text_never_as_html(tab: Tab) -> None:
    stream = sse_body([
        delta(role="assistant", content=""),
        delta(reasoning_content="Let me think <b>hard</b>."),
        *[delta(content=piece) for piece in re.findall(r".{1,9}", HOSTILE, re.DOTALL)],
        delta(tool_calls=[{"index": 0, "id": "call_1", "type": "function",
                           "function": {"name": "get_weather", "arguments": ""}}]),
        delta(tool_calls=[{"index": 0, "function": {"arguments": "{\"city\": \"<img src=x>\"}"}}]),
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
        {"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 30, "total_tokens": 35}},
    ])
    tab.page.route(
        f"**{CHAT_PATH}",
        lambda route: route.fulfill(status=200, content_type="text/event-stream", body=stream),
    )
    tab.open()
    tab.send("be hostile")
    msg = tab.page.locator("article.msg-assistant")
    for tag in ("script", "img", "iframe", "b"):
        assert msg.locator(tag).count() == 0, f"model output created a <{tag}>"
    assert tab.page.evaluate("window.__pwned") is None
    text = msg.locator(".msg-body").inner_text()
    assert "<script>window.__pwned = 1</script>" in text
    assert "<img src=x onerror=\"window.__pwned = 2\">" in text
    links = msg.locator(".msg-body a")
    hrefs = [links.nth(i).get_attribute("href") for i in range(links.count())]
    # The iframe's URL, as text, is autolinked; the image is a link, never loaded.
    assert hrefs == ["https://example.com/docs", "https://example.com", "https://example.com/p.png"]
    for i in range(links.count()):
        assert set(links.nth(i).get_attribute("rel").split()) >= {"noopener", "noreferrer"}
    assert "click" in text  # the javascript: link keeps its label, as text
    code = msg.locator(".code-block code")
    assert code.inner_text() == "def f(x):\n    return \"<b>\" + x  # comment"
    assert code.locator(".tok-kw").all_inner_texts() == ["def", "return"]
    assert code.locator(".tok-com").inner_text() == "# comment"
    reasoning = msg.locator("details.reasoning")
    assert "Let me think <b>hard</b>." in reasoning.locator(".reasoning-body").text_content()
    call = msg.locator(".tool-call")
    assert call.locator(".tool-call-name").inner_text() == "get_weather"
    assert json.loads(call.locator(".tool-call-args").inner_text()) == {"city": "<img src=x>"}
    # The pending tool call is offered as what the next message answers.
    assert tab.page.input_value("#send-role") == "tool"
    assert not tab.errors, tab.errors
    tab.assert_same_origin()


# ---- API keys -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def keyed_server(tiny_qwen3_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(
        tiny_qwen3_dir, tmp_path_factory.mktemp("serve-keyed"), "--backend", "transformers", "--api-key", KEY
    )
    yield srv
    stop_server(srv)


def test_the_page_asks_for_a_key_and_keeps_it_in_session_storage(browser: Any, keyed_server: Server) -> None:
    assert httpx.get(f"{keyed_server.origin}/v1/models").status_code == 401
    with open_tab(browser, keyed_server.origin) as tab:
        tab.page.goto(f"{keyed_server.origin}/")
        dialog = tab.page.locator("#key-dialog")
        dialog.wait_for(state="visible")
        tab.page.fill("#key-input", "wrong-key")
        tab.page.click("#key-save")
        dialog.wait_for(state="visible")  # asked again: the wrong key got a 401 too
        tab.page.fill("#key-input", KEY)
        tab.page.click("#key-save")
        tab.page.wait_for_selector("#model-facts dd")
        assert tab.page.evaluate("sessionStorage.getItem('qwenkit.apiKey')") == KEY
        stored = tab.page.evaluate("JSON.stringify(Object.assign({}, localStorage))")
        assert KEY not in stored
        tab.send("hello", max_tokens=4)
        chat = [r for r in tab.requests if r.url.endswith(CHAT_PATH)]
        assert chat and chat[-1].all_headers()["authorization"] == f"Bearer {KEY}"
        tab.assert_same_origin()


# ---- the real 0.5B model ------------------------------------------------------------------------


@pytest.mark.realmodel
@pytest.mark.slow
def test_screenshot_mid_stream_with_the_real_model(
    browser: Any, real_model_path: Path, tmp_path: Path
) -> None:
    srv = start_server(real_model_path, tmp_path)
    try:
        with open_tab(browser, srv.origin) as tab:
            tab.open()
            assert "qwen2.5" in tab.page.inner_text("#model-facts")
            tab.page.fill("#temperature", "0")  # greedy: a long answer every time, not a lucky one
            tab.send(
                "Explain how binary search works, with a Python example.",
                max_tokens=600,
                wait=False,
            )
            tab.page.wait_for_function(
                "() => { const b = document.querySelector('article.msg-assistant.streaming .msg-body');"
                " return b !== null && b.textContent.length > 250"
                " && b.querySelector('.code-block .tok-kw') !== null; }",
                timeout=420_000,  # a busy 2-core machine can decode at a few tokens a second
            )
            shot = tmp_path / "playground-streaming.png"
            tab.page.screenshot(path=str(shot))
            assert tab.page.locator("article.msg-assistant.streaming").count() == 1  # still streaming
            assert tab.page.locator("article.msg-assistant .code-block").count() >= 1  # highlighted code
            assert re.search(r"tok/s", tab.page.inner_text("#fig-speed"))
            assert tab.page.inner_text("#fig-ttft") != "–"
            assert shot.stat().st_size > 20_000
            print(f"screenshot: {shot}")
            tab.page.click("#stop")
            tab.page.wait_for_selector("#send", state="visible")
            tab.assert_same_origin()
    finally:
        stop_server(srv)
