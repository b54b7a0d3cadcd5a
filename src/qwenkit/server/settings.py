"""Server settings: ONE pydantic-settings model fed by CLI flags, ``QWENKIT_*`` env vars and a config file.

Precedence is flags > environment > config file > defaults. Flags arrive as init keyword arguments
(only the ones the user gave); the config file (TOML or YAML, chosen by extension) is named by the
``config_file`` argument or ``QWENKIT_CONFIG_FILE``.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict

from qwenkit.defaults import MAX_CONTEXT, MIN_CONTEXT
from qwenkit.engine.image_prompt import CEILING, ImageRules
from qwenkit.engine.vllm_settings import VllmSettings, parse_executor, parse_quantization
from qwenkit.errors import UsageError
from qwenkit.media import FetchPolicy, PixelBudget

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

ENV_PREFIX = "QWENKIT_"
_VLLM_FIELDS = (
    "tensor_parallel_size", "pipeline_parallel_size", "data_parallel_size", "distributed_executor",
    "gpu_memory_utilization", "quantization", "enable_prefix_caching", "enforce_eager",
)
CONFIG_ENV = "QWENKIT_CONFIG_FILE"


def _read_toml(text: str) -> Any:
    return tomllib.loads(text)


def _read_yaml(text: str) -> Any:
    try:
        import yaml
    except ImportError as exc:
        from qwenkit.errors import MissingDependencyError

        raise MissingDependencyError.for_extra("pyyaml", "serve") from exc
    return yaml.safe_load(text)


CONFIG_READERS: dict[str, Callable[[str], Any]] = {
    ".toml": _read_toml,
    ".yaml": _read_yaml,
    ".yml": _read_yaml,
    ".json": json.loads,
}


def read_config_file(path: Path) -> dict[str, Any]:
    """A config file's settings; a ``[server]`` table, if present, holds them."""
    reader = CONFIG_READERS.get(path.suffix.lower())
    if reader is None:
        known = ", ".join(sorted(CONFIG_READERS))
        raise UsageError(f"config file {path} must end in one of: {known}", param="config")
    try:
        data = reader(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"cannot read config file {path}: {exc.strerror or exc}", param="config") from exc
    except Exception as exc:  # each format raises its own parse error type
        raise UsageError(f"config file {path} is not valid: {exc}", param="config") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UsageError(f"config file {path} must hold a table of settings", param="config")
    server = data.get("server", data)
    if not isinstance(server, dict):
        raise UsageError(f"config file {path}: [server] must be a table", param="config")
    return {str(k).replace("-", "_"): v for k, v in server.items()}


class ConfigFileSource(PydanticBaseSettingsSource):
    """The config file layer: below the environment, above the defaults."""

    def __init__(self, settings_cls: type[BaseSettings], init_kwargs: dict[str, Any]) -> None:
        super().__init__(settings_cls)
        named = init_kwargs.get("config_file") or os.environ.get(CONFIG_ENV)
        self._path = Path(named) if named else None

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # __call__ reads the whole file at once

    def __call__(self) -> dict[str, Any]:
        if self._path is None:
            return {}
        known = set(self.settings_cls.model_fields)
        values = read_config_file(self._path)
        unknown = sorted(set(values) - known)
        if unknown:
            raise UsageError(
                f"config file {self._path}: unknown setting(s): {', '.join(unknown)}", param="config"
            )
        return values


