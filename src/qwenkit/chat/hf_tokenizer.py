"""A ``Tokenizer`` over Hugging Face's ``tokenizers`` library (tokenizer.json + tokenizer_config.json).

``encode_text`` runs a second tokenizer built from the same tokenizer.json with its added-token list
emptied: that one cannot match ``<|im_start|>`` *or* non-special added tokens like ``<think>``
(``encode_special_tokens=True`` would still match the latter), yet keeps the normalizer,
pre-tokenizer and BPE model, so ordinary text tokenizes exactly as the full tokenizer does.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import Any

from qwenkit.errors import MissingDependencyError, ModelFormatError, UsageError

# Tokens that end a chat turn in every Qwen vocabulary, added to the configured eos token.
CHAT_END_TOKENS = ("<|im_end|>", "<|endoftext|>")
CHAT_TEMPLATE_FILE = "chat_template.jinja"
PROCESSOR_TEMPLATE_FILE = "chat_template.json"  # {"chat_template": "..."}, next to a processor's config


def _processor_template(path: Path) -> str | None:
    try:
        value = json.loads(path.read_text(encoding="utf-8")).get("chat_template")
    except (OSError, ValueError, AttributeError) as exc:
        raise ModelFormatError(f"{path} is not a chat template file: {exc}") from None
    return value if isinstance(value, str) else None


@lru_cache(maxsize=1)
def byte_decoder() -> Mapping[str, int]:
    """Inverse of GPT-2's bytes_to_unicode: the printable character each raw byte is spelled with."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    mapping: dict[str, int] = {chr(b): b for b in printable}
    extra = 0
    for b in range(256):
        if b not in printable:
            mapping[chr(256 + extra)] = b
            extra += 1
    return MappingProxyType(mapping)


def _import_tokenizers() -> Any:
    try:
        import tokenizers
    except ImportError as exc:
        raise MissingDependencyError.for_extra("tokenizers", "hf") from exc
    return tokenizers


def _config_template(config: Mapping[str, Any]) -> str | None:
    """``chat_template`` is a string, or a list of {name, template} where "default" is the chat one."""
    value = config.get("chat_template")
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        named = {t.get("name"): t.get("template") for t in value if isinstance(t, dict)}
        chosen = named.get("default")
        return chosen if isinstance(chosen, str) else None
    return None


def _token_text(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("content"), str):
        return str(value["content"])
    return None


class HFTokenizer:
    """The chat layer's ``Tokenizer`` protocol for byte-level BPE models such as Qwen."""

    def __init__(
        self, tokenizer_json: str, config: Mapping[str, Any], *, chat_template: str | None = None
    ) -> None:
        tokenizers = _import_tokenizers()
        try:
            data = json.loads(tokenizer_json)
            self._full = tokenizers.Tokenizer.from_str(tokenizer_json)
            plain = dict(data, added_tokens=[])
            self._plain = tokenizers.Tokenizer.from_str(json.dumps(plain))
        except Exception as exc:  # tokenizers raises plain Exception on malformed JSON
            raise ModelFormatError(f"tokenizer.json could not be loaded: {exc}") from exc
        added = {t["content"]: int(t["id"]) for t in data.get("added_tokens", []) if "content" in t}
        self._special = MappingProxyType(added)
        self._special_by_id = {i: text for text, i in added.items()}
        self._byte_level = _is_byte_level(data)
        self._bytes_cache: dict[int, bytes] = {}
        self._template = chat_template if chat_template is not None else _config_template(config)
        eos_texts = [_token_text(config.get("eos_token")), *CHAT_END_TOKENS]
        self._eos = frozenset(added[t] for t in eos_texts if t is not None and t in added)

    @classmethod
    def from_files(
        cls,
        tokenizer_json: str | Path,
        tokenizer_config_json: str | Path | None = None,
        *,
        chat_template: str | None = None,
    ) -> HFTokenizer:
        """``chat_template`` overrides the config's (e.g. the one read from a GGUF file)."""
        try:
            text = Path(tokenizer_json).read_text(encoding="utf-8")
            config = (
                json.loads(Path(tokenizer_config_json).read_text(encoding="utf-8"))
                if tokenizer_config_json
                else {}
            )
        except OSError as exc:
            raise ModelFormatError(f"cannot read tokenizer files: {exc}") from exc
        except json.JSONDecodeError as exc:
            raise ModelFormatError(f"{tokenizer_config_json} is not valid JSON: {exc}") from exc
        return cls(text, config if isinstance(config, dict) else {}, chat_template=chat_template)

    @classmethod
    def from_dir(cls, path: str | Path, *, chat_template: str | None = None) -> HFTokenizer:
        """A model or tokenizer directory; a ``chat_template.jinja`` there beats the config's template,
        and so does a ``chat_template.json`` (where Qwen2-VL and Qwen2.5-VL keep theirs)."""
        root = Path(path)
        if not (root / "tokenizer.json").is_file():
            raise UsageError(f"no tokenizer.json in {root}", param="path")
        config = root / "tokenizer_config.json"
        template_file = root / CHAT_TEMPLATE_FILE
        if chat_template is None and template_file.is_file():
            chat_template = template_file.read_text(encoding="utf-8")
        if chat_template is None and (root / PROCESSOR_TEMPLATE_FILE).is_file():
            chat_template = _processor_template(root / PROCESSOR_TEMPLATE_FILE)
        return cls.from_files(
            root / "tokenizer.json", config if config.is_file() else None, chat_template=chat_template
        )

    @property
    def special_tokens(self) -> Mapping[str, int]:
        return self._special

    @property
    def eos_token_ids(self) -> frozenset[int]:
        return self._eos

    @property
    def chat_template(self) -> str | None:
        return self._template

    @property
    def vocab_size(self) -> int:
        return int(self._full.get_vocab_size(with_added_tokens=True))

    def encode_text(self, text: str) -> list[int]:
        if not text:
            return []
        return list(self._plain.encode(text, add_special_tokens=False).ids)

    def token_bytes(self, token_id: int) -> bytes:
        cached = self._bytes_cache.get(token_id)
        if cached is None:
            cached = self._bytes_cache[token_id] = self._token_bytes(token_id)
        return cached

    def _token_bytes(self, token_id: int) -> bytes:
        special = self._special_by_id.get(token_id)
        if special is not None:
            return special.encode("utf-8")
        piece = self._full.id_to_token(token_id)
        if piece is None:
            raise UsageError(f"token id {token_id} is outside the vocabulary", param="token_id")
        if not self._byte_level:
            return bytes(self.decode([token_id]).encode("utf-8"))
        table = byte_decoder()
        try:
            return bytes(table[ch] for ch in piece)
        except KeyError as exc:
            raise ModelFormatError(f"token {token_id} ({piece!r}) is not byte-level BPE") from exc

    def decode(self, ids: Sequence[int]) -> str:
        return str(self._full.decode(list(ids), skip_special_tokens=False))


def _is_byte_level(data: Mapping[str, Any]) -> bool:
    decoder = data.get("decoder") or {}
    kinds = [decoder.get("type")] + [
        d.get("type") for d in decoder.get("decoders", []) if isinstance(d, dict)
    ]
    return "ByteLevel" in kinds
