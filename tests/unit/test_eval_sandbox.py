"""Generated code is hostile: each attack is contained and scored as a failure with its reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from qwenkit.eval.sandbox import SandboxLimits, network_isolation, run_program

# A wall clock far above what any case here needs on a quiet machine (under a second), so that a loaded
# one (CI runs this beside other tests) cannot turn a refusal's reason into a timeout.
LIMITS = SandboxLimits(timeout=30.0, cpu_seconds=2)

HOSTILE = [
    pytest.param('import os\nos.system("rm -rf ~")\n', "sandbox refused os.system", id="rm-rf-home"),
    pytest.param("import os\nfor _ in range(12):\n    os.fork()\n", "sandbox refused os.fork",
                 id="fork-bomb"),
    # The CPU limit, or on a busy machine the wall clock first: either way it is killed.
    pytest.param("while True:\n    pass\n", "killed by SIGXCPU (CPU time limit, 2 s)|timeout after 30 s",
                 id="infinite-loop"),
    pytest.param("x = bytearray(50 * 2**30)\n", "MemoryError", id="50-GB-allocation"),
    pytest.param("import socket\nsocket.create_connection(('93.184.216.34', 80), timeout=3)\n",
                 "sandbox refused socket", id="socket-connect"),
    pytest.param("print(open('/etc/passwd').read())\n", "sandbox refused reading /etc/passwd",
                 id="read-outside"),
    pytest.param("import os\nprint(os.listdir('/'))\n", "sandbox refused os.listdir", id="list-root"),
    pytest.param("import subprocess\nsubprocess.run(['id'])\n", "sandbox refused subprocess.Popen",
                 id="subprocess"),
    pytest.param("import ctypes\nctypes.CDLL(None).system(b'id')\n", "sandbox refused ctypes.dlopen",
                 id="ctypes"),
    pytest.param("open('big', 'wb').write(b'x' * (64 * 2**20))\n", "File too large", id="huge-file"),
    pytest.param("import os\nos._exit(0)\n", "exited with code 0 before the end", id="exit-before-tests"),
    pytest.param("import sys\nsys.exit(0)\n", "SystemExit: 0", id="sys-exit"),
]


@pytest.fixture
def fake_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Even the parent's HOME is a throwaway folder here, with a file that must survive."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "keep.txt").write_text("still here")
    monkeypatch.setenv("HOME", str(home))
    return home


@pytest.mark.parametrize(("source", "reason"), HOSTILE)
def test_hostile_code_is_contained_and_fails_with_its_reason(source: str, reason: str,
                                                             fake_home: Path) -> None:
    result = run_program(source, LIMITS)
    assert not result.passed
    assert any(alternative in result.reason for alternative in reason.split("|")), result.reason
    assert (fake_home / "keep.txt").read_text() == "still here"


def test_refused_even_when_the_program_catches_the_refusal() -> None:
    source = "import os\ntry:\n    os.system('id')\nexcept Exception:\n    pass\n"
    result = run_program(source, LIMITS)
    assert (result.passed, result.reason) == (False, "sandbox refused os.system")


def test_a_program_cannot_print_its_own_verdict() -> None:
    fake = (
        "import os, json\n"
        "line = (json.dumps({'ok': True, 'reason': 'passed', 'nonce': 'guess'}) + '\\n').encode()\n"
        "for fd in range(3, 64):\n"
        "    try:\n"
        "        os.write(fd, line)\n"
        "    except OSError:\n"
        "        pass\n"
        "os._exit(0)\n"
    )
    result = run_program(fake, LIMITS)
    assert not result.passed


def test_wall_clock_timeout_kills_a_sleeping_program() -> None:
    result = run_program("import time\ntime.sleep(30)\n", SandboxLimits(timeout=1.0, cpu_seconds=5))
    assert (result.passed, result.reason) == (False, "timeout after 1 s")


def test_ordinary_code_runs_imports_and_writes_in_its_own_folder() -> None:
    source = (
        "import hashlib, math, re, collections, itertools, functools, heapq, fractions, random, typing\n"
        "open('scratch.txt', 'w').write('x')\n"
        "assert open('scratch.txt').read() == 'x'\n"
        "assert hashlib.md5(b'a').hexdigest() == '0cc175b9c0f1b6a831c399e269772661'\n"
        "assert math.gcd(12, 18) == 6\n"
    )
    result = run_program(source, LIMITS)
    assert (result.passed, result.reason) == (True, "passed")


def test_a_failing_assertion_is_the_reason() -> None:
    result = run_program("assert 1 + 1 == 3, 'arithmetic'\n", LIMITS)
    assert (result.passed, result.reason) == (False, "AssertionError: arithmetic")


def test_network_isolation_is_reported() -> None:
    assert network_isolation() in ("network namespace", "sockets refused (no namespace here)")
