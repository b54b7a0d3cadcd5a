"""Image fetching under the policy: what must never be fetched, and the limits on what may be.

Address rules run against a recording transport (nothing leaves the machine); sizes, types and slow
answers against a real local server, which the policy must be told to allow (it is loopback).
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from PIL import Image

from qwenkit.errors import ImageFetchRefusedError
from qwenkit.media import FetchPolicy, ImageFetcher

PUBLIC = "93.184.216.34"
PNG = io.BytesIO()
Image.new("RGB", (8, 8), (9, 9, 9)).save(PNG, format="PNG")
PNG_BYTES = PNG.getvalue()


class Recorder:
    """A transport answering from a table by path, recording each request it saw."""

    def __init__(self, answers: dict[str, httpx.Response]) -> None:
        self.answers = answers
        self.seen: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        return self.answers.get(request.url.path, httpx.Response(404))


def fetcher(answers: dict[str, httpx.Response], dns: dict[str, list[str]] | None = None,
            **policy: object) -> tuple[ImageFetcher, Recorder, list[str]]:
    recorder, asked = Recorder(answers), []
    table = dns if dns is not None else {"images.example.com": [PUBLIC]}

    def resolve(host: str, port: int) -> list[str]:
        asked.append(host)
        if host not in table:
            raise ImageFetchRefusedError(f"no such host {host}")
        return table[host]

    settings = {"allowed_hosts": ("*",), **policy}
    return (ImageFetcher(FetchPolicy(**settings), resolve, httpx.MockTransport(recorder)),  # type: ignore[arg-type]
            recorder, asked)


def image(body: bytes = PNG_BYTES) -> httpx.Response:
    return httpx.Response(200, headers={"content-type": "image/png"}, content=body)


def test_fetching_is_off_by_default() -> None:
    with pytest.raises(ImageFetchRefusedError, match="does not fetch image URLs"):
        ImageFetcher().fetch("https://images.example.com/a.png")


def test_a_public_host_is_fetched_at_the_address_resolved_once() -> None:
    fetch, recorder, asked = fetcher({"/a.png": image()})
    body, kind = fetch.fetch("https://images.example.com/a.png?x=1")
    assert (body, kind) == (PNG_BYTES, "image/png")
    assert asked == ["images.example.com"]
    sent = recorder.seen[0]
    assert sent.url.host == PUBLIC and sent.url.query == b"x=1"
    assert sent.headers["host"] == "images.example.com"
    assert sent.extensions["sni_hostname"] == "images.example.com"


@pytest.mark.parametrize("address", [
    "127.0.0.1", "10.0.0.5", "172.16.3.4", "192.168.1.1", "169.254.169.254", "100.64.0.1", "0.0.0.0",
    "::1", "fe80::1", "fd00::7", "::ffff:127.0.0.1", "::ffff:169.254.169.254", "2002:a00:1::",
    "64:ff9b::a00:1", "224.0.0.1",
])
def test_non_public_answers_are_refused(address: str) -> None:
    fetch, recorder, _ = fetcher({"/a.png": image()}, {"images.example.com": [address]})
    with pytest.raises(ImageFetchRefusedError, match="never fetched"):
        fetch.fetch("http://images.example.com/a.png")
    assert recorder.seen == []


def test_one_private_answer_among_public_ones_is_refused() -> None:
    fetch, recorder, _ = fetcher({"/a.png": image()}, {"images.example.com": [PUBLIC, "10.1.1.1"]})
    with pytest.raises(ImageFetchRefusedError, match=r"10\.1\.1\.1"):
        fetch.fetch("http://images.example.com/a.png")
    assert recorder.seen == []


@pytest.mark.parametrize("url", [
    "http://127.0.0.1/a.png", "http://[::1]/a.png", "http://169.254.169.254/latest/meta-data/",
    "http://[::ffff:7f00:1]/a.png",
])
def test_literal_private_addresses_are_refused(url: str) -> None:
    fetch, recorder, asked = fetcher({})
    with pytest.raises(ImageFetchRefusedError, match="never fetched"):
        fetch.fetch(url)
    assert recorder.seen == [] and asked == []


def test_dns_answers_that_change_after_the_check_are_never_used() -> None:
    """A rebinding name answers public, then loopback: the connection uses the first answer."""
    fetch, recorder, asked = fetcher({"/a.png": image()})
    answers = iter([[PUBLIC], ["127.0.0.1"], ["127.0.0.1"]])

    def rebinding(host: str, port: int) -> list[str]:
        asked.append(host)
        return next(answers)

    fetch.resolver = rebinding
    fetch.fetch("http://images.example.com/a.png")
    assert asked == ["images.example.com"]
    assert [r.url.host for r in recorder.seen] == [PUBLIC]


@pytest.mark.parametrize("location", [
    "http://127.0.0.1:8080/admin", "http://internal.example.com/a.png", "file:///etc/passwd",
    "http://[::1]/", "gopher://images.example.com/",
])
def test_redirects_to_forbidden_places_are_refused(location: str) -> None:
    fetch, recorder, _ = fetcher({"/a.png": httpx.Response(302, headers={"location": location})},
                                 {"images.example.com": [PUBLIC], "internal.example.com": ["10.0.0.8"]})
    with pytest.raises(ImageFetchRefusedError):
        fetch.fetch("http://images.example.com/a.png")
    assert len(recorder.seen) == 1


def test_a_permitted_redirect_is_followed_and_checked_again() -> None:
    moved = httpx.Response(301, headers={"location": "https://cdn.example.com/b.png"})
    fetch, recorder, asked = fetcher(
        {"/a.png": moved, "/b.png": image()},
        {"images.example.com": [PUBLIC], "cdn.example.com": ["151.101.1.1"]})
    assert fetch.fetch("http://images.example.com/a.png")[0] == PNG_BYTES
    assert asked == ["images.example.com", "cdn.example.com"]
    assert [r.url.host for r in recorder.seen] == [PUBLIC, "151.101.1.1"]


def test_redirect_loops_end() -> None:
    fetch, recorder, _ = fetcher({"/a.png": httpx.Response(302, headers={"location": "/a.png"})})
    with pytest.raises(ImageFetchRefusedError, match="more than 3 redirects"):
        fetch.fetch("http://images.example.com/a.png")
    assert len(recorder.seen) == 4


@pytest.mark.parametrize(("hosts", "url", "allowed"), [
    (("images.example.com",), "http://images.example.com/a.png", True),
    (("images.example.com",), "http://IMAGES.example.com./a.png", True),
    (("images.example.com",), "http://evil.example.com/a.png", False),
    (("*.example.com",), "http://a.b.example.com/a.png", True),
    (("*.example.com",), "http://example.com.evil.net/a.png", False),
    (("*.example.com",), "http://notexample.com/a.png", False),
])
def test_the_allow_list(hosts: tuple[str, ...], url: str, allowed: bool) -> None:
    dns = {"images.example.com": [PUBLIC], "evil.example.com": [PUBLIC], "a.b.example.com": [PUBLIC],
           "example.com.evil.net": [PUBLIC], "notexample.com": [PUBLIC]}
    fetch, _, _ = fetcher({"/a.png": image()}, dns, allowed_hosts=hosts)
    if allowed:
        assert fetch.fetch(url)[0] == PNG_BYTES
    else:
        with pytest.raises(ImageFetchRefusedError, match="allow-list"):
            fetch.fetch(url)


@pytest.mark.parametrize(("url", "message"), [
    ("ftp://images.example.com/a.png", "only http and https"),
    ("file:///etc/passwd", "only http and https"),
    ("http://user:secret@images.example.com/a.png", "credentials"),
    ("http:///a.png", "names no host"),
    ("http://images.example.com:99999/a.png", "invalid port"),
])
def test_malformed_or_forbidden_urls(url: str, message: str) -> None:
    fetch, recorder, _ = fetcher({"/a.png": image()})
    with pytest.raises(ImageFetchRefusedError, match=message):
        fetch.fetch(url)
    assert recorder.seen == []


@pytest.mark.parametrize(("response", "message"), [
    (httpx.Response(200, headers={"content-type": "text/html"}, content=b"<html></html>"),
     "text/html, not an image"),
    (httpx.Response(200, content=PNG_BYTES), "no stated type"),
    (httpx.Response(404), "HTTP 404"),
    (httpx.Response(200, headers={"content-type": "image/png", "content-length": "999999999"}, content=b""),
     "999,999,999 bytes"),
])
def test_answers_that_are_not_images(response: httpx.Response, message: str) -> None:
    fetch, _, _ = fetcher({"/a.png": response})
    with pytest.raises(ImageFetchRefusedError, match=message):
        fetch.fetch("http://images.example.com/a.png")


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        if self.path == "/slow.png":
            self.send_response(200)
            self.send_header("content-type", "image/png")
            self.end_headers()
            try:
                for _ in range(40):  # one byte every 0.1 s: each read is quick, the whole is not
                    self.wfile.write(b"x")
                    self.wfile.flush()
                    time.sleep(0.1)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the fetcher gave up, as it should
            return
        body = PNG_BYTES if self.path == "/a.png" else b"\0" * 300_000
        self.send_response(200)
        self.send_header("content-type", "image/png")
        if self.path != "/chunked-big.png":
            self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def local_server() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()


def local(port: int, **policy: object) -> ImageFetcher:
    settings = {"allowed_hosts": ("images.test",), "allow_private_addresses": True, **policy}
    return ImageFetcher(FetchPolicy(**settings), lambda host, p: ["127.0.0.1"])  # type: ignore[arg-type]


def test_a_real_fetch_over_a_socket(local_server: int) -> None:
    assert local(local_server).fetch(f"http://images.test:{local_server}/a.png") == (PNG_BYTES, "image/png")


def test_loopback_is_refused_unless_the_operator_allows_private_addresses(local_server: int) -> None:
    with pytest.raises(ImageFetchRefusedError, match="never fetched"):
        local(local_server, allow_private_addresses=False).fetch(f"http://images.test:{local_server}/a.png")


@pytest.mark.parametrize("path", ["/big.png", "/chunked-big.png"])
def test_oversized_answers_are_cut_off(local_server: int, path: str) -> None:
    with pytest.raises(ImageFetchRefusedError, match="100,000"):
        local(local_server, max_bytes=100_000).fetch(f"http://images.test:{local_server}{path}")


def test_a_trickling_answer_meets_the_deadline(local_server: int) -> None:
    started = time.monotonic()
    with pytest.raises(ImageFetchRefusedError, match="took over 1 s"):
        local(local_server, timeout_s=1.0).fetch(f"http://images.test:{local_server}/slow.png")
    assert time.monotonic() - started < 3.9  # the server would take 4 s
