"""Every usage error of every command, through the installed ``qwenkit`` entry point.

A usage error is one line on stderr (``error: ...``), at most one hint line after it, nothing on
stdout, exit code 2 and no traceback; and it comes before any model is fetched or loaded (the caches
are empty and the network closed here, so a command that got that far would fail with exit code 1).
"""

from __future__ import annotations

import importlib.metadata
import socket
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import typer
from _cli import offline_env, run_qwenkit

from qwenkit.cli import app

Case = tuple[str, tuple[str, ...], str]  # command, arguments, text the error line must hold

UNKNOWN_OPTION = "no such option: --bogus"
EXTRA_ARGUMENT = "unexpected extra argument"
NOT_A_NUMBER = "invalid value for '--context'"

USAGE_ERRORS: list[Case] = [
    ("catalog", ("catalog", "--bogus"), UNKNOWN_OPTION),
    ("catalog", ("catalog", "extra"), EXTRA_ARGUMENT),
    ("catalog", ("catalog", "--json=yes"), "option '--json' does not take a value"),
    ("catalog", ("catalog", "--generation", "qwen9"), "unknown generation 'qwen9'"),
    ("select", ("select", "--task", "code", "--bogus"), UNKNOWN_OPTION),
    ("select", ("select",), "missing option '--task'"),
    ("select", ("select", "--task"), "option '--task' requires an argument"),
    ("select", ("select", "--task", "code", "--context", "abc"), NOT_A_NUMBER),
    ("select", ("select", "--task", "code", "--context", "10"), "greater than or equal to 64"),
    ("select", ("select", "--task", "cooking"), "unknown task 'cooking'"),
    ("select", ("select", "--task", "code", "--limit", "0"), "limit must be at least 1, not 0"),
    ("select", ("select", "--task", "code", "--memory", "lots"), "cannot read 'lots' as an amount of memory"),
    ("pull", ("pull", "--bogus"), UNKNOWN_OPTION),
    ("pull", ("pull", "a", "b"), EXTRA_ARGUMENT),
    ("pull", ("pull", "--quiet=3"), "option '--quiet' does not take a value"),
    ("pull", ("pull", "qwen2.5-coder-0.5b-instruct:q9_z"), "no quant 'q9_z'"),
    ("list", ("list", "--bogus"), UNKNOWN_OPTION),
    ("list", ("list", "extra"), EXTRA_ARGUMENT),
    ("list", ("list", "--json=1"), "option '--json' does not take a value"),
    ("rm", ("rm", "--bogus", "x"), UNKNOWN_OPTION),
    ("rm", ("rm",), "missing argument 'ref'"),
    ("rm", ("rm", "--json=1", "x"), "option '--json' does not take a value"),
    ("rm", ("rm", ""), "a model reference must not be empty"),
    ("info", ("info", "--bogus"), UNKNOWN_OPTION),
    ("info", ("info", "a", "b"), EXTRA_ARGUMENT),
    ("info", ("info", "--json=1"), "option '--json' does not take a value"),
    ("info", ("info", "qwen2.5-coder-0.5b-instruct:q9_z"), "no quant 'q9_z'"),
    ("run", ("run", "--bogus", "hi"), UNKNOWN_OPTION),
    ("run", ("run",), "missing argument '[REF] PROMPT'"),
    ("run", ("run", "a", "b", "c"), 'usage: qwenkit run [REF] "prompt"'),
    ("run", ("run", "--context", "abc", "hi"), NOT_A_NUMBER),
    ("run", ("run", "--context", "10", "hi"), "greater than or equal to 64"),
    ("run", ("run", "--context", "4294967296", "hi"), "less than or equal to 1048576"),  # wrapped to 0
    ("run", ("run", "--max-tokens", "0", "hi"), "invalid value for '--max-tokens'"),
    ("run", ("run", "--temperature", "9", "hi"), "invalid value for '--temperature'"),
    ("run", ("run", "--backend", "foo", "hi"), "'foo' is not a backend"),
    ("chat", ("chat", "--bogus"), UNKNOWN_OPTION),
    ("chat", ("chat", "a", "b"), EXTRA_ARGUMENT),
    ("chat", ("chat", "--context", "abc"), NOT_A_NUMBER),
    ("chat", ("chat", "--context", "10"), "greater than or equal to 64"),
    ("chat", ("chat", "--thinking-budget", "-1"), "invalid value for '--thinking-budget'"),
    ("chat", ("chat", "--backend", "foo"), "'foo' is not a backend"),
    ("serve", ("serve", "--bogus"), UNKNOWN_OPTION),
    ("serve", ("serve", "a", "b"), EXTRA_ARGUMENT),
    ("serve", ("serve", "--port"), "option '--port' requires an argument"),
    ("serve", ("serve", "--port", "abc"), "invalid value for '--port'"),
    ("serve", ("serve", "--port", "99999"), "invalid setting port"),
    ("serve", ("serve", "--context", "10"), "invalid setting context"),
    ("serve", ("serve", "--backend", "foo"), "'foo' is not a backend"),
    ("serve", ("serve", "--log-level", "loud"), "invalid setting log_level"),
    ("serve", ("serve", "--lora", "nameonly"), "invalid setting lora"),
    ("serve", ("serve", "--tensor-parallel-size", "2"), "settings are vLLM's; the auto backend would ignore"),
    ("serve", ("serve", "--backend", "vllm", "--quantization", "int3"), "unknown quantization 'int3'"),
    ("serve", ("serve", "--backend", "vllm", "--distributed-executor", "slurm"), "choose mp or ray"),
    ("serve", ("serve", "--gpu-memory-utilization", "1.5"), "invalid setting gpu_memory_utilization"),
    ("bench", ("bench", "--bogus"), UNKNOWN_OPTION),
    ("bench", ("bench",), "name a model to load (REF) or a server to measure (--url)"),
    ("bench", ("bench", "x", "--output-tokens", "abc"), "invalid value for '--output-tokens'"),
    ("bench", ("bench", "x", "--concurrency", "0"), "concurrency values must be at least 1"),
    ("bench", ("bench", "x", "--context", "10"), "greater than or equal to 64"),
    ("bench", ("bench", "x", "--backend", "foo"), "'foo' is not a backend"),
    ("bench", ("bench", "x", "--plot", "speed.svg"), "--plot must name a .png file"),  # before the run
    ("bench", ("bench", "x", "--json", "/nonexistent-qwenkit/r.json"), "its folder does not exist"),
    ("doctor", ("doctor", "--bogus"), UNKNOWN_OPTION),
    ("doctor", ("doctor", "a", "b"), EXTRA_ARGUMENT),
    ("doctor", ("doctor", "--context", "abc"), NOT_A_NUMBER),
    ("doctor", ("doctor", "--context", "10"), "greater than or equal to 64"),
    ("doctor", ("doctor", "--backend", "foo"), "'foo' is not a backend"),
    ("eval", ("eval", "--bogus"), UNKNOWN_OPTION),
    ("eval", ("eval",), "name a model to evaluate (REF) or a server (--url)"),
    ("eval", ("eval", "a", "b"), "name one model (REF)"),
    ("eval", ("eval", "x", "--task", "mmlu"), "unknown task 'mmlu'"),
    ("eval", ("eval", "x", "--task", "gsm8k"), "gsm8k needs --data PATH"),
    ("eval", ("eval", "x", "--data", "/nonexistent/q.jsonl"), "no such data file"),
    ("eval", ("eval", "x", "--limit", "0"), "invalid value for '--limit'"),
    ("eval", ("eval", "x", "--samples", "5"), "--samples above 1 needs --temperature above 0"),
    ("eval", ("eval", "x", "--thinking", "maybe"), "--thinking must be on or off"),
    ("eval", ("eval", "x", "--thinking-budget", "-1"), "thinking_budget values must be at least 0"),
    ("eval", ("eval", "x", "--thinking-budget", "lots"), "thinking_budget must be comma-separated integers"),
    ("eval", ("eval", "x", "--resume"), "--resume needs --out"),
    ("eval", ("eval", "x", "--plot", "out.svg"), "--plot must name a .png file"),
    ("eval", ("eval", "x", "--json", "/nonexistent-qwenkit/r.json"), "r.json: its folder does not exist"),
    ("eval", ("eval", "x", "--json", "/tmp"), "--json /tmp is a folder: give a file name"),
    ("eval", ("eval", "--compare", "/nonexistent/a.json", "/nonexistent/b.json", "--json",
              "/nonexistent-qwenkit/c.json"), "--json /nonexistent-qwenkit/c.json: its folder"),
    ("eval", ("eval", "x", "--timeout", "0"), "invalid value for '--timeout'"),
    ("eval", ("eval", "--compare", "a.json"), "--compare needs two or more"),
    ("eval", ("eval", "--compare", "/nonexistent/a.json", "/nonexistent/b.json"), "no such report"),
    ("eval", ("eval", "--url", "ftp://x"), "--url must be an http(s) URL"),
    ("eval", ("eval", "x", "--backend", "foo"), "'foo' is not a backend"),
    ("tune", ("tune", "x", "--bogus"), UNKNOWN_OPTION),
    ("tune", ("tune", "x"), "the setting 'data' is required"),
    ("tune", ("tune", "--data", "d.jsonl", "-o", "out"), "the setting 'base' is required"),
    ("tune", ("tune", "x", "--data", "/nonexistent/d.jsonl", "-o", "out"), "no data file at /nonexistent/d"),
    ("tune", ("tune", "x", "--data", "d", "-o", "o", "--lora-r", "0"), "lora_r must be a whole number"),
    ("tune", ("tune", "x", "--data", "d", "-o", "o", "--lr", "abc"), "invalid value for '--lr'"),
    ("tune", ("tune", "x", "--data", "d", "-o", "o", "--overlong", "drop"), "overlong 'drop' is not one of"),
    ("tune", ("tune", "x", "--data", "d", "-o", "o", "--thinking", "maybe"), "thinking 'maybe' is not one"),
    ("tune", ("tune", "x", "--data", "d", "-o", "o", "--config", "/nonexistent/t.toml"), "no config file at"),
    ("tune", ("tune", "merge", "a"), "missing argument 'adapter'"),
    ("tune", ("tune", "merge", "a", "b"), "missing option '-o'"),
    ("tune", ("tune", "merge", "a", "b", "-o", "c", "--dtype", "int3"), "dtype 'int3' is not one of"),
    ("tune", ("tune", "export", "a"), "say what to export to: --gguf"),
    ("tune", ("tune", "export", "a", "--gguf", "--outtype", "q4"), "outtype 'q4' is not one of"),
    ("tune", ("tune", "export", "/nonexistent/a", "--gguf"), "no LoRA adapter at /nonexistent/a"),
    ("(none)", ("foo",), "no such command 'foo'"),
    ("(none)", ("--bogus",), UNKNOWN_OPTION),
    ("convert", ("convert", "--bogus", "x"), UNKNOWN_OPTION),
    ("convert", ("convert",), "missing argument 'src'"),
    ("convert", ("convert", "/nonexistent/checkpoint"), "/nonexistent/checkpoint does not exist"),
    ("convert", ("convert", "/etc/passwd"), "is not a directory"),
    ("convert", ("convert", "/"), "is not a Hugging Face checkpoint: it has no config.json"),
    ("convert", ("convert", "/", "--outtype", "q4_0"), "invalid value for '--outtype'"),
    ("quantize", ("quantize", "/nonexistent/m.gguf"), "missing option '--type'"),
    ("quantize", ("quantize", "/nonexistent/m.gguf", "--type", "Q8_0"), "/nonexistent/m.gguf does not exist"),
    ("quantize", ("quantize", "/nonexistent/m.gguf", "-t", "Q3_Z"), "unknown quantization type 'Q3_Z'"),
    ("quantize", ("quantize", "/nonexistent/m.gguf", "-t", "Q8_0", "-t", "Q4_0"), "give one --type"),
    ("quantize", ("quantize", "/nonexistent/m.gguf", "-t", "Q8_0", "--report"), "--report needs --text"),
    ("quantize", ("quantize", "/nonexistent/m.gguf", "-t", "Q8_0", "--report", "--text", "/etc/passwd",
                  "--report-json", "/nonexistent-qwenkit/r.json"), "--report-json /nonexistent-qwenkit/r"),
    ("quantize", ("quantize", "/nonexistent/m.gguf", "-t", "Q8_0", "--report", "--text", "/etc/passwd",
                  "--plot", "q.svg"), "--plot must name a .png file"),
    ("quantize", ("quantize", "/", "-t", "Q8_0"), "/ is a directory; quantize takes a .gguf file"),
    ("perplexity", ("perplexity", "m.gguf"), "missing option '--text'"),
    ("perplexity", ("perplexity", "m.gguf", "--text", "/nonexistent/t.txt"), "t.txt is not a file"),
    ("perplexity", ("perplexity", "m.gguf", "--text", "/etc/passwd", "--context", "abc"), NOT_A_NUMBER),
    # Output paths are checked before the minutes of work (here: before the model is even looked up).
    ("perplexity", ("perplexity", "/nonexistent/m.gguf", "--text", "/etc/passwd", "--save-base",
                    "/nonexistent-qwenkit/b.npz"), "--save-base /nonexistent-qwenkit/b.npz: its folder"),
    ("perplexity", ("perplexity", "m.gguf", "--text", "/etc/passwd", "--save-base", "b.bin"),
     "--save-base must name a .npz file"),
]
DOCUMENTED_COMMANDS = {
    "catalog", "select", "pull", "list", "rm", "info", "run", "chat", "serve", "bench", "doctor", "eval",
    "convert", "quantize", "perplexity", "tune",
}
CASE_IDS = [" ".join(args) for _, args, _ in USAGE_ERRORS]


