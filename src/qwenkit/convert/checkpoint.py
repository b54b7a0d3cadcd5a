"""What a Hugging Face checkpoint directory must hold before llama.cpp's converter is started.

The converter fails late and loudly (a traceback after minutes of work, or a half-written file), so
the cheap checks run first: a config.json naming a Qwen architecture the converter knows, a
tokenizer, and safetensors files whose headers are whole (every tensor's bytes inside the file). The
headers also give the tensor sizes, from which the output size is known before anything is written.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from math import prod
from pathlib import Path
from typing import Any

from qwenkit.defaults import OutType
from qwenkit.errors import ModelFormatError, UsageError

# The Qwen text architectures llama.cpp's converter maps (config.json "architectures").
QWEN_ARCHITECTURES = frozenset(
    {
        "Qwen2ForCausalLM",
        "Qwen2MoeForCausalLM",
        "Qwen3ForCausalLM",
        "Qwen3MoeForCausalLM",
    }
)
# The vision-language ones: the converter writes their language model as the text GGUF and, asked with
# --mmproj, their vision tower and projector as a second GGUF (llama.cpp's "mmproj").
QWEN_VL_ARCHITECTURES = frozenset({"Qwen2VLForConditionalGeneration", "Qwen2_5_VLForConditionalGeneration"})
TOKENIZER_SETS = (("tokenizer.json",), ("vocab.json", "merges.txt"), ("tokenizer.model",))
_MAX_HEADER = 100 << 20  # safetensors' own limit on the JSON header


@dataclass(frozen=True)
class Checkpoint:
    """A checked checkpoint directory: its architecture, weight files and parameter count."""

    path: Path
    architecture: str
    weights: tuple[Path, ...]
    parameters: int
    weight_bytes: int

    @property
    def has_vision(self) -> bool:
        return self.architecture in QWEN_VL_ARCHITECTURES

    def output_bytes(self, outtype: OutType) -> int:
        """The GGUF's size, with room for the vocabulary and metadata (a few MB for Qwen's 151k tokens)."""
        return int(self.parameters * outtype.bytes_per_weight) + (64 << 20)


def _config(path: Path) -> dict[str, Any]:
    config_path = path / "config.json"
    if not config_path.is_file():
        raise UsageError(f"{path} is not a Hugging Face checkpoint: it has no config.json", param="src")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ModelFormatError(f"{config_path} is not valid JSON: {exc}") from None
    if not isinstance(config, dict):
        raise ModelFormatError(f"{config_path} is not a JSON object")
    return config


def _architecture(config: dict[str, Any], path: Path) -> str:
    names = config.get("architectures")
    arch = names[0] if isinstance(names, list) and names and isinstance(names[0], str) else None
    if arch is None:
        raise ModelFormatError(f"{path / 'config.json'} names no architecture ('architectures' is missing)")
    if arch not in QWEN_ARCHITECTURES | QWEN_VL_ARCHITECTURES:
        known = ", ".join(sorted(QWEN_ARCHITECTURES | QWEN_VL_ARCHITECTURES))
        raise UsageError(f"unknown architecture {arch!r} in {path / 'config.json'}; qwenkit converts {known}")
    return arch


def _check_tokenizer(path: Path) -> None:
    if not any(all((path / name).is_file() for name in names) for names in TOKENIZER_SETS):
        raise ModelFormatError(
            f"{path} has no tokenizer (tokenizer.json, vocab.json + merges.txt, or tokenizer.model)",
            hint="copy the tokenizer files of the model it was trained from into the directory",
        )


def safetensors_elements(path: Path) -> tuple[int, int]:
    """(elements, bytes) of one safetensors file; ModelFormatError unless its header and sizes agree."""
    size = path.stat().st_size
    with path.open("rb") as handle:
        raw = handle.read(8)
        if len(raw) < 8:
            raise ModelFormatError(f"{path} is not a safetensors file ({size} bytes)")
        (length,) = struct.unpack("<Q", raw)
        if length > min(_MAX_HEADER, size - 8):
            raise ModelFormatError(f"{path} is corrupt: its header claims {length} bytes")
        try:
            header = json.loads(handle.read(length))
        except (UnicodeDecodeError, ValueError):
            raise ModelFormatError(f"{path} is corrupt: its header is not JSON") from None
    if not isinstance(header, dict):
        raise ModelFormatError(f"{path} is corrupt: its header is not a JSON object")
    data = size - 8 - length
    elements, end = 0, 0
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            begin, stop = (int(x) for x in info["data_offsets"])
            shape = [int(d) for d in info["shape"]]
        except (KeyError, TypeError, ValueError):
            raise ModelFormatError(
                f"{path} is corrupt: tensor {name!r} has no valid offsets or shape"
            ) from None
        if not 0 <= begin <= stop <= data:
            raise ModelFormatError(f"{path} is truncated or corrupt: tensor {name!r} ends past the file")
        elements += prod(shape)
        end = max(end, stop)
    if end != data:
        raise ModelFormatError(f"{path} is corrupt: its tensors cover {end} of its {data} data bytes")
    return elements, size


def check_checkpoint(path: str | Path) -> Checkpoint:
    """Check ``path`` is a convertible Qwen checkpoint; one clear error for each way it is not."""
    path = Path(path)
    if not path.exists():
        raise UsageError(f"{path} does not exist", param="src")
    if not path.is_dir():
        raise UsageError(f"{path} is not a directory: give a Hugging Face checkpoint directory", param="src")
    arch = _architecture(_config(path), path)
    _check_tokenizer(path)
    weights = tuple(sorted(path.glob("*.safetensors")))
    if not weights:
        raise ModelFormatError(f"{path} has no .safetensors weights")
    elements = total = 0
    for file in weights:
        n, size = safetensors_elements(file)
        elements += n
        total += size
    return Checkpoint(path, arch, weights, elements, total)
