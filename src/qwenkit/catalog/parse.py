"""Turn the catalog's TOML tables into validated ``Variant`` objects.

A generation file holds ``generation``, shared ``[arch.*]`` and ``[encoders.*]`` presets, a
``[defaults]`` table (with optional ``[defaults.base]`` / ``[defaults.instruct]`` parts) and a list
of ``[[model]]`` entries. An entry is merged over the defaults, then every key is checked: an
unknown key, a bad enum value or an impossible number is an error that names the file and entry.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from enum import Enum
from typing import Any, TypeVar

from qwenkit.catalog.encoders import encoder_params
from qwenkit.catalog.schema import (
    VISION_KINDS,
    Architecture,
    Generation,
    Mirror,
    Modality,
    SamplingDefaults,
    Specialisation,
    Thinking,
    ToolFormat,
    Variant,
    VisionTower,
)
from qwenkit.errors import QwenkitError, UsageError


class CatalogDataError(QwenkitError):
    """The catalog's own data files are malformed: a packaging bug, not a user mistake."""

    code = "catalog_data_error"


# config.json key -> Architecture field. head_dim and num_key_value_heads may be absent from a
# config (then hidden/heads and num_attention_heads); qkv_bias / qk_norm are not config keys but
# facts of the model family (Qwen3 spells its absence of q/k/v bias "attention_bias": false).
ARCH_KEYS: Mapping[str, str] = {
    "num_hidden_layers": "layers",
    "hidden_size": "hidden_size",
    "num_attention_heads": "num_attention_heads",
    "num_key_value_heads": "num_kv_heads",
    "head_dim": "head_dim",
    "intermediate_size": "intermediate_size",
    "vocab_size": "vocab_size",
    "tie_word_embeddings": "tied_embeddings",
    "qkv_bias": "qkv_bias",
    "qk_norm": "qk_norm",
    "num_experts": "num_experts",
    "num_experts_per_tok": "num_active_experts",
    "moe_intermediate_size": "moe_intermediate_size",
    "shared_expert_intermediate_size": "shared_expert_intermediate_size",
    "rope_theta": "rope_theta",
    "rms_norm_eps": "rms_norm_eps",
    # hybrid attention (Qwen3-Next, Qwen3.5); attn_output_gate is a Qwen3.5 config key and a fact of
    # Qwen3-Next's attention (its config does not spell it)
    "attn_output_gate": "attn_output_gate",
    "full_attention_interval": "full_attention_interval",
    "linear_num_key_heads": "linear_num_key_heads",
    "linear_num_value_heads": "linear_num_value_heads",
    "linear_key_head_dim": "linear_key_head_dim",
    "linear_value_head_dim": "linear_value_head_dim",
    "linear_conv_kernel_dim": "linear_conv_kernel_dim",
}

ENTRY_KEYS = frozenset(
    {
        "id", "hf_repo", "display_name", "arch", "encoder", "arch_source", "params_total",
        "params_active", "context_native", "context_max", "modalities", "thinking", "tool_format",
        "sampling", "license", "specialisation", "gguf_repo", "gguf_file", "gguf_quants", "gguf_split",
        "mirrors", "instruct",
    }
)
FILE_KEYS = frozenset({"generation", "defaults", "arch", "encoders", "model"})
MIRROR_KEYS = frozenset({"kind", "quant", "filename", "size", "sha256", "packages", "version", "member"})
SAMPLING_KEYS = frozenset(
    {"temperature", "top_p", "top_k", "min_p", "presence_penalty", "repetition_penalty"}
)

# Licence names as the Hub's model cards spell them.
LICENSES = frozenset(
    {"apache-2.0", "qwen", "qwen-research", "tongyi-qianwen", "tongyi-qianwen-research"}
)

_COUNT = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([KMBT]?)\s*$", re.IGNORECASE)
_SCALE = {"": 1, "K": 10**3, "M": 10**6, "B": 10**9, "T": 10**12}

E = TypeVar("E", bound=Enum)


def parse_count(value: Any) -> int:
    """``"7.61B"`` -> 7_610_000_000; plain integers pass through."""
    if isinstance(value, bool):
        raise UsageError(f"expected a parameter count, got {value!r}")
    if isinstance(value, int):
        return value
    match = _COUNT.match(str(value))
    if not match:
        raise UsageError(f"expected a count like '7.61B' or '494M', got {value!r}")
    number, suffix = match.groups()
    return round(float(number) * _SCALE[suffix.upper()])


def _enum(cls: type[E], value: Any, what: str) -> E:
    try:
        return cls(value)
    except ValueError:
        valid = ", ".join(str(m.value) for m in cls)
        raise UsageError(f"{what} must be one of {valid}; got {value!r}") from None


