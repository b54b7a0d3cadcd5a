"""A loopback port for a test's server, picked where the kernel does not hand out client ports.

A port the kernel chose with ``bind(0)`` comes from the ephemeral range, the same range it draws from
for every outgoing connection (HTTP clients, vLLM's and Ray's sockets): between the check and the
server's own bind, such a connection may take it. Ports below that range are only ever bound on
purpose, so a random one that binds now stays free unless another test picks the same one.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

_LOWEST = 20_000


def _ephemeral_start() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768


def free_port() -> int:
    """A port on 127.0.0.1 that binds now, below the ephemeral range."""
    top = max(_ephemeral_start(), _LOWEST + 1_000)
    picker = random.SystemRandom()
    for _ in range(200):
        port = picker.randrange(_LOWEST, top)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port between {_LOWEST} and {top}")


def closed_port_url() -> str:
    """An http URL on 127.0.0.1 where nothing listens: connecting is refused at once."""
    return f"http://127.0.0.1:{free_port()}"
