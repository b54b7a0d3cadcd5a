"""``TuneConfig``: every setting of a fine-tuning run, from CLI flags, a TOML/YAML file, or Python.

One frozen dataclass feeds all three, so a flag, a file key and a keyword argument are the same name
(dashes become underscores). A value left as None is chosen by the recipe (``recipe.py``) from the
data size and the device; the chosen values are written into the run's report.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from dataclasses import dataclass, fields
from enum import Enum
from pathlib import Path
from typing import Any

import tomllib

from qwenkit.errors import UsageError


class DataFormat(str, Enum):
    AUTO = "auto"
    MESSAGES = "messages"
    SHAREGPT = "sharegpt"
    ALPACA = "alpaca"


class Thinking(str, Enum):
    """What happens to Qwen3 reasoning in the data. ``template``: what serving does by default."""

    TEMPLATE = "template"
    KEEP = "keep"
    DROP = "drop"


class Overlong(str, Enum):
    """Examples longer than ``max_length``: refused (listed), cut at the limit, or left out (counted)."""

    ERROR = "error"
    TRUNCATE = "truncate"
    SKIP = "skip"


_ENUMS: dict[str, type[Enum]] = {"data_format": DataFormat, "thinking": Thinking, "overlong": Overlong}
# What a config file may give each setting (flags arrive typed): checked before any comparison.
_FLOATS = frozenset({"lr", "lora_dropout", "eval_fraction", "epochs"})
_INTS = frozenset({"max_length", "lora_r", "lora_alpha", "max_steps", "batch_size", "grad_accum", "seed",
                   "eval_every", "save_every", "replay", "threads"})
_BOOLS = frozenset({"skip_invalid", "qlora", "probe", "resume"})
_STRINGS = frozenset({"base", "target", "device"})


@dataclass(frozen=True)
class TuneConfig:
    base: str
    data: Path
    output: Path
    eval_data: Path | None = None
    data_format: DataFormat = DataFormat.AUTO
    skip_invalid: bool = False
    eval_fraction: float = 0.1
    thinking: Thinking = Thinking.TEMPLATE
    max_length: int = 1024
    overlong: Overlong = Overlong.ERROR
    # LoRA; None: chosen from the data size by the recipe
    lora_r: int | None = None
    lora_alpha: int | None = None
    lora_dropout: float = 0.05
    target: str = "all-linear"
    qlora: bool = False
    # optimisation; None: chosen by the recipe
    epochs: float | None = None
    max_steps: int | None = None
    lr: float | None = None
    batch_size: int = 4
    grad_accum: int = 1
    seed: int = 0
    eval_every: int | None = None
    save_every: int | None = None
    # forgetting: how many of the base model's own answers to general prompts are mixed in (0: none)
    replay: int | None = None
    probe: bool = True
    device: str = "auto"
    threads: int | None = None
    resume: bool = False

    def __post_init__(self) -> None:
        _check_positive(self, ("max_length", "batch_size", "grad_accum"))
        _check_positive(
            self, ("lora_r", "lora_alpha", "max_steps", "eval_every", "save_every", "threads"), optional=True
        )
        if not 0.0 <= self.lora_dropout < 1.0:
            raise UsageError("lora_dropout must be in [0, 1)", param="lora_dropout")
        if not 0.0 <= self.eval_fraction < 0.5:
            raise UsageError("eval_fraction must be in [0, 0.5)", param="eval_fraction")
        if self.lr is not None and not 0.0 < self.lr < 1.0:
            raise UsageError("lr must be in (0, 1)", param="lr")
        if self.epochs is not None and self.epochs <= 0:
            raise UsageError("epochs must be positive", param="epochs")
        if self.replay is not None and self.replay < 0:
            raise UsageError("replay must be 0 or more", param="replay")
        if not self.target.strip():
            raise UsageError("target must name modules (e.g. all-linear, or q_proj,v_proj)", param="target")

    @classmethod
    def build(cls, values: dict[str, Any], file: Path | None = None) -> TuneConfig:
        """File values, overridden by explicit ``values`` (None means "not given"), validated."""
        merged = read_config_file(file) if file is not None else {}
        merged.update({k.replace("-", "_"): v for k, v in values.items() if v is not None})
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(merged) - set(known))
        if unknown:
            raise UsageError(f"unknown tune setting {unknown[0]!r}", param=unknown[0])
        for name in ("base", "data", "output"):
            if name not in merged:
                raise UsageError(f"the setting {name!r} is required (a flag or a key in the config file)")
        return cls(**{k: _coerce(k, v) for k, v in merged.items()})

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            out[f.name] = (
                value.value if isinstance(value, Enum) else str(value) if isinstance(value, Path) else value
            )
        return out

    def replace(self, **changes: Any) -> TuneConfig:
        return dataclasses.replace(self, **changes)


def _check_positive(config: TuneConfig, names: tuple[str, ...], optional: bool = False) -> None:
    for name in names:
        value = getattr(config, name)
        if value is None and optional:
            continue
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise UsageError(f"{name} must be a whole number of at least 1, got {value!r}", param=name)


def _coerce(name: str, value: Any) -> Any:
    if name in _ENUMS:
        kind = _ENUMS[name]
        try:
            return kind(value.value if isinstance(value, Enum) else value)
        except ValueError:
            choices = ", ".join(str(m.value) for m in kind)  # type: ignore[attr-defined]
            raise UsageError(f"{name} {value!r} is not one of: {choices}", param=name) from None
    if name in ("data", "output", "eval_data"):
        return Path(str(value)).expanduser()
    if name in _FLOATS:
        return _number(name, value)
    if name in _INTS and (isinstance(value, bool) or not isinstance(value, int)):
        raise UsageError(f"{name} must be a whole number, got {value!r}", param=name)
    if name in _BOOLS and not isinstance(value, bool):
        raise UsageError(f"{name} must be true or false, got {value!r}", param=name)
    if name in _STRINGS and not isinstance(value, str):
        raise UsageError(f"{name} must be text, got {value!r}", param=name)
    return value


def _number(name: str, value: Any) -> float:
    """A finite number; also from text, since YAML reads ``lr: 2e-4`` (no dot) as a string."""
    number: float | None = None
    if isinstance(value, (int, float, str)) and not isinstance(value, bool):
        with contextlib.suppress(ValueError):
            number = float(value)
    if number is None or not math.isfinite(number):
        raise UsageError(f"{name} must be a number, got {value!r}", param=name)
    return number


def read_config_file(path: Path) -> dict[str, Any]:
    """A TOML (``.toml``) or YAML (``.yaml``/``.yml``) mapping of settings; a ``[tune]`` table is accepted."""
    if not path.is_file():
        raise UsageError(f"no config file at {path}", param="config")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError(f"config file {path} is not UTF-8 text (byte {exc.start})", param="config") from None
    try:
        if path.suffix == ".toml":
            data: Any = tomllib.loads(text)
        elif path.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text) or {}
        else:
            raise UsageError(f"config file {path} must end in .toml, .yaml or .yml", param="config")
    except (tomllib.TOMLDecodeError, ValueError) as exc:
        raise UsageError(
            f"config file {path} is not valid: {' '.join(str(exc).split())}", param="config"
        ) from exc
    except Exception as exc:  # yaml.YAMLError, without importing yaml for TOML users
        if type(exc).__module__.startswith("yaml"):
            raise UsageError(f"config file {path} is not valid YAML: {exc}", param="config") from exc
        raise
    if isinstance(data, dict) and isinstance(data.get("tune"), dict):
        data = data["tune"]
    if not isinstance(data, dict):
        raise UsageError(f"config file {path} must hold a mapping of settings", param="config")
    return {str(k).replace("-", "_"): v for k, v in data.items()}
