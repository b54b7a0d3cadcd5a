"""The web playground: ``/`` and ``/static/*`` served from the package's own files.

The page is static (no build step, no CDN): it talks to the same server through ``/v1/models`` and
``/v1/chat/completions``. Every response carries a strict Content-Security-Policy, so even if model
output slipped past the page's renderer, no inline script, remote script or remote request could run.
"""

from __future__ import annotations

import re
from functools import lru_cache
from importlib.resources import files
from typing import Any

from fastapi import FastAPI
from fastapi.responses import Response

STATIC_PACKAGE = "qwenkit.server"
STATIC_DIR = "static"
INDEX = "index.html"

# Content types by suffix; a file with another suffix is not served.
CONTENT_TYPES: dict[str, str] = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",  # attached images are shown from their data: URLs
        "font-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    )
)

SECURITY_HEADERS: dict[str, str] = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    # The files change with the package: revalidate rather than serve a stale page after an upgrade.
    "Cache-Control": "no-cache",
}

_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")


def _suffix(name: str) -> str:
    dot = name.rfind(".")
    return name[dot:] if dot > 0 else ""


@lru_cache(maxsize=1)
def static_files() -> dict[str, bytes]:
    """Every servable file of the playground, by name, read once from the installed package."""
    folder = files(STATIC_PACKAGE).joinpath(STATIC_DIR)
    found: dict[str, bytes] = {}
    for entry in folder.iterdir():
        name = entry.name
        if entry.is_file() and _NAME_RE.match(name) and _suffix(name) in CONTENT_TYPES:
            found[name] = entry.read_bytes()
    if INDEX not in found:
        raise FileNotFoundError(f"the playground's {INDEX} is missing from the installed package")
    return found


def playground_paths() -> frozenset[str]:
    """The URL paths the playground serves: they must stay public when API keys are on, since the
    page itself asks for the key (the API calls it then makes are checked as usual)."""
    return frozenset({"/", *(f"/static/{name}" for name in static_files())})


def _file_response(name: str) -> Response:
    body = static_files().get(name)
    if body is None:
        return Response(
            status_code=404,
            content=b'{"error": {"message": "no such file", "type": "not_found_error"}}',
            media_type="application/json",
            headers=SECURITY_HEADERS,
        )
    return Response(content=body, media_type=CONTENT_TYPES[_suffix(name)], headers=SECURITY_HEADERS)


def mount_playground(app: FastAPI) -> frozenset[str]:
    """Add ``GET /`` and ``GET /static/{name}`` to ``app``; returns ``playground_paths()`` so the
    caller can add them to the API-key middleware's public paths."""

    async def index() -> Any:
        return _file_response(INDEX)

    async def static(name: str) -> Any:
        return _file_response(name)

    app.add_api_route("/", index, methods=["GET", "HEAD"], include_in_schema=False)
    app.add_api_route("/static/{name}", static, methods=["GET", "HEAD"], include_in_schema=False)
    return playground_paths()
