"""qwenkit pull | list | rm | info through the real CLI entry point, against the real catalog."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
from _models_fixtures import isolate, write_tiny_gguf

from qwenkit.cli import main
from qwenkit.models import inspect_path
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


def _gguf_with_output_head(path: Path) -> Path:
    """A GGUF that stores its (tied) embedding twice, as token_embd and output, like Qwen's 0.5B files."""
    import gguf
    import numpy as np

    writer = gguf.GGUFWriter(str(path), "qwen2")
    writer.add_name("Some Packager's Label")
    writer.add_block_count(1)
    writer.add_embedding_length(16)
    writer.add_tensor("token_embd.weight", np.ones((8, 16), dtype=np.float32))
    writer.add_tensor("blk.0.attn_output.weight", np.ones((16, 16), dtype=np.float16))
    writer.add_tensor("output.weight", np.ones((8, 16), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_info_names_and_parameter_counts(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = json.loads(_run(capsys, "info", str(write_tiny_gguf(env / "tiny.gguf")), "--json")[1])
    assert (data["model"], data["name"], data["file_label"]) == (None, None, None)
    assert (data["parameter_count"], data["model_parameters"]) == (400, 400)
    assert (data["embedding_parameters"], data["output_head_parameters"]) == (128, 0)
    assert data["non_embedding_parameters"] == 272

    # Named like the catalog's file: the catalog's name, and the tied matrix counted once.
    path = _gguf_with_output_head(env / FILE)
    data = json.loads(_run(capsys, "info", str(path), "--json")[1])
    assert (data["model"], data["name"]) == ("qwen2.5-coder-0.5b-instruct", "Qwen2.5-Coder-0.5B-Instruct")
    assert data["file_label"] == "Some Packager's Label"
    counts = ("parameter_count", "model_parameters", "non_embedding_parameters")
    assert [data[k] for k in counts] == [512, 384, 256]
    out = _run(capsys, "info", str(path))[1]
    assert "0.00 B (384) with embeddings, 0.00 B (256) without" in out
    assert "0.00 B (512): the tied embedding matrix is stored twice" in out
    assert "Qwen2.5-Coder-0.5B-Instruct (catalog: qwen2.5-coder-0.5b-instruct)" in out

    # The same file under another name is not the catalog's: no claim about tying.
    data = json.loads(_run(capsys, "info", str(path.rename(env / "other.gguf")), "--json")[1])
    assert (data["model"], data["name"], data["model_parameters"]) == (None, "Some Packager's Label", 512)


def test_embedding_counts_of_a_safetensors_directory(tmp_path: Path) -> None:
    """transformers' names: model.embed_tokens and lm_head (absent when tied in the checkpoint)."""
    shapes = {"model.embed_tokens.weight": [10, 4], "model.layers.0.mlp.up_proj.weight": [8, 4],
              "lm_head.weight": [10, 4]}
    header: dict[str, object] = {}
    offset = 0
    for name, shape in shapes.items():
        size = shape[0] * shape[1] * 2
        header[name] = {"dtype": "BF16", "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header).encode()
    (tmp_path / "model.safetensors").write_bytes(struct.pack("<Q", len(raw)) + raw + bytes(offset))
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "qwen2", "architectures": ["X"]}))
    info = inspect_path(tmp_path)
    assert (info.parameter_count, info.embeddings.input, info.embeddings.output_head) == (112, 40, 40)
    assert info.non_embedding_parameters == 32


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
