"""The FastAPI app factory. All state lives on ``app.state``; the lifespan loads (and later closes) the model.

``create_app(settings, llm=None)``: with ``llm`` given (tests, embedding) that model is served and left
open on shutdown; without, the lifespan loads ``settings.model`` and closes it on the way out.
"""

from __future__ import annotations

import contextlib
import logging
import math
import signal
import socket
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from types import FrameType
from typing import Any

import anyio
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from qwenkit.engine.llm import LLM
from qwenkit.engine.types import Capability
from qwenkit.errors import UsageError
from qwenkit.server import serving_chat, serving_completions, serving_tokens
from qwenkit.server.admission import build_gate, metrics_response
from qwenkit.server.auth import PUBLIC_PATHS, ApiKeyMiddleware, RedactingFilter, load_api_keys
from qwenkit.server.errors import install_error_handlers
from qwenkit.server.logs import configure_logging, redact_secrets
from qwenkit.server.middleware import BodyGuardMiddleware, RequestContextMiddleware
from qwenkit.server.openapi import ModelLimits, state_model_limits
from qwenkit.server.playground import mount_playground
from qwenkit.server.protocol_common import ErrorResponse, HealthResponse, ModelCard, ModelList
from qwenkit.server.protocol_completions import MAX_SEQUENCES
from qwenkit.server.serving_common import check_model, server_state
from qwenkit.server.settings import ServerSettings
from qwenkit.server.state import ServerState, model_identity

log = logging.getLogger("qwenkit.server")


def load_model(settings: ServerSettings) -> LLM:
    from qwenkit.engine.llm import load

    # Admission (``admission.py``) is the one place requests wait: it lets through at most ``parallel``
    # sequences at once, plus the overflow of a single request with more choices than slots. So the
    # engine's own queue only ever holds that overflow, and is sized to never refuse it.
    return load(
        settings.model,
        backend=settings.backend,
        context=settings.context,
        parallel=settings.parallel,
        threads=settings.threads,
        max_queue=MAX_SEQUENCES,
        progress=False,
        lora=settings.lora_pairs,
        vllm=settings.vllm_settings,
        mmproj=settings.mmproj,
    )


def _lifespan(settings: ServerSettings, given: LLM | None) -> Any:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        llm = given if given is not None else await anyio.to_thread.run_sync(load_model, settings)
        llm.image_rules = settings.image_rules  # requests never name this machine's files
        gate = build_gate(settings, app.state)
        identity = model_identity(llm, settings.model, settings.served_model_name)
        app.state.server = ServerState(settings=settings, llm=llm, identity=identity, gate=gate)
        log.info("model ready", extra={"model": identity.id, "backend": llm.backend.kind.value})
        try:
            yield
        finally:
            app.state.draining = True
            app.state.server = None
            if given is None:
                llm.close()
            log.info("server stopped")

    return lifespan


def _add_probes(app: FastAPI) -> None:
    @app.get("/health", response_model=HealthResponse)
    async def health() -> HealthResponse:
        return HealthResponse(status="ok")

    @app.get("/ready", response_model=HealthResponse, responses={503: {"model": HealthResponse}})
    async def ready(request: Request) -> Any:
        loaded = getattr(request.app.state, "server", None) is not None
        if loaded and not request.app.state.draining:
            return HealthResponse(status="ready")
        status = "draining" if request.app.state.draining else "loading"
        return JSONResponse(status_code=503, content={"status": status}, headers={"Retry-After": "5"})

    @app.get("/metrics", include_in_schema=False)
    async def metrics(request: Request) -> Response:
        response: Response = metrics_response(request.app.state, request.headers.get("accept"))
        return response

    @app.get("/v1/models", response_model=ModelList, responses={401: {"model": ErrorResponse}})
    async def models(request: Request) -> ModelList:
        state = server_state(request)
        return ModelList(data=[state.model_card(), *state.adapter_cards()])

    @app.get(
        "/v1/models/{model_id:path}", response_model=ModelCard, responses={404: {"model": ErrorResponse}}
    )
    async def model(model_id: str, request: Request) -> ModelCard:
        state = server_state(request)
        served = check_model(state, model_id)
        return next((c for c in state.adapter_cards() if c.id == served), None) or state.model_card()