class ServerSettings(BaseSettings):
    """Everything ``qwenkit serve`` can be told; see ``qwenkit serve --help`` for the flags."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", validate_default=True)

    model: str | None = Field(default=None, description="model reference (default: the default model)")
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    backend: str = "auto"
    parallel: int = Field(default=4, ge=1, le=256)
    context: int = Field(default=4096, ge=MIN_CONTEXT, le=MAX_CONTEXT)
    threads: int | None = Field(default=None, ge=1)
    served_model_name: str | None = None
    api_keys: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="accepted keys, 'secret' or 'name:secret'"
    )
    api_keys_file: Path | None = None
    lora: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="LoRA adapters served by name, each 'name=path'"
    )
    log_prompts: bool = False
    log_level: str = "info"
    max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    request_timeout: float = Field(default=600.0, ge=0.0, description="seconds per request; 0: no limit")
    drain_timeout: float = Field(default=30.0, ge=0.0)
    rate_limit_rpm: int | None = Field(default=None, ge=1)
    rate_limit_tpm: int | None = Field(default=None, ge=1)
    max_concurrent_per_key: int | None = Field(default=None, ge=1)
    max_queue: int = Field(default=64, ge=0)
    queue_timeout: float = Field(default=30.0, ge=0.0)
    config_file: Path | None = None
    # Images (vision models): hosts whose image URLs are fetched (none: fetching is off), the pixel
    # ceiling of a request that names none, and llama.cpp's vision projector when not beside the model.
    image_fetch_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="'cdn.example.com', '*.example.com' or '*' (any public host)"
    )
    image_max_pixels: int | None = Field(default=None, ge=56 * 56)
    mmproj: str | None = None
    # vLLM only (--backend vllm); None: not given, vLLM's default.
    tensor_parallel_size: int | None = Field(default=None, ge=1)
    pipeline_parallel_size: int | None = Field(default=None, ge=1)
    data_parallel_size: int | None = Field(default=None, ge=1)
    distributed_executor: str | None = Field(default=None, description="mp or ray")
    gpu_memory_utilization: float | None = Field(default=None, gt=0.0, le=1.0)
    quantization: str | None = Field(default=None, description="awq, gptq or fp8")
    enable_prefix_caching: bool | None = None
    enforce_eager: bool | None = None

    @field_validator("api_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: Any) -> Any:
        """``QWENKIT_API_KEYS=a,b c`` as well as a JSON list (the formats ``auth`` documents)."""
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [part for part in re.split(r"[,\s]+", text) if part]
        return value

    @field_validator("lora", "image_fetch_hosts", mode="before")
    @classmethod
    def _split_lora(cls, value: Any) -> Any:
        """``a,b c`` from the environment; a repeated flag's items may be such lists too."""
        if isinstance(value, str):
            value = [value]
        if isinstance(value, list) and all(isinstance(item, str) for item in value):
            return [part for item in value for part in re.split(r"[,\s]+", item.strip()) if part]
        return value

    @field_validator("lora")
    @classmethod
    def _check_lora(cls, value: list[str]) -> list[str]:
        names: set[str] = set()
        for item in value:
            name, sep, path = item.partition("=")
            if not sep or not name.strip() or not path.strip():
                raise ValueError(f"{item!r} is not name=path")
            if name in names:
                raise ValueError(f"adapter name {name!r} is given twice")
            names.add(name)
        return value

    @property
    def lora_pairs(self) -> tuple[tuple[str, str], ...]:
        return tuple((name, path) for name, _, path in (item.partition("=") for item in self.lora))

    @property
    def image_rules(self) -> ImageRules:
        """What requests' images may be: never this machine's files; URLs only from the named hosts."""
        ceiling = self.image_max_pixels
        budget = PixelBudget() if ceiling is None else PixelBudget(max_pixels=ceiling)
        fetch = FetchPolicy(allowed_hosts=tuple(self.image_fetch_hosts))
        return ImageRules(allow_files=False, fetch=fetch, default_budget=budget.within(CEILING))

    @property
    def vllm_settings(self) -> VllmSettings | None:
        """The vLLM settings given (flags, environment or file), or None when none was."""
        given = {name: getattr(self, name) for name in _VLLM_FIELDS if getattr(self, name) is not None}
        if not given:
            return None
        given["distributed_executor"] = parse_executor(given.get("distributed_executor"))
        given["quantization"] = parse_quantization(given.get("quantization"))
        return VllmSettings(**given)

    @field_validator("log_level")
    @classmethod
    def _level(cls, value: str) -> str:
        levels = ("critical", "error", "warning", "info", "debug")
        if value.lower() not in levels:
            raise ValueError(f"log_level must be one of {', '.join(levels)}")
        return value.lower()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        init_kwargs = getattr(init_settings, "init_kwargs", {})
        return (init_settings, env_settings, ConfigFileSource(settings_cls, init_kwargs))


def load_settings(**flags: Any) -> ServerSettings:
    """Settings from flags (None means "not given"), the environment and the config file."""
    from pydantic import ValidationError

    given = {k: v for k, v in flags.items() if v is not None and v != [] and v != ()}
    try:
        return ServerSettings(**given)
    except ValidationError as exc:
        first = exc.errors()[0]
        name = ".".join(str(p) for p in first["loc"]) or "settings"
        raise UsageError(f"invalid setting {name}: {first['msg']}", param=name) from exc
