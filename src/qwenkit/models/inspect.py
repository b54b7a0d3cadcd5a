"""What a local model is, read from GGUF metadata or config.json + safetensors headers, never the weights."""

from __future__ import annotations

import json
import struct
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from types import MappingProxyType
from typing import Any

from qwenkit.chat.template import classify_template
from qwenkit.errors import ModelFormatError
from qwenkit.models.gguf_reader import SpecialToken, read_gguf_metadata

# The input embedding and the output head, by tensor name (GGUF's, then transformers'); a name matches
# exactly or as the last components (model.embed_tokens.weight, model.language_model.embed_tokens.weight).
INPUT_EMBEDDING_TENSORS = ("token_embd.weight", "embed_tokens.weight")
OUTPUT_HEAD_TENSORS = ("output.weight", "lm_head.weight")
MAX_JSON_BYTES = 32 << 20
MAX_SAFETENSORS_HEADER = 100 << 20  # the format's own limit


def template_family(template: str | None) -> str | None:
    """qwen3, qwen2.5, chatml-other, other; None when there is no template (``classify_template``)."""
    family = classify_template(template)
    return None if family is None else family.value


def _is_one_of(name: str, suffixes: tuple[str, ...]) -> bool:
    return any(name == s or name.endswith("." + s) for s in suffixes)


@dataclass(frozen=True)
class EmbeddingCounts:
    """Elements of the input embedding and of a separately stored output head (0: tied in the file)."""

    input: int = 0
    output_head: int = 0

    @classmethod
    def of(cls, tensors: Iterable[tuple[str, int]]) -> EmbeddingCounts:
        counts = {"input": 0, "output_head": 0}
        for name, n in tensors:
            if _is_one_of(name, INPUT_EMBEDDING_TENSORS):
                counts["input"] += n
            elif _is_one_of(name, OUTPUT_HEAD_TENSORS):
                counts["output_head"] += n
        return cls(**counts)


@dataclass(frozen=True)
class ModelInfo:
    """What a model file says about itself.

    ``parameter_count`` is every element stored in the file, the embeddings included: a GGUF that
    keeps a tied embedding matrix as two tensors (token_embd and output) counts it twice, unlike the
    model's published size. ``non_embedding_parameters`` leaves both out.
    """

    path: Path
    format: str  # gguf | safetensors
    architecture: str
    name: str | None
    parameter_count: int
    layers: int | None
    hidden_size: int | None
    attention_heads: int | None
    kv_heads: int | None
    context_length: int | None
    quantization: str | None  # GGUF file type (Q4_K_M) or the safetensors dtype / quant method
    tensor_types: Mapping[str, int]
    file_size: int
    chat_template: str | None = field(repr=False)
    special_tokens: tuple[SpecialToken, ...] = ()
    vocab_size: int | None = None
    embeddings: EmbeddingCounts = EmbeddingCounts()

    @property
    def non_embedding_parameters(self) -> int:
        return self.parameter_count - self.embeddings.input - self.embeddings.output_head

    @property
    def template_family(self) -> str | None:
        return template_family(self.chat_template)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values; the template text itself is left out (it can be long)."""
        data: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self)}
        del data["chat_template"]
        data["path"] = str(self.path)
        data["tensor_types"] = dict(self.tensor_types)
        data["special_tokens"] = [{"role": t.role, "id": t.id, "text": t.text} for t in self.special_tokens]
        del data["embeddings"]
        data["embedding_parameters"] = self.embeddings.input
        data["output_head_parameters"] = self.embeddings.output_head
        data["non_embedding_parameters"] = self.non_embedding_parameters
        data["has_chat_template"] = self.chat_template is not None
        data["template_family"] = self.template_family
        return data


def _inspect_gguf(path: Path) -> ModelInfo:
    meta = read_gguf_metadata(path)
    return ModelInfo(
        path=path, format="gguf", architecture=meta.architecture, name=meta.name,
        parameter_count=meta.parameter_count, layers=meta.arch_int("block_count"),
        hidden_size=meta.arch_int("embedding_length"), attention_heads=meta.arch_int("attention.head_count"),
        kv_heads=meta.arch_int("attention.head_count_kv"), context_length=meta.arch_int("context_length"),
        quantization=meta.file_type_name, tensor_types=MappingProxyType(meta.tensor_type_histogram()),
        file_size=meta.file_size, chat_template=meta.chat_template, special_tokens=meta.special_tokens,
        vocab_size=meta.token_count or None,
        embeddings=EmbeddingCounts.of((t.name, t.n_elements) for t in meta.tensors),
    )


def _read_json(path: Path) -> dict[str, Any]:
    try:
        if path.stat().st_size > MAX_JSON_BYTES:
            raise ModelFormatError(f"{path} is too large to be a config file")
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ModelFormatError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ModelFormatError(f"{path} does not hold a JSON object")
    return data


def _safetensors_header(path: Path) -> dict[str, Any]:
    """The JSON header of one safetensors file (bounded by the file size and the format's limit)."""
    size = path.stat().st_size
    with path.open("rb") as handle:
        raw = handle.read(8)
        if len(raw) < 8:
            raise ModelFormatError(f"{path} is truncated: no safetensors header")
        (length,) = struct.unpack("<Q", raw)
        if length > min(MAX_SAFETENSORS_HEADER, size - 8):
            raise ModelFormatError(f"{path} is truncated or corrupt: header claims {length:,} bytes")
        try:
            header = json.loads(handle.read(length))
        except (UnicodeDecodeError, ValueError) as exc:
            raise ModelFormatError(f"{path} has a corrupt safetensors header: {exc}") from None
    if not isinstance(header, dict):
        raise ModelFormatError(f"{path} has a corrupt safetensors header")
    return header


def _tensor_histogram(folder: Path) -> tuple[dict[str, int], Counter[str]]:
    """Elements per tensor name, and tensors per dtype."""
    sizes: dict[str, int] = {}
    dtypes = Counter[str]()
    for file in sorted(folder.glob("*.safetensors")):
        for name, entry in _safetensors_header(file).items():
            if name == "__metadata__" or not isinstance(entry, dict):
                continue
            count = 1
            for dim in entry.get("shape", []):
                count *= int(dim)
            sizes[name] = count
            dtypes[str(entry.get("dtype", "?"))] += 1
    return sizes, dtypes


def _text_config(config: dict[str, Any]) -> dict[str, Any]:
    """Multimodal configs keep the language model's numbers under text_config."""
    text = config.get("text_config")
    return {**config, **text} if isinstance(text, dict) else config


def _token_text(value: Any) -> str | None:
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) else None


