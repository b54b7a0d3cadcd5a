"""API keys: several named keys, constant-time checks, and an ASGI guard in front of every route.

Sources and formats (``load_api_keys``):

- each flag value and each entry of the environment value (split on commas and whitespace) is
  either ``name:secret`` or a bare ``secret``; bare secrets are named ``key-1``, ``key-2``, ... in
  the order they are read (flags, then environment, then file), skipping names already taken.
  The name is everything before the FIRST ``:``, so a secret may itself contain colons only when
  it is given with a name. Names are 1-64 of ``[A-Za-z0-9_.-]`` (they end up in logs and metric
  labels); secrets are printable ASCII without whitespace (they travel in an HTTP header).
- the key file is plain text: one key per line in the same two formats; blank lines and lines
  whose first non-blank character is ``#`` are skipped (no trailing comments: ``#`` may be part of
  a secret).

A duplicate name or a secret configured twice is a ``UsageError``; no error message ever contains
a secret. No keys at all means authentication is off (``KeyRing.enabled`` is False).

Checking (``KeyRing.authenticate``): ``Authorization: Bearer <key>`` (what the OpenAI SDK sends)
or ``x-api-key: <key>``. The presented key is hashed once and compared with ``hmac.compare_digest``
against the SHA-256 of EVERY configured secret, without early exit, so neither timing nor length
reveals which key (if any) came close. Missing, malformed or unknown -> ``AuthenticationError``
(401, OpenAI error shape).

Wiring: wrap the app in ``ApiKeyMiddleware(app, keyring)``; it lets ``public_paths``
(``{"/health"}``) through, answers 401 with ``WWW-Authenticate: Bearer`` for everything else
without a valid key (including unknown paths, ``/docs`` and ``/openapi.json``, so no route can be
forgotten), and stores the matched key in the ASGI scope state: ``request.state.api_key`` (the
``ApiKey``) and ``request.state.key_name`` (what the access log prints). With keys off, both are
absent and ``key_name_of(request)`` returns ``ANONYMOUS``.

Logs: ``ApiKey``/``KeyRing`` reprs hide secrets; ``redact(text, secrets)`` masks bearer tokens,
``x-api-key`` values and any given secret; ``RedactingFilter(keyring)`` does that to every log
record passing through a handler (``create_app`` installs it on the server's log handlers).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
from collections.abc import Awaitable, Callable, Iterable, Iterator, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qwenkit.errors import AuthenticationError, UsageError

PUBLIC_PATHS: frozenset[str] = frozenset({"/health"})
public_paths = PUBLIC_PATHS  # the name the server settings/issue use
ANONYMOUS = "anonymous"
MASK = "***"

_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_SECRET_RE = re.compile(r"^[\x21-\x7e]+$")
_BEARER_RE = re.compile(r"^\s*bearer\s+(\S+)\s*$", re.IGNORECASE)
_REDACT_RES = (
    re.compile(r"(?i)(bearer\s+)\S+"),
    re.compile(r"(?i)(x-api-key[\"']?\s*[:=]\s*[\"']?)[^\s\"',;]+"),
)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


@dataclass(frozen=True)
class ApiKey:
    """One accepted key; ``name`` is what logs and metrics show, ``secret`` never is."""

    name: str
    secret: str = field(repr=False)

    def __repr__(self) -> str:
        return f"ApiKey(name={self.name!r}, secret={MASK!r})"


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("utf-8", errors="surrogateescape")).digest()


class KeyRing:
    """The configured keys; immutable once built."""

    def __init__(self, keys: Iterable[ApiKey] = ()) -> None:
        self._keys = tuple(keys)
        names = [k.name for k in self._keys]
        if len(set(names)) != len(names):
            raise UsageError("API key names must be unique", param="api_keys")
        if len({k.secret for k in self._keys}) != len(self._keys):
            raise UsageError("the same API key secret is configured twice", param="api_keys")
        self._digests = tuple((_digest(k.secret), k) for k in self._keys)

    @property
    def enabled(self) -> bool:
        """True when at least one key is configured (every non-public route then needs one)."""
        return bool(self._keys)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(k.name for k in self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def __iter__(self) -> Iterator[ApiKey]:
        return iter(self._keys)

    def __repr__(self) -> str:
        return f"KeyRing(names={list(self.names)!r})"

    def match(self, presented: str) -> ApiKey | None:
        """The key whose secret equals ``presented``, checked in constant time over all keys."""
        candidate = _digest(presented)
        found: ApiKey | None = None
        for digest, key in self._digests:
            if hmac.compare_digest(candidate, digest) and found is None:
                found = key
        return found

    def authenticate(self, authorization_header: str | None, x_api_key: str | None = None) -> ApiKey:
        """The key presented by a request's headers; AuthenticationError when missing or wrong."""
        presented: list[str] = []
        if authorization_header is not None and authorization_header.strip():
            bearer = _BEARER_RE.match(authorization_header)
            if bearer is None and not x_api_key:
                raise AuthenticationError(
                    "malformed Authorization header: expected 'Authorization: Bearer <key>'"
                )
            if bearer is not None:
                presented.append(bearer.group(1))
        if x_api_key is not None and x_api_key.strip():
            presented.append(x_api_key.strip())
        if not presented:
            raise AuthenticationError(
                "missing API key: send 'Authorization: Bearer <key>' or 'x-api-key: <key>'"
            )
        matches = [self.match(p) for p in presented]  # all of them: no early exit
        for key in matches:
            if key is not None:
                return key
        raise AuthenticationError("invalid API key")

    def redact(self, text: str) -> str:
        """``text`` with bearer tokens, x-api-key values and every configured secret masked."""
        return redact(text, (k.secret for k in self._keys))


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Mask ``Bearer <token>``, ``x-api-key: <value>`` and each of ``secrets`` in ``text``."""
    for secret in sorted(set(secrets), key=len, reverse=True):
        if secret:
            text = text.replace(secret, MASK)
    for pattern in _REDACT_RES:
        text = pattern.sub(lambda m: m.group(1) + MASK, text)
    return text


class RedactingFilter(logging.Filter):
    """A logging filter that redacts the message and every string ``extra`` field of a record."""

    def __init__(self, keyring: KeyRing | None = None) -> None:
        super().__init__()
        self._secrets = tuple(k.secret for k in keyring) if keyring is not None else ()

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage(), self._secrets)
        record.args = None
        for attr, value in list(vars(record).items()):
            if isinstance(value, str) and attr not in ("msg", "name", "levelname", "pathname", "filename"):
                setattr(record, attr, redact(value, self._secrets))
        return True


# -- loading -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Entry:
    name: str | None
    secret: str
    where: str


def _parse_entry(text: str, where: str) -> _Entry:
    """``name:secret`` or a bare ``secret``; errors name ``where``, never the secret."""
    name: str | None = None
    secret = text
    if ":" in text:
        name, secret = text.split(":", 1)
        if not _NAME_RE.match(name):
            raise UsageError(
                f"API key {where}: the name before ':' must be 1-64 letters, digits, '_', '.' or '-'",
                param="api_keys",
            )
    if not secret:
        raise UsageError(f"API key {where}: the secret is empty", param="api_keys")
    if not _SECRET_RE.match(secret):
        raise UsageError(
            f"API key {where}: the secret must be printable ASCII without spaces", param="api_keys"
        )
    return _Entry(name, secret, where)


def _file_entries(path: Path) -> list[_Entry]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        why = exc.strerror or exc
        raise UsageError(f"cannot read API key file {path}: {why}", param="api_keys_file") from exc
    except UnicodeDecodeError as exc:
        raise UsageError(f"API key file {path} is not UTF-8 text", param="api_keys_file") from exc
    entries = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if line and not line.startswith("#"):
            entries.append(_parse_entry(line, f"{path}:{number}"))
    return entries


def _env_items(env_value: str | None) -> list[str]:
    """``a,b c`` or a JSON list, as ``ServerSettings`` accepts ``QWENKIT_API_KEYS``."""
    if env_value is None or not env_value.strip():
        return []
    text = env_value.strip()
    if text.startswith("["):
        try:
            items = json.loads(text)
        except json.JSONDecodeError as exc:
            raise UsageError("the API key list in the environment is not a valid JSON list") from exc
        if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
            raise UsageError("the API key list in the environment must be a JSON list of strings")
        return [i.strip() for i in items if i.strip()]
    return [part for part in re.split(r"[,\s]+", text) if part]


def _name_entries(entries: list[_Entry]) -> list[ApiKey]:
    taken = {e.name for e in entries if e.name is not None}
    counter = 0
    keys = []
    for entry in entries:
        name = entry.name
        if name is None:
            counter += 1
            while f"key-{counter}" in taken:
                counter += 1
            name = f"key-{counter}"
            taken.add(name)
        keys.append(ApiKey(name, entry.secret))
    return keys


def load_api_keys(
    flag_values: Iterable[str] = (), env_value: str | None = None, file: Path | None = None
) -> KeyRing:
    """All keys from flags, the environment value and the key file, in that order (formats above)."""
    entries = [_parse_entry(v.strip(), f"#{i} (flag)") for i, v in enumerate(flag_values, 1) if v.strip()]
    entries += [_parse_entry(v, f"#{i} (environment)") for i, v in enumerate(_env_items(env_value), 1)]
    if file is not None:
        entries += _file_entries(Path(file))
    seen: dict[str, str] = {}
    for entry in entries:
        if entry.name is not None and entry.name in seen:
            raise UsageError(
                f"API key name {entry.name!r} is used twice ({seen[entry.name]} and {entry.where})",
                param="api_keys",
            )
        if entry.name is not None:
            seen[entry.name] = entry.where
    return KeyRing(_name_entries(entries))


# -- request side ------------------------------------------------------------------------------


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if bytes(key).lower() == name:
            return bytes(value).decode("latin-1")
    return None


def authenticate_scope(keyring: KeyRing, scope: Scope) -> ApiKey:
    """Check an ASGI scope's headers and record the key in its state (see module docstring)."""
    key = keyring.authenticate(_header(scope, b"authorization"), _header(scope, b"x-api-key"))
    state = scope.setdefault("state", {})
    state["api_key"] = key
    state["key_name"] = key.name
    return key


