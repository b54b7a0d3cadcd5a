"""SIGTERM on `qwenkit serve`: new requests are turned away, the in-flight stream still completes, and
the process exits 0 within the drain timeout without leaving a child process behind."""

from __future__ import annotations

import json
import signal
import threading
import time

import httpx
import psutil
import pytest
from _backends import SERVED, served_model
from _serve_process import ServeProcess, serve_process

DRAIN_SECONDS = 60
CHAT = "/v1/chat/completions"
# What a client sees once the server stops listening (refused) or closes a kept-alive connection.
GONE = (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)


class InFlightStream(threading.Thread):
    """One long streaming chat completion, read to its end in the background."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.started = threading.Event()
        self.events: list[str] = []
        self.status = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 120, "stream": True,
                "temperature": 1.0, "seed": 3}
        try:
            with httpx.stream("POST", f"{self.url}{CHAT}", json=body, timeout=DRAIN_SECONDS) as response:
                self.status = response.status_code
                for line in response.iter_lines():
                    if line.startswith("data: "):
                        self.events.append(line[6:])
                        self.started.set()
        except BaseException as exc:  # reported by the test, not lost in the thread
            self.error = exc
        finally:
            self.started.set()


def _descendants(server: ServeProcess) -> list[psutil.Process]:
    return list(psutil.Process(server.proc.pid).children(recursive=True))


def _new_request_is_turned_away(url: str) -> str:
    """A request sent after SIGTERM: 503 + Retry-After while draining, or no connection at all."""
    try:
        reply = httpx.post(f"{url}{CHAT}", json={"messages": [{"role": "user", "content": "x"}]}, timeout=30)
    except GONE:
        return "refused"
    assert reply.status_code == 503, reply.text
    assert int(reply.headers["retry-after"]) >= 1 and reply.json()["error"]["code"] == "shutting_down"
    return "503"


@pytest.mark.slow
@pytest.mark.parametrize("backend", SERVED)
def test_sigterm_turns_new_requests_away_drains_and_exits_zero(
    request: pytest.FixtureRequest, backend: str
) -> None:
    env = {"QWENKIT_DRAIN_TIMEOUT": str(DRAIN_SECONDS)}
    with serve_process(served_model(request, backend), env=env, backend=backend) as server:
        children = _descendants(server)
        # A kept-alive connection opened before the signal: the first place a 503 can show.
        kept = httpx.Client(base_url=server.url, timeout=30)
        assert kept.get("/v1/models").status_code == 200
        stream = InFlightStream(server.url)
        stream.start()
        assert stream.started.wait(120) and stream.error is None and stream.status == 200
        children += _descendants(server)

        signalled = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        turned_away = [_new_request_is_turned_away(server.url)]
        try:
            late = kept.post(CHAT, json={"messages": [{"role": "user", "content": "x"}]})
            assert late.status_code == 503 and int(late.headers["retry-after"]) >= 1, late.text
            turned_away.append("503")
        except GONE:
            turned_away.append("refused")
        finally:
            kept.close()

        stream.join(DRAIN_SECONDS)
        code = server.proc.wait(timeout=DRAIN_SECONDS)
        exited_after = time.monotonic() - signalled
        log = server.stderr_text()

    assert not stream.is_alive() and stream.error is None, stream.error
    assert stream.events[-1] == "[DONE]", stream.events[-3:]
    last = json.loads(stream.events[-2])
    assert "error" not in last and last["choices"][0]["finish_reason"] in ("length", "stop"), last
    assert len(stream.events) > 3  # role chunk, content, finish, [DONE]: it really streamed
    assert set(turned_away) <= {"503", "refused"}
    assert code == 0, log
    assert exited_after < DRAIN_SECONDS
    assert [p.pid for p in children if p.is_running()] == []
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{server.url}/health", timeout=5)
