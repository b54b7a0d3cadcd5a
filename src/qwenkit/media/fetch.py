"""Fetching an image URL without becoming a proxy into the server's own network.

Off unless the operator names the hosts that may be fetched. For each hop: only http(s), no
credentials in the URL, the host on the allow-list, its name resolved once and every answer
refused if it is private, loopback, link-local (cloud metadata), multicast or otherwise not
globally routable; the connection then goes to that resolved address (the name is sent as the
Host header and as TLS's server name, so certificates are still checked against it), so a DNS
answer that changes between the check and the use cannot redirect it. Redirects are followed by
hand, each hop checked the same way. The answer must say it is an image, and is read with a size
cap and one deadline for the whole fetch (a server trickling bytes cannot hold a worker).
"""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

import httpx

from qwenkit.errors import ImageFetchRefusedError

REDIRECTS = frozenset({301, 302, 303, 307, 308})
DEFAULT_PORTS = {"http": 80, "https": 443}
Resolver = Callable[[str, int], list[str]]


def system_resolver(host: str, port: int) -> list[str]:
    """Every address the system's resolver gives for ``host``."""
    try:
        answers = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise ImageFetchRefusedError(f"the image host {host!r} does not resolve: {exc}") from None
    return [str(answer[4][0]) for answer in answers]


@dataclass(frozen=True)
class FetchPolicy:
    """Which image URLs a server fetches. No hosts: fetching is off (the default)."""

    allowed_hosts: tuple[str, ...] = ()  # "cdn.example.com", "*.example.com", or "*" for any public host
    max_bytes: int = 20 * 1024 * 1024
    timeout_s: float = 10.0  # the whole fetch, every hop and every byte
    max_redirects: int = 3
    allow_private_addresses: bool = False  # an operator's intranet image store; never on by default

    @property
    def enabled(self) -> bool:
        return bool(self.allowed_hosts)

    def allows_host(self, host: str) -> bool:
        for pattern in self.allowed_hosts:
            pattern = pattern.lower().rstrip(".")
            if pattern == "*" or host == pattern:
                return True
            if pattern.startswith("*.") and host.endswith(pattern[1:]):
                return True
        return False


@dataclass(frozen=True)
class _Hop:
    url: str
    scheme: str
    host: str
    port: int
    target: str  # the URL with the host replaced by the address connected to


NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def _is_public(address: str) -> bool:
    """Globally routable, also for the IPv4 address an IPv6 one carries (mapped, 6to4, NAT64)."""
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour
        if embedded is None and ip in NAT64:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None:
            ip = embedded
    return ip.is_global and not ip.is_multicast


def _ascii_host(host: str) -> str:
    try:
        return host.encode("idna").decode("ascii").lower()
    except UnicodeError:
        raise ImageFetchRefusedError(f"the image host {host!r} is not a valid host name") from None