def create_app(settings: ServerSettings | None = None, llm: LLM | None = None) -> FastAPI:
    """A ready-to-run ASGI app serving one model with OpenAI's API."""
    settings = settings if settings is not None else ServerSettings()
    app = FastAPI(
        title="qwenkit",
        summary="OpenAI-compatible API for Qwen models",
        version="0.1.0",
        lifespan=_lifespan(settings, llm),
    )
    app.state.settings = settings
    app.state.draining = False
    app.state.server = None
    install_error_handlers(app)
    if llm is not None:
        names = model_identity(llm, settings.model, settings.served_model_name).names
        names = names | {name for name, _ in settings.lora_pairs}
        grammar = Capability.GRAMMAR in llm.backend.capabilities
        limits = ModelLimits(llm.context_length, llm.tokenizer.vocab_size, names, grammar)
        state_model_limits(app, limits)
    else:
        state_model_limits(app, ModelLimits(settings.context))
    _add_probes(app)
    for module in (serving_chat, serving_completions, serving_tokens):
        app.include_router(module.router)
    playground = mount_playground(app)
    keyring = load_api_keys(settings.api_keys, None, settings.api_keys_file)
    app.state.keyring = keyring
    redact_secrets(RedactingFilter(keyring))
    # Added last = outermost: context (id, drain, access log) -> API key -> body guard -> routes.
    app.add_middleware(BodyGuardMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(ApiKeyMiddleware, keyring=keyring, public_paths=PUBLIC_PATHS | {"/ready"} | playground)
    app.add_middleware(RequestContextMiddleware, state=app.state)
    return app


class DrainingServer(uvicorn.Server):
    """uvicorn's graceful shutdown, plus: the app answers 503 from the first signal on, and a handled
    SIGTERM/SIGINT ends the process normally (exit 0) instead of being re-raised after the drain.
    ``on_listening(port)`` is called once the socket is bound, so an announcement never precedes a
    bind error."""

    def __init__(
        self, config: uvicorn.Config, app_state: Any, on_listening: Callable[[int], None] | None = None
    ) -> None:
        super().__init__(config)
        self._app_state = app_state
        self._on_listening = on_listening

    async def startup(self, sockets: Any = None) -> None:
        await super().startup(sockets)
        if self._on_listening is not None and self.started and self.servers:
            self._on_listening(int(self.servers[0].sockets[0].getsockname()[1]))

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self._app_state.draining = True
        super().handle_exit(sig, frame)

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        originals = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in originals.items():
                signal.signal(sig, handler)


# asyncio's own event loop and h11, named rather than left to uvicorn's "auto", which takes uvloop and
# httptools wherever they happen to be installed (vLLM installs both). They were measured here: a
# quarter less event-loop CPU per streamed token (0.15 against 0.2 ms), no difference in tok/s; and
# under them a client that hangs up mid-stream found the vLLM request already ended in 1 of 10 and 3
# of 8 tries, against 0 of 8 on asyncio (benchmarks/README.md, "The event loop's share").
EVENT_LOOP = "asyncio"
HTTP_PROTOCOL = "h11"


def uvicorn_config(app: FastAPI, settings: ServerSettings) -> uvicorn.Config:
    """How ``qwenkit serve`` runs the app under uvicorn (the tests' live servers use it too)."""
    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        loop=EVENT_LOOP,
        http=HTTP_PROTOCOL,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=math.ceil(settings.drain_timeout),
        lifespan="on",
    )


def check_address(host: str, port: int) -> None:
    """Bind and release the address before the model loads (minutes, for a large one): a port in use
    or an address this machine does not have is a usage error now, not a log line after the load."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, kind, proto, _, address = infos[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
            probe.bind(address)
    except (OSError, UnicodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise UsageError(f"cannot listen on {host}:{port}: {reason}", param="port") from None


def run_server(settings: ServerSettings, on_listening: Callable[[LLM, int], None] | None = None) -> None:
    """Load the model (a clean CLI error if that fails), then serve until SIGTERM/SIGINT and drain;
    ``on_listening(llm, port)`` once the socket is bound (the CLI prints its banner there)."""
    configure_logging(settings.log_level)
    check_address(settings.host, settings.port)
    llm = load_model(settings)
    try:
        app = create_app(settings, llm)
        config = uvicorn_config(app, settings)
        announce = None if on_listening is None else (lambda port: on_listening(llm, port))
        DrainingServer(config, app.state, announce).run()
    finally:
        llm.close()
