"""``qwenkit convert`` and ``quantize`` on bad inputs, through the entry point: one clear line, the right
exit code, no traceback, and nothing written under the output name."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import gguf
import numpy as np
import pytest
from _cli import offline_env, run_qwenkit


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return offline_env(tmp_path_factory.mktemp("cli-convert"))


def _checkpoint(root: Path, *, arch: str = "Qwen2ForCausalLM", tokenizer: bool = True, cut: int = 0) -> Path:
    root.mkdir()
    (root / "config.json").write_text(json.dumps({"architectures": [arch]}))
    if tokenizer:
        (root / "tokenizer.json").write_text("{}")
    header = json.dumps({"w": {"dtype": "F32", "shape": [4, 4], "data_offsets": [0, 64]}}).encode()
    (root / "model.safetensors").write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * (64 - cut))
    return root


def _one_error(proc_stderr: str, text: str) -> None:
    assert "Traceback" not in proc_stderr, proc_stderr
    lines = proc_stderr.splitlines()
    assert 1 <= len(lines) <= 2 and lines[0].startswith("error: ") and text in lines[0], lines


@pytest.mark.parametrize(
    ("kind", "code", "text"),
    [
        ("corrupt", 1, "is truncated or corrupt"),
        ("no-tokenizer", 1, "has no tokenizer"),
        ("llama", 2, "unknown architecture 'LlamaForCausalLM'"),
    ],
)
def test_convert_refuses_a_bad_checkpoint_and_writes_nothing(
    tmp_path: Path, env: dict[str, str], kind: str, code: int, text: str
) -> None:
    options: dict[str, dict[str, object]] = {
        "corrupt": {"cut": 8}, "no-tokenizer": {"tokenizer": False}, "llama": {"arch": "LlamaForCausalLM"},
    }
    ckpt = _checkpoint(tmp_path / "ckpt", **options[kind])  # type: ignore[arg-type]
    out = tmp_path / "out.gguf"
    proc = run_qwenkit("convert", str(ckpt), "-o", str(out), env=env)
    assert (proc.returncode, proc.stdout) == (code, "")
    _one_error(proc.stderr, text)
    assert not out.exists() and not list(tmp_path.glob(".out.gguf*"))


def _q8_gguf(path: Path) -> Path:
    writer = gguf.GGUFWriter(path, "qwen2")
    writer.add_file_type(int(gguf.LlamaFileType.MOSTLY_Q8_0))
    writer.add_tensor("w", np.zeros((2, 34), dtype=np.uint8), raw_dtype=gguf.GGMLQuantizationType.Q8_0)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_quantize_refuses_to_requantize_unless_asked(tmp_path: Path, env: dict[str, str]) -> None:
    q8 = _q8_gguf(tmp_path / "m-Q8_0.gguf")
    proc = run_qwenkit("quantize", str(q8), "--type", "Q4_K_M", env=env)
    assert (proc.returncode, proc.stdout) == (2, "")
    _one_error(proc.stderr, "m-Q8_0.gguf is already quantized (Q8_0)")
    assert "--allow-requantize" in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m-Q8_0.gguf"]


def test_quantize_of_a_file_that_is_not_gguf_is_a_format_error(tmp_path: Path, env: dict[str, str]) -> None:
    fake = tmp_path / "fake.gguf"
    fake.write_bytes(b"NOPE" + b"\0" * 64)
    proc = run_qwenkit("quantize", str(fake), "--type", "Q8_0", env=env)
    assert (proc.returncode, proc.stdout) == (1, "")
    _one_error(proc.stderr, "fake.gguf")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fake.gguf"]