def parse_sampling_presets(raw: Mapping[str, Any], source: str) -> dict[str, SamplingDefaults]:
    presets: dict[str, SamplingDefaults] = {}
    for name, values in raw.items():
        unknown = set(values) - SAMPLING_KEYS
        if unknown:
            raise CatalogDataError(f"{source}: sampling preset {name!r}: unknown keys {sorted(unknown)}")
        try:
            presets[name] = SamplingDefaults(**values)
        except TypeError as exc:
            raise CatalogDataError(f"{source}: sampling preset {name!r}: {exc}") from None
    return presets


# Generations whose post-trained checkpoints carry no -Instruct suffix (Qwen3-8B, Qwen3.5-27B).
_UNSUFFIXED_POST_TRAINED = frozenset({Generation.QWEN3, Generation.QWEN3_5})


def _is_instruct(model_id: str, generation: Generation, declared: Any = None) -> bool:
    """Post-trained models: ``-instruct`` / ``-chat`` ids, and Qwen3/Qwen3.5 ids without ``-base``.

    An entry may say ``instruct = true`` itself when its name follows neither rule (QwQ-32B).
    """
    if declared is not None:
        if not isinstance(declared, bool):
            raise UsageError(f"instruct must be true or false, got {declared!r}")
        return declared
    if model_id.endswith("-base"):
        return False
    return model_id.endswith(("-instruct", "-chat")) or generation in _UNSUFFIXED_POST_TRAINED