def _dir_special_tokens(config: dict[str, Any], tok_config: dict[str, Any]) -> tuple[SpecialToken, ...]:
    decoder = tok_config.get("added_tokens_decoder") or {}
    ids = {_token_text(v): int(k) for k, v in decoder.items() if str(k).isdigit()}
    found = []
    for role in ("bos", "eos", "pad", "unk"):
        text = _token_text(tok_config.get(f"{role}_token"))
        token_id = ids.get(text) if text is not None else None
        config_id = config.get(f"{role}_token_id")
        if token_id is None and isinstance(config_id, int):
            token_id = config_id
        if token_id is not None:
            found.append(SpecialToken(role, token_id, text))
    return tuple(found)


def _dir_template(folder: Path, tok_config: dict[str, Any]) -> str | None:
    template = tok_config.get("chat_template")
    if isinstance(template, list):  # [{"name": "default", "template": ...}, ...]
        named = {t.get("name"): t.get("template") for t in template if isinstance(t, dict)}
        template = named.get("default") or next(iter(named.values()), None)
    jinja = folder / "chat_template.jinja"
    if not template and jinja.is_file():
        template = jinja.read_text(encoding="utf-8")
    return template if isinstance(template, str) and template.strip() else None


def _quant_label(config: dict[str, Any], dtypes: Counter[str]) -> str | None:
    quant = config.get("quantization_config")
    if isinstance(quant, dict) and quant.get("quant_method"):
        return str(quant["quant_method"])
    dtype = config.get("torch_dtype") or config.get("dtype")
    return str(dtype) if dtype else (dtypes.most_common(1)[0][0] if dtypes else None)


def _inspect_dir(folder: Path) -> ModelInfo:
    config = _read_json(folder / "config.json")
    if not config:
        raise ModelFormatError(f"{folder} has no config.json")
    tok_config = _read_json(folder / "tokenizer_config.json")
    text = _text_config(config)
    sizes, dtypes = _tensor_histogram(folder)
    archs = config.get("architectures") or []

    def number(key: str) -> int | None:
        value = text.get(key)
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    return ModelInfo(
        path=folder, format="safetensors", architecture=str(config.get("model_type") or "unknown"),
        name=str(archs[0]) if archs else None, parameter_count=sum(sizes.values()),
        layers=number("num_hidden_layers"),
        hidden_size=number("hidden_size"), attention_heads=number("num_attention_heads"),
        kv_heads=number("num_key_value_heads") or number("num_attention_heads"),
        context_length=number("max_position_embeddings"), quantization=_quant_label(text, dtypes),
        tensor_types=MappingProxyType(dict(dtypes.most_common())),
        file_size=sum(p.stat().st_size for p in folder.glob("*.safetensors")),
        chat_template=_dir_template(folder, tok_config), special_tokens=_dir_special_tokens(text, tok_config),
        vocab_size=number("vocab_size"), embeddings=EmbeddingCounts.of(sizes.items()),
    )


def inspect_path(path: str | Path) -> ModelInfo:
    """Describe a local model: a .gguf file or a directory with config.json and safetensors."""
    path = Path(path)
    if path.is_dir():
        return _inspect_dir(path)
    if path.is_file():
        return _inspect_gguf(path)
    raise ModelFormatError(f"{path} does not exist")