@dataclass
class ImageFetcher:
    """Fetches image bytes under a FetchPolicy. ``transport`` and ``resolver`` are for tests."""

    policy: FetchPolicy = field(default_factory=FetchPolicy)
    resolver: Resolver = system_resolver
    transport: httpx.BaseTransport | None = None

    def fetch(self, url: str) -> tuple[bytes, str]:
        """The body and content type of an image URL, or ImageFetchRefusedError saying why not."""
        if not self.policy.enabled:
            raise ImageFetchRefusedError(
                "this server does not fetch image URLs; send the image as a data: URL (base64)",
                hint="an operator enables fetching with --image-fetch-hosts",
            )
        deadline = time.monotonic() + self.policy.timeout_s
        # Each socket operation may take half the budget: with the deadline checked between them, a
        # fetch ends within 1.5x the timeout however the server paces its bytes.
        with httpx.Client(transport=self.transport, trust_env=False, follow_redirects=False,
                          timeout=httpx.Timeout(self.policy.timeout_s / 2)) as client:
            for _ in range(self.policy.max_redirects + 1):
                hop = self._check(url)
                _check_deadline(url, deadline, self.policy.timeout_s)
                request = client.build_request(
                    "GET", hop.target, headers={"Host": _host_header(hop), "Accept": "image/*"},
                    extensions={"sni_hostname": hop.host} if hop.scheme == "https" else {},
                )
                try:
                    response = client.send(request, stream=True)
                except httpx.HTTPError as exc:
                    raise ImageFetchRefusedError(f"fetching {url} failed: {exc}") from None
                try:
                    if response.status_code in REDIRECTS and "location" in response.headers:
                        url = urljoin(url, response.headers["location"])
                        continue
                    return self._read(url, response, deadline)
                finally:
                    response.close()
        raise ImageFetchRefusedError(f"{url}: more than {self.policy.max_redirects} redirects")

    def _check(self, url: str) -> _Hop:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in DEFAULT_PORTS:
            raise ImageFetchRefusedError(f"only http and https image URLs are fetched, not {scheme or url!r}")
        if parts.username is not None or parts.password is not None:
            raise ImageFetchRefusedError("image URLs with credentials in them are not fetched")
        host = (parts.hostname or "").rstrip(".")
        if not host:
            raise ImageFetchRefusedError(f"the image URL {url!r} names no host")
        if ":" not in host:
            host = _ascii_host(host)
        if not self.policy.allows_host(host):
            raise ImageFetchRefusedError(f"the image host {host!r} is not on this server's allow-list")
        try:
            port = parts.port or DEFAULT_PORTS[scheme]
        except ValueError:
            raise ImageFetchRefusedError(f"the image URL {url!r} has an invalid port") from None
        address = self._resolve(host, port)
        shown = f"[{address}]" if ":" in address else address
        target = parts._replace(scheme=scheme, netloc=f"{shown}:{port}").geturl()
        return _Hop(url=url, scheme=scheme, host=host, port=port, target=target)

    def _resolve(self, host: str, port: int) -> str:
        """One resolution per hop; every answer must be public, the first is connected to."""
        try:
            answers = [str(ipaddress.ip_address(host))]
        except ValueError:
            answers = self.resolver(host, port)
        if not answers:
            raise ImageFetchRefusedError(f"the image host {host!r} does not resolve")
        if not self.policy.allow_private_addresses:
            for address in answers:
                if not _is_public(address):
                    raise ImageFetchRefusedError(
                        f"the image host {host!r} resolves to {address}, a private, loopback, link-local "
                        "or reserved address; such addresses are never fetched"
                    )
        return answers[0]

    def _read(self, url: str, response: httpx.Response, deadline: float) -> tuple[bytes, str]:
        if response.status_code != 200:
            raise ImageFetchRefusedError(f"fetching {url} answered HTTP {response.status_code}")
        content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
        if not content_type.startswith("image/"):
            raise ImageFetchRefusedError(f"{url} is {content_type or 'of no stated type'}, not an image")
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.policy.max_bytes:
            raise ImageFetchRefusedError(
                f"{url} is {int(declared):,} bytes; the limit is {self.policy.max_bytes:,}")
        body = bytearray()
        for chunk in _chunks(response, url):
            body.extend(chunk)
            if len(body) > self.policy.max_bytes:
                raise ImageFetchRefusedError(f"{url} is over the {self.policy.max_bytes:,}-byte limit")
            _check_deadline(url, deadline, self.policy.timeout_s)
        return bytes(body), content_type


def _check_deadline(url: str, deadline: float, timeout_s: float) -> None:
    if time.monotonic() > deadline:
        raise ImageFetchRefusedError(f"fetching {url} took over {timeout_s:g} s")


def _host_header(hop: _Hop) -> str:
    name = f"[{hop.host}]" if ":" in hop.host else hop.host
    return name if hop.port == DEFAULT_PORTS[hop.scheme] else f"{name}:{hop.port}"


def _chunks(response: httpx.Response, url: str) -> Iterator[bytes]:
    try:
        yield from response.iter_bytes()
    except httpx.HTTPError as exc:
        raise ImageFetchRefusedError(f"fetching {url} failed while reading: {exc}") from None
