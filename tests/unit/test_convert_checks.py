"""The checks before any conversion or quantization starts, and the safe-output rules."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import gguf
import numpy as np
import pytest

from qwenkit.convert import output
from qwenkit.convert.checkpoint import check_checkpoint, safetensors_elements
from qwenkit.convert.quantize import QuantType, default_output, quantize, quantized_weights
from qwenkit.defaults import OutType
from qwenkit.errors import ConversionError, ModelFormatError, UsageError
from qwenkit.models.gguf_reader import read_gguf_metadata


def _safetensors(path: Path, tensors: dict[str, tuple[int, ...]], *, cut: int = 0) -> Path:
    header, offset = {}, 0
    for name, shape in tensors.items():
        size = int(np.prod(shape)) * 4
        header[name] = {"dtype": "F32", "shape": list(shape), "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + b"\0" * (offset - cut))
    return path


def _checkpoint(root: Path, arch: str = "Qwen2ForCausalLM", tokenizer: bool = True) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "config.json").write_text(json.dumps({"architectures": [arch]}))
    if tokenizer:
        (root / "tokenizer.json").write_text("{}")
    _safetensors(root / "model.safetensors", {"a": (4, 8), "b": (8,)})
    return root


def test_a_valid_checkpoint_counts_its_parameters(tmp_path: Path) -> None:
    ckpt = check_checkpoint(_checkpoint(tmp_path / "m"))
    assert (ckpt.architecture, ckpt.parameters) == ("Qwen2ForCausalLM", 40)
    assert ckpt.output_bytes(OutType.F16) == 80 + (64 << 20)


@pytest.mark.parametrize(
    ("make", "error", "text"),
    [
        (lambda p: p / "missing", UsageError, "does not exist"),
        (lambda p: _safetensors(p / "x.safetensors", {"a": (2,)}), UsageError, "is not a directory"),
        (lambda p: (p / "empty").mkdir() or p / "empty", UsageError, "has no config.json"),
        (lambda p: _checkpoint(p / "llama", arch="LlamaForCausalLM"), UsageError, "unknown architecture"),
        (lambda p: _checkpoint(p / "notok", tokenizer=False), ModelFormatError, "has no tokenizer"),
    ],
)
def test_what_is_not_a_qwen_checkpoint_is_one_clear_error(tmp_path: Path, make, error, text) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(error, match=text):
        check_checkpoint(make(tmp_path))


def test_corrupt_safetensors_are_caught_before_the_converter(tmp_path: Path) -> None:
    truncated = _safetensors(tmp_path / "t.safetensors", {"a": (4, 8)}, cut=10)
    with pytest.raises(ModelFormatError, match="corrupt"):
        safetensors_elements(truncated)
    garbage = tmp_path / "g.safetensors"
    garbage.write_bytes(struct.pack("<Q", 10**12) + b"{}")
    with pytest.raises(ModelFormatError, match="header claims"):
        safetensors_elements(garbage)
    not_json = tmp_path / "n.safetensors"
    not_json.write_bytes(struct.pack("<Q", 4) + b"abcd")
    with pytest.raises(ModelFormatError, match="not JSON"):
        safetensors_elements(not_json)
    ckpt = _checkpoint(tmp_path / "m")
    _safetensors(ckpt / "model-2.safetensors", {"a": (4, 8)}, cut=1)
    with pytest.raises(ModelFormatError):
        check_checkpoint(ckpt)


def test_no_room_on_disk_is_refused_before_writing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(output.shutil, "disk_usage", lambda _p: type("U", (), {"free": 1000})())
    with pytest.raises(ConversionError, match="not enough disk space"):
        output.check_room(tmp_path / "out.gguf", 10**9)
    output.check_room(tmp_path / "out.gguf", 999)


def test_a_failure_or_interrupt_leaves_no_file_under_either_name(tmp_path: Path) -> None:
    target = tmp_path / "out.gguf"
    for exc in (ConversionError("tool failed"), KeyboardInterrupt()):
        with pytest.raises(type(exc)), output.atomic_output(target) as tmp:
            tmp.write_bytes(b"half")
            raise exc
        assert list(tmp_path.iterdir()) == []
    with output.atomic_output(target) as tmp:
        tmp.write_bytes(b"whole")
    assert [p.name for p in tmp_path.iterdir()] == ["out.gguf"] and target.read_bytes() == b"whole"


def test_output_names_and_types() -> None:
    assert default_output(Path("/m/model-F16.gguf"), QuantType.Q4_K_M) == Path("/m/model-Q4_K_M.gguf")
    assert default_output(Path("/m/model.gguf"), QuantType.Q8_0) == Path("/m/model-Q8_0.gguf")
    assert QuantType.parse("q5_k_m") is QuantType.Q5_K_M
    with pytest.raises(UsageError, match="unknown quantization type 'Q3'"):
        QuantType.parse("Q3")


def _gguf(path: Path, dtype: gguf.GGMLQuantizationType) -> Path:
    writer = gguf.GGUFWriter(path, "qwen2")
    writer.add_file_type(
        int(gguf.LlamaFileType.MOSTLY_Q8_0 if dtype == gguf.GGMLQuantizationType.Q8_0 else 1)
    )
    data = np.zeros((2, 34 if dtype == gguf.GGMLQuantizationType.Q8_0 else 64), dtype=np.uint8)
    if dtype == gguf.GGMLQuantizationType.F16:
        writer.add_tensor("w", np.zeros((2, 32), dtype=np.float16))
    else:
        writer.add_tensor("w", data, raw_dtype=dtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_an_already_quantized_file_is_refused_without_allow_requantize(tmp_path: Path) -> None:
    q8 = _gguf(tmp_path / "m-Q8_0.gguf", gguf.GGMLQuantizationType.Q8_0)
    assert quantized_weights(read_gguf_metadata(q8)) == ["Q8_0"]
    assert (
        quantized_weights(read_gguf_metadata(_gguf(tmp_path / "f.gguf", gguf.GGMLQuantizationType.F16))) == []
    )
    with pytest.raises(UsageError, match="already quantized") as err:
        quantize(q8, "Q4_K_M")
    assert "--allow-requantize" in str(err.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.gguf", "m-Q8_0.gguf"]


def test_quantize_refuses_missing_and_directory_inputs(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="does not exist"):
        quantize(tmp_path / "nope.gguf", "Q8_0")
    with pytest.raises(UsageError, match="is a directory"):
        quantize(tmp_path, "Q8_0")
