"""`qwenkit serve` runs on uvloop and httptools, named so that a missing one fails instead of slowing down."""

from __future__ import annotations

import asyncio
import sys

from qwenkit.server.app import EVENT_LOOP, HTTP_PROTOCOL, create_app, uvicorn_config
from qwenkit.server.settings import ServerSettings


def test_serve_runs_uvicorn_on_uvloop_and_httptools() -> None:
    settings = ServerSettings(port=8123, drain_timeout=2.5)
    config = uvicorn_config(create_app(settings), settings)
    assert (config.port, config.timeout_graceful_shutdown) == (8123, 3)
    assert (config.loop, config.http) == (EVENT_LOOP, HTTP_PROTOCOL)
    config.load()  # imports the protocol: fails here if httptools is missing
    assert config.http_protocol_class.__name__ == "HttpToolsProtocol"
    factory = config.get_loop_factory()
    assert factory is not None
    loop = factory()
    try:
        assert isinstance(loop, asyncio.AbstractEventLoop)
        if sys.platform != "win32":
            assert type(loop).__module__.startswith("uvloop")
    finally:
        loop.close()