class FileParser:
    """Parses one generation file; holds its presets while the entries are built."""

    def __init__(self, raw: Mapping[str, Any], source: str, sampling: Mapping[str, SamplingDefaults]):
        self.source = source
        unknown = set(raw) - FILE_KEYS
        if unknown:
            raise CatalogDataError(f"{source}: unknown top-level keys {sorted(unknown)}")
        try:
            self.generation = _enum(Generation, raw.get("generation"), "generation")
        except UsageError as exc:
            raise CatalogDataError(f"{source}: {exc.message}") from None
        self.arch_presets: Mapping[str, Mapping[str, Any]] = raw.get("arch", {})
        self.encoders: Mapping[str, Mapping[str, Any]] = raw.get("encoders", {})
        defaults = dict(raw.get("defaults", {}))
        self.kind_defaults = {False: defaults.pop("base", {}), True: defaults.pop("instruct", {})}
        self.defaults = defaults
        self.sampling = sampling
        self.models: list[Mapping[str, Any]] = raw.get("model", [])

    def variants(self) -> list[Variant]:
        return [self._entry(raw) for raw in self.models]

    def _entry(self, raw: Mapping[str, Any]) -> Variant:
        model_id = str(raw.get("id", "<entry without id>"))
        try:
            instruct = _is_instruct(model_id, self.generation, raw.get("instruct"))
            merged = {**self.defaults, **self.kind_defaults[instruct], **raw}
            unknown = set(merged) - ENTRY_KEYS
            if unknown:
                raise UsageError(f"unknown keys {sorted(unknown)}")
            return self._build(merged, instruct)
        except KeyError as exc:
            raise CatalogDataError(f"{self.source}: {model_id}: missing key {exc}") from None
        except (UsageError, TypeError, ValueError) as exc:
            message = exc.message if isinstance(exc, UsageError) else str(exc)
            raise CatalogDataError(f"{self.source}: {model_id}: {message}") from None

    def _build(self, e: Mapping[str, Any], instruct: bool) -> Variant:
        model_id, hf_repo = e["id"], e["hf_repo"]
        name = e.get("display_name", hf_repo.split("/")[-1])
        if name.lower() != model_id:
            raise UsageError(f"id must be the lower-cased repo name {name.lower()!r}")
        arch = self._arch(e["arch"], e.get("encoder"))
        gguf_repo, gguf_files = self._gguf(e, model_id, name, hf_repo)
        return Variant(
            id=model_id,
            display_name=name,
            generation=self.generation,
            specialisation=_enum(Specialisation, e["specialisation"], "specialisation"),
            instruct=instruct,
            params_total=parse_count(e["params_total"]),
            params_active=parse_count(e.get("params_active", e["params_total"])),
            arch=arch,
            arch_source=e.get("arch_source", f"https://huggingface.co/{hf_repo}/blob/main/config.json"),
            context_native=int(e["context_native"]),
            context_max=int(e["context_max"]),
            modalities=tuple(_enum(Modality, m, "modality") for m in e["modalities"]),
            thinking=_enum(Thinking, e["thinking"], "thinking"),
            tool_format=_enum(ToolFormat, e["tool_format"], "tool_format"),
            sampling=self._sampling(e["sampling"]),
            license=self._license(e["license"]),
            hf_repo=hf_repo,
            gguf_repo=gguf_repo,
            gguf_files=gguf_files,
            mirrors=tuple(self._mirror(m) for m in e.get("mirrors", ())),
        )

    def _arch(self, ref: Any, encoder: str | list[str] | None) -> Architecture:
        numbers = dict(ref) if isinstance(ref, Mapping) else {"preset": ref}
        preset = numbers.pop("preset", None)
        if preset is not None:
            if preset not in self.arch_presets:
                raise UsageError(f"unknown arch preset {preset!r} (known: {sorted(self.arch_presets)})")
            numbers = {**self.arch_presets[preset], **numbers}
        unknown = set(numbers) - set(ARCH_KEYS)
        if unknown:
            raise UsageError(f"unknown architecture keys {sorted(unknown)}")
        fields = {ARCH_KEYS[k]: v for k, v in numbers.items()}
        fields.setdefault("num_kv_heads", fields["num_attention_heads"])
        fields.setdefault("head_dim", fields["hidden_size"] // fields["num_attention_heads"])
        if encoder is not None:
            names = [encoder] if isinstance(encoder, str) else list(encoder)
            fields["encoder_params"] = sum(self._encoder(name, fields["hidden_size"]) for name in names)
            towers = [self._vision(name) for name in names]
            fields["vision"] = next((tower for tower in towers if tower is not None), None)
        return Architecture(**fields)

    def _vision(self, name: str) -> VisionTower | None:
        spec = self.encoders.get(name) or {}
        kind = spec.get("kind", "")
        return VisionTower.from_preset(kind, spec) if kind in VISION_KINDS else None

    def _encoder(self, name: str, text_hidden: int) -> int:
        """One ``[encoders.*]`` preset counted; an entry may name several (Omni: vision and audio)."""
        spec = dict(self.encoders.get(name) or {})
        if not spec:
            raise UsageError(f"unknown encoder preset {name!r} (known: {sorted(self.encoders)})")
        kind = spec.pop("kind", "")
        return encoder_params(kind, spec, text_hidden=text_hidden)

    def _sampling(self, modes: Mapping[str, str]) -> dict[str, SamplingDefaults]:
        out = {}
        for mode, preset in modes.items():
            if mode not in ("default", "thinking", "non_thinking"):
                raise UsageError(f"sampling mode {mode!r} must be default, thinking or non_thinking")
            if preset not in self.sampling:
                raise UsageError(f"unknown sampling preset {preset!r} (known: {sorted(self.sampling)})")
            out[mode] = self.sampling[preset]
        return out

    @staticmethod
    def _license(value: str) -> str:
        if value not in LICENSES:
            raise UsageError(f"license must be one of {sorted(LICENSES)}; got {value!r}")
        return value

    @staticmethod
    def _gguf(
        e: Mapping[str, Any], model_id: str, name: str, hf_repo: str
    ) -> tuple[str | None, dict[str, str]]:
        """``gguf_quants`` present means Qwen publishes a GGUF repo (an empty list: file names unchecked).

        ``gguf_repo`` / ``gguf_file`` are patterns over {id}, {id_} (dots as underscores, Qwen2's
        style), {name}, {hf_repo}, {quant} and {QUANT}; ``gguf_split`` gives the shard count.
        """
        if "gguf_quants" not in e:
            return None, {}
        fields = {"id": model_id, "id_": model_id.replace(".", "_"), "name": name, "hf_repo": hf_repo}
        repo = str(e["gguf_repo"]).format(**fields)
        splits: Mapping[str, int] = e.get("gguf_split", {})
        unknown = set(splits) - set(e["gguf_quants"])
        if unknown:
            raise UsageError(f"gguf_split names quants not in gguf_quants: {sorted(unknown)}")
        files = {}
        for quant in e["gguf_quants"]:
            file = str(e["gguf_file"]).format(**fields, quant=quant, QUANT=quant.upper())
            if quant in splits:  # llama.cpp opens shard 1 and finds the rest
                file = file.removesuffix(".gguf") + f"-00001-of-{int(splits[quant]):05d}.gguf"
            files[quant] = file
        return repo, files

    @staticmethod
    def _mirror(raw: Mapping[str, Any]) -> Mirror:
        unknown = set(raw) - MIRROR_KEYS
        if unknown:
            raise UsageError(f"mirror: unknown keys {sorted(unknown)}")
        fields = dict(raw)
        fields["packages"] = tuple(fields.get("packages", ()))
        if not re.fullmatch(r"[0-9a-f]{64}", str(fields.get("sha256", ""))):
            raise UsageError("mirror: sha256 must be 64 lower-case hex digits")
        return Mirror(**fields)