class ApiKeyMiddleware:
    """ASGI guard: every HTTP/WebSocket path except ``public_paths`` needs a key (when keys exist)."""

    def __init__(self, app: ASGIApp, keyring: KeyRing, public_paths: Iterable[str] = PUBLIC_PATHS) -> None:
        self.app = app
        self.keyring = keyring
        self.public_paths = frozenset(public_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or not self.keyring.enabled:
            await self.app(scope, receive, send)
            return
        if scope.get("path") in self.public_paths:
            await self.app(scope, receive, send)
            return
        try:
            authenticate_scope(self.keyring, scope)
        except AuthenticationError as exc:
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
                return
            await _send_401(send, exc)
            return
        await self.app(scope, receive, send)


async def _send_401(send: Send, exc: AuthenticationError) -> None:
    raw = json.dumps(exc.to_openai()).encode("utf-8")
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(raw)).encode()),
        (b"www-authenticate", b'Bearer realm="qwenkit"'),
    ]
    await send({"type": "http.response.start", "status": exc.http_status, "headers": headers})
    await send({"type": "http.response.body", "body": raw})


def key_name_of(request_or_scope: Any) -> str:
    """The authenticated key's name for limits and metrics; ``ANONYMOUS`` when keys are off."""
    scope = getattr(request_or_scope, "scope", request_or_scope)
    name = scope.get("state", {}).get("key_name")
    return name if isinstance(name, str) else ANONYMOUS
