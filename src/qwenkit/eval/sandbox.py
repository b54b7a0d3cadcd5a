"""Running generated code: one confined interpreter per sample.

Generated code is hostile input. Each sample runs in a fresh ``python -I -S`` (no site-packages, no
user paths, no ``PYTHON*`` variables) in an empty temporary directory that is deleted afterwards,
with a clean environment whose HOME is that directory, in its own session (so the whole process
group is killed on timeout or when it ends). Inside, ``sandbox_child.py`` sets resource limits,
enters a new network namespace where the kernel allows it, and installs an audit hook that refuses
processes, sockets, native code and file access outside the directory. Every refusal, crash, kill or
timeout is a failed sample with its reason.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path

GIB = 1 << 30
MIB = 1 << 20


@dataclass(frozen=True)
class SandboxLimits:
    """Per sample: wall-clock seconds, CPU seconds, address space, largest file, processes."""

    timeout: float = 10.0
    cpu_seconds: int = 10
    memory_bytes: int = 2 * GIB
    file_bytes: int = 16 * MIB
    processes: int = 64


@dataclass(frozen=True)
class ExecResult:
    passed: bool
    reason: str
    network_namespace: bool | None = None  # None: the child never reported


@cache
def _child_source() -> str:
    return (Path(__file__).with_name("sandbox_child.py")).read_text(encoding="utf-8")


def _clean_env(home: str) -> dict[str, str]:
    return {"PATH": "/usr/bin:/bin", "HOME": home, "TMPDIR": home, "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _read_verdict(read_fd: int, nonce: str) -> dict[str, object] | None:
    """The last verdict line carrying our nonce (a program cannot know it, so cannot fake one)."""
    with os.fdopen(read_fd, "rb") as pipe:
        data = pipe.read(1 << 16)
    for line in reversed(data.decode("utf-8", errors="replace").splitlines()):
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict) and obj.get("nonce") == nonce:
            return obj
    return None


def _signal_reason(code: int, limits: SandboxLimits) -> str:
    try:
        name = signal.Signals(-code).name
    except ValueError:
        name = f"signal {-code}"
    why = {"SIGXCPU": f"CPU time limit, {limits.cpu_seconds} s", "SIGXFSZ": "file size limit",
           "SIGKILL": "killed", "SIGSEGV": "crashed"}.get(name)
    return f"killed by {name}" + (f" ({why})" if why else "")


def run_program(source: str, limits: SandboxLimits | None = None) -> ExecResult:
    """Run ``source`` confined; passed means it ran to its end without an exception or a refusal."""
    limits = limits or SandboxLimits()
    nonce = secrets.token_hex(16)
    caps = json.dumps([limits.cpu_seconds, limits.memory_bytes, limits.file_bytes, limits.processes])
    read_fd, write_fd = os.pipe()
    with tempfile.TemporaryDirectory(prefix="qwenkit-sandbox-") as home:
        try:
            proc = subprocess.Popen(
                [sys.executable, "-I", "-S", "-c", _child_source(), str(write_fd), nonce, caps],
                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=home,
                env=_clean_env(home), start_new_session=True, pass_fds=(write_fd,),
            )
        finally:
            os.close(write_fd)
        timed_out = False
        try:
            proc.communicate(source.encode("utf-8", errors="replace"), timeout=limits.timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
        finally:
            _kill_group(proc.pid)  # whatever it left behind goes too
            proc.wait()
        verdict = _read_verdict(read_fd, nonce)
    if timed_out:
        return ExecResult(False, f"timeout after {limits.timeout:g} s")
    if verdict is None:
        code = proc.returncode
        reason = _signal_reason(code, limits) if code < 0 else f"exited with code {code} before the end"
        return ExecResult(False, reason)
    return ExecResult(bool(verdict.get("ok")), str(verdict.get("reason")), bool(verdict.get("netns")))


@cache
def network_isolation() -> str:
    """How this machine keeps samples off the network: a network namespace, or refused sockets only."""
    result = run_program("pass")
    return "network namespace" if result.network_namespace else "sockets refused (no namespace here)"
