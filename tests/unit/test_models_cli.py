"""qwenkit pull | list | rm | info through the real CLI entry point, against the real catalog."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _models_fixtures import isolate, write_tiny_gguf

from qwenkit.cli import main
from qwenkit.models.store import store_path, write_record

REPO = "Qwen/Qwen2.5-Coder-0.5B-Instruct-GGUF"
FILE = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("COLUMNS", "200")
    return isolate(monkeypatch, tmp_path)


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


def _stored_default(env: Path) -> Path:
    path = store_path(REPO, FILE)
    path.parent.mkdir(parents=True)
    write_tiny_gguf(path)
    write_record(path, "12" * 32, "test")
    return path


def test_list_pull_rm_cycle(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(capsys, "list", "--json")[:2] == (0, "[]\n")
    assert "no local models" in _run(capsys, "list")[1]
    path = _stored_default(env)

    code, out, _ = _run(capsys, "list", "--json")
    assert code == 0
    assert [(e["ref"], e["source"], e["path"]) for e in json.loads(out)] == [
        ("qwen2.5-coder-0.5b-instruct:q4_k_m", "qwenkit-store", str(path))]
    assert "qwen2.5-coder-0.5b-instruct:q4_k_m" in _run(capsys, "list")[1]

    code, out, _ = _run(capsys, "pull", "qwen2.5-coder-0.5b-instruct", "--json")
    assert code == 0
    assert json.loads(out) == {
        "path": str(path), "format": "gguf", "model": "qwen2.5-coder-0.5b-instruct", "quant": "q4_k_m",
        "sha256": "12" * 32, "source": "qwenkit-store", "downloaded": False,
    }
    code, out, _ = _run(capsys, "pull")  # the default model
    assert code == 0 and "already local (qwenkit-store)" in out and str(path) in out.replace("\n", "")

    code, out, _ = _run(capsys, "rm", "qwen2.5-coder-0.5b-instruct")
    assert code == 0 and "removed qwen2.5-coder-0.5b-instruct:q4_k_m" in out and not path.exists()
    code, out, _ = _run(capsys, "rm", "qwen2.5-coder-0.5b-instruct", "--json")
    assert (code, json.loads(out)["removed"]) == (0, [])
    assert "nothing to remove" in _run(capsys, "rm", "qwen2.5-coder-0.5b-instruct")[1]


def test_info_json_and_table(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_tiny_gguf(env / "tiny.gguf")
    code, out, _ = _run(capsys, "info", str(path), "--json")
    data = json.loads(out)
    assert code == 0 and (data["architecture"], data["quantization"], data["template_family"]) == (
        "qwen2", "Q4_K_M", "qwen2.5")
    code, out, _ = _run(capsys, "info", str(path))
    assert code == 0 and "yes (qwen2.5)" in out and "4 (KV heads: 2)" in out
    stored = _stored_default(env)
    data = json.loads(_run(capsys, "info", "qwen2.5-coder-0.5b-instruct", "--json")[1])
    assert (data["path"], data["model"]) == (str(stored), "qwen2.5-coder-0.5b-instruct")


def test_errors_are_one_clear_line(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = env / "broken.gguf"
    bad.write_bytes(b"GGUF\x03\x00\x00\x00" + bytes(10))  # cut inside the key-value count
    code, _, err = _run(capsys, "info", str(bad))
    assert code == 1 and err.startswith("error: ") and "truncated or corrupt" in err

    code, _, err = _run(capsys, "info", "qwen2.5-7b-instruct")
    assert code == 1 and "not on this machine" in err and "qwenkit pull qwen2.5-7b-instruct" in err

    code, _, err = _run(capsys, "pull", "qwen2.5-7b-instruct")  # no mirror; the Hub is a closed port
    assert code == 1 and "Tried, in order" in err and "give its path instead of the id: /path/to/" in err

    code, _, err = _run(capsys, "pull", "qwen2.5-coder-0.5b-instruct:q9_z")
    assert code == 2 and "available: q4_k_m" in err

    code, _, err = _run(capsys, "rm", "no-such-model-anywhere")
    assert code == 1 and "unknown model" in err

    code, _, err = _run(capsys, "rm", str(bad))
    assert code == 2 and "local path" in err and bad.exists()
