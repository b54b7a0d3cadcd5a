"""Load the Qwen family catalog from the package's TOML data and answer questions about it."""

from __future__ import annotations

import dataclasses
import difflib
import functools
import sys
from collections.abc import Iterable
from enum import Enum
from importlib import resources
from typing import Any

from qwenkit.catalog.parse import CatalogDataError, FileParser, parse_sampling_presets
from qwenkit.catalog.schema import Generation, Specialisation, Thinking, Variant
from qwenkit.errors import ModelNotFoundError, UsageError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

SAMPLING_FILE = "sampling.toml"


class Catalog:
    """An immutable, ordered set of variants with lookup by id (or by Hugging Face repo name)."""

    def __init__(self, variants: Iterable[Variant]):
        self._variants = tuple(variants)
        index: dict[str, Variant] = {}
        for v in self._variants:
            for key in {v.id, v.hf_repo.lower()}:
                if key in index:
                    raise CatalogDataError(f"catalog: duplicate model id or repo {key!r}")
                index[key] = v
        self._index = index

    def __len__(self) -> int:
        return len(self._variants)

    def __contains__(self, model_id: object) -> bool:
        return isinstance(model_id, str) and model_id.strip().lower() in self._index

    def all(self) -> list[Variant]:
        return list(self._variants)

    def ids(self) -> list[str]:
        return [v.id for v in self._variants]

    def get(self, model_id: str) -> Variant:
        """Exact id (case-insensitive) or ``Qwen/<Repo>``; otherwise suggest the closest ids."""
        key = model_id.strip().lower()
        found = self._index.get(key)
        if found is not None:
            return found
        close = difflib.get_close_matches(key, self.ids(), n=3, cutoff=0.6)
        hint = f"did you mean: {', '.join(close)}?" if close else "list the known ones with: qwenkit catalog"
        raise ModelNotFoundError(f"no Qwen model {model_id!r} in the catalog", param="model", hint=hint)

    def filter(
        self,
        generation: Generation | str | None = None,
        specialisation: Specialisation | str | None = None,
        *,
        instruct: bool | None = None,
        moe: bool | None = None,
        thinking: Thinking | str | None = None,
        gguf: bool | None = None,
    ) -> list[Variant]:
        """Variants matching every given criterion (None means any); bad enum names are a UsageError."""
        gen = _coerce(Generation, generation, "generation")
        spec = _coerce(Specialisation, specialisation, "specialisation")
        think = _coerce(Thinking, thinking, "thinking")
        return [
            v
            for v in self._variants
            if (gen is None or v.generation is gen)
            and (spec is None or v.specialisation is spec)
            and (think is None or v.thinking is think)
            and (instruct is None or v.instruct is instruct)
            and (moe is None or v.is_moe is moe)
            and (gguf is None or bool(v.gguf_repo) is gguf)
        ]


def _coerce(cls: type[Enum], value: Any, what: str) -> Any:
    if value is None or isinstance(value, cls):
        return value
    try:
        return cls(str(value).strip().lower())
    except ValueError:
        valid = ", ".join(str(m.value) for m in cls)
        raise UsageError(f"unknown {what} {value!r}; choose one of: {valid}", param=what) from None


def _read_toml(name: str) -> dict[str, Any]:
    text = resources.files("qwenkit.catalog").joinpath("data", name).read_text(encoding="utf-8")
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CatalogDataError(f"{name}: invalid TOML: {exc}") from None


def _data_files() -> list[str]:
    folder = resources.files("qwenkit.catalog").joinpath("data")
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".toml") and p.name != SAMPLING_FILE)


@functools.lru_cache(maxsize=1)
def load_catalog() -> Catalog:
    """Parse and validate every data file once per process."""
    sampling = parse_sampling_presets(_read_toml(SAMPLING_FILE), SAMPLING_FILE)
    variants: list[Variant] = []
    for name in _data_files():
        variants.extend(FileParser(_read_toml(name), name, sampling).variants())
    return Catalog(variants)


def _plain(value: Any) -> Any:
    """Enums to their values, tuples and mappings to JSON types, recursively."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def variant_to_dict(v: Variant) -> dict[str, Any]:
    """Every field of a variant, JSON-ready, plus the numbers derived from its architecture."""
    out: dict[str, Any] = _plain(dataclasses.asdict(v))
    out["is_moe"] = v.is_moe
    out["parameter_count"] = v.arch.parameter_count()
    out["text_parameter_count"] = v.arch.text_parameter_count()
    out["active_parameter_count"] = v.arch.active_parameter_count()
    out["kv_bytes_per_token_bf16"] = v.arch.kv_bytes_per_token(2.0)
    out["recurrent_state_bytes_per_sequence"] = v.arch.recurrent_state_bytes()  # hybrid models only
    return out
