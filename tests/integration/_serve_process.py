"""Run ``qwenkit serve`` as a real subprocess on a free loopback port, and read its /metrics gauges.

The command imports ``qwenkit.cli.serve_cmd`` itself, so it works whether or not the ``serve`` command
is already registered by ``qwenkit.cli``; it is otherwise exactly ``python -m qwenkit serve ...``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from _ports import free_port

SERVE = "import sys; from qwenkit.cli import serve_cmd, main; sys.exit(main(sys.argv[1:]))"
READY_SECONDS = 240.0


class ServeProcess:
    """A started server subprocess; ``stderr_text()`` holds its log for failure messages."""

    def __init__(self, proc: subprocess.Popen[bytes], port: int, log_path: Path) -> None:
        self.proc = proc
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = log_path

    def stderr_text(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def wait_ready(self, seconds: float = READY_SECONDS) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited early ({self.proc.returncode}): {self.stderr_text()}")
            try:
                if httpx.get(f"{self.url}/ready", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
        raise AssertionError(f"server did not become ready: {self.stderr_text()}")

    def gauge(self, name: str, headers: dict[str, str] | None = None) -> float:
        """The value of an unlabelled metric in GET /metrics."""
        text = httpx.get(f"{self.url}/metrics", headers=headers, timeout=30).text
        match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
        if match is None:
            raise AssertionError(f"{name} is not in /metrics")
        return float(match.group(1))

    def wait_idle(self, seconds: float = 60.0, headers: dict[str, str] | None = None) -> tuple[float, float]:
        """Poll until running == waiting == 0 (or time runs out); the last (running, waiting) read."""
        deadline = time.monotonic() + seconds
        while True:
            state = (
                self.gauge("qwenkit:num_requests_running", headers),
                self.gauge("qwenkit:num_requests_waiting", headers),
            )
            if state == (0.0, 0.0) or time.monotonic() > deadline:
                return state
            time.sleep(0.2)


@contextmanager
def serve_process(
    model: Path, *flags: str, env: dict[str, str] | None = None, backend: str = "transformers"
) -> Iterator[ServeProcess]:
    """``qwenkit serve model --backend B --port P --context 512 --parallel 2 *flags``, ready to take
    requests; killed on the way out if still running."""
    port = free_port()
    args = ["serve", str(model), "--backend", backend, "--port", str(port), "--context", "512"]
    args += ["--parallel", "2", *(["--threads", "2"] if backend == "llamacpp" else []), *flags]
    full_env = {**os.environ, "QWENKIT_LOG_LEVEL": "warning", **(env or {})}
    with tempfile.NamedTemporaryFile(prefix="qwenkit-serve-", suffix=".log", delete=False) as log:
        log_path = Path(log.name)
        proc = subprocess.Popen(
            [sys.executable, "-c", SERVE, *args], env=full_env, stdout=log, stderr=subprocess.STDOUT
        )
    server = ServeProcess(proc, port, log_path)
    try:
        server.wait_ready()
        yield server
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
        log_path.unlink(missing_ok=True)