def registered_commands() -> set[str]:
    return set(getattr(typer.main.get_command(app), "commands", {}))


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return offline_env(tmp_path_factory.mktemp("cli-usage"))


@pytest.fixture(scope="module")
def outcomes(env: dict[str, str]) -> dict[tuple[str, ...], subprocess.CompletedProcess[str]]:
    """Every case's process, started a few at a time (each one is a fresh interpreter)."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        procs = pool.map(lambda args: run_qwenkit(*args, env=env), [args for _, args, _ in USAGE_ERRORS])
        return {args: proc for (_, args, _), proc in zip(USAGE_ERRORS, procs, strict=True)}


def test_every_command_has_its_usage_errors_in_the_table() -> None:
    commands = registered_commands()
    assert commands >= DOCUMENTED_COMMANDS
    assert {case[0] for case in USAGE_ERRORS} - {"(none)"} == commands


@pytest.mark.parametrize(("command", "args", "expected"), USAGE_ERRORS, ids=CASE_IDS)
def test_usage_error_is_one_line_and_exit_code_2(
    outcomes: dict[tuple[str, ...], subprocess.CompletedProcess[str]],
    command: str,
    args: tuple[str, ...],
    expected: str,
) -> None:
    proc = outcomes[args]
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert 1 <= len(lines) <= 2, lines
    assert lines[0].startswith("error: ") and expected in lines[0], lines[0]
    if len(lines) == 2 and lines[1].startswith("try "):
        path = "qwenkit" if command == "(none)" else f"qwenkit {command}"
        assert lines[1].startswith(f"try '{path} ") and lines[1].endswith(" --help'")  # or a subcommand's


@pytest.mark.parametrize("command", ["", *sorted(registered_commands())])
def test_dash_h_is_help_on_every_command(env: dict[str, str], command: str) -> None:
    proc = run_qwenkit(*([command] if command else []), "-h", env=env)
    assert (proc.returncode, proc.stderr) == (0, "")
    assert f"Usage: qwenkit {command}".rstrip() in proc.stdout


def test_version(env: dict[str, str]) -> None:
    proc = run_qwenkit("--version", env=env)
    assert (proc.returncode, proc.stderr) == (0, "")
    assert proc.stdout == f"qwenkit {importlib.metadata.version('qwenkit')}\n"


def test_no_arguments_prints_the_help_and_exits_0(env: dict[str, str]) -> None:
    proc = run_qwenkit(env=env)
    assert (proc.returncode, proc.stderr) == (0, "")
    assert "Usage: qwenkit" in proc.stdout and "serve" in proc.stdout and "--version" in proc.stdout


def test_usage_errors_leave_the_caches_alone(env: dict[str, str]) -> None:
    """The failing commands above never got as far as the model store."""
    for name in ("HF_HOME", "QWENKIT_HOME"):
        root = Path(env[name])
        assert not root.exists() or not any(root.rglob("*.gguf"))


def test_serve_on_a_port_in_use_says_so_before_loading_a_model(env: dict[str, str]) -> None:
    """uvicorn only logs a failed bind, after the model has loaded; the check binds first."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        proc = run_qwenkit("serve", "--port", str(port), env=env)  # the default model: not in the cache
    assert (proc.returncode, proc.stdout) == (2, ""), proc.stderr
    assert proc.stderr.splitlines()[0] == f"error: cannot listen on 127.0.0.1:{port}: Address already in use"
