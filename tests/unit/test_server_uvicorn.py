"""`qwenkit serve` names its event loop and HTTP protocol, so that what vLLM's environment happens to
install (uvloop, httptools) does not change the server under it."""

from __future__ import annotations

from qwenkit.server.app import EVENT_LOOP, HTTP_PROTOCOL, create_app, uvicorn_config
from qwenkit.server.settings import ServerSettings


def test_serve_runs_uvicorn_on_asyncio_and_h11_whatever_is_installed() -> None:
    settings = ServerSettings(port=8123, drain_timeout=2.5)
    config = uvicorn_config(create_app(settings), settings)
    assert (config.port, config.timeout_graceful_shutdown) == (8123, 3)
    assert (config.loop, config.http) == (EVENT_LOOP, HTTP_PROTOCOL) == ("asyncio", "h11")
    config.load()
    assert config.http_protocol_class.__name__ == "H11Protocol"
    factory = config.get_loop_factory()
    assert factory is not None
    loop = factory()
    try:
        assert type(loop).__module__.startswith("asyncio")
    finally:
        loop.close()
