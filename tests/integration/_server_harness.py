"""Run a qwenkit app under real uvicorn on a free loopback port, in a background thread."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn

from _ports import free_port
from qwenkit.engine.llm import LLM
from qwenkit.server.app import create_app, uvicorn_config
from qwenkit.server.settings import ServerSettings


class LiveServer:
    def __init__(self, app: Any, settings: ServerSettings) -> None:
        self.app = app
        self.port = settings.port
        self.base_url = f"http://127.0.0.1:{settings.port}"
        self.server = uvicorn.Server(uvicorn_config(app, settings))  # as `qwenkit serve` runs it
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the test server did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


@contextmanager
def live_server(llm: LLM, **settings: Any) -> Iterator[LiveServer]:
    """``create_app`` over an already loaded model, served until the block ends."""
    port = free_port()
    server_settings = ServerSettings(host="127.0.0.1", port=port, **settings)
    server = LiveServer(create_app(server_settings, llm), server_settings)
    server.start()
    try:
        yield server
    finally:
        server.stop()
