"""Loading a model for the transformers backend: device, dtype, quantization, tokenizer, adapters.

Every refusal (fp16 on CPU, bitsandbytes without a GPU, a missing adapter) is a clear
``UsageError`` / ``ModelNotFoundError`` raised before any weights are read.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qwenkit.chat.tokenizer import Tokenizer
from qwenkit.errors import MissingDependencyError, ModelFormatError, ModelNotFoundError, UsageError

_DTYPES = {
    "float32": "float32", "fp32": "float32", "bfloat16": "bfloat16", "bf16": "bfloat16",
    "float16": "float16", "fp16": "float16", "half": "float16",
}  # fmt: skip


def import_torch() -> Any:
    try:
        import torch
    except ImportError as exc:
        raise MissingDependencyError.for_extra("torch", "hf") from exc
    return torch


# name -> (torch, BitsAndBytesConfig) -> config
_QUANTIZATIONS: dict[str, Callable[[Any, Any], Any]] = {
    "int8": lambda torch, bnb: bnb(load_in_8bit=True),
    "nf4": lambda torch, bnb: bnb(
        load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.bfloat16
    ),
}


def resolve_device(requested: str, torch: Any) -> str:
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cpu":
        return "cpu"
    if requested == "cuda" or requested.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise UsageError(f"device {requested!r} asked for, but torch sees no CUDA GPU", param="device")
        return requested
    raise UsageError(f"unknown device {requested!r}: use auto, cpu or cuda[:N]", param="device")


def resolve_dtype(requested: str, device: str, torch: Any) -> Any:
    """auto: bf16 on GPUs that support it (else fp16), fp32 on CPU; fp16 is refused on CPU."""
    if requested == "auto":
        if device == "cpu":
            return torch.float32
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    name = _DTYPES.get(requested.lower())
    if name is None:
        choices = ", ".join(sorted(_DTYPES))
        raise UsageError(f"unknown dtype {requested!r}: use auto, {choices}", param="dtype")
    if name == "float16" and device == "cpu":
        raise UsageError(
            "float16 is not supported on CPU: most CPU kernels have no fp16 path, so it is slow and loses "
            "accuracy; use float32 (the default) or bfloat16",
            param="dtype",
        )
    return getattr(torch, name)


def quantization_config(name: str | None, device: str, torch: Any) -> Any:
    if name is None:
        return None
    builder = _QUANTIZATIONS.get(name)
    if builder is None:
        choices = " or ".join(_QUANTIZATIONS)
        raise UsageError(f"unknown quantization {name!r}: use {choices}", param="quantization")
    if device == "cpu":
        raise UsageError(
            f"quantization={name} uses bitsandbytes, which needs a CUDA GPU; on CPU load the model "
            "unquantized, or use a GGUF with the llama.cpp backend",
            param="quantization",
        )
    try:
        import bitsandbytes  # noqa: F401
        from transformers import BitsAndBytesConfig
    except ImportError as exc:
        raise MissingDependencyError.for_extra("bitsandbytes", "hf") from exc
    return builder(torch, BitsAndBytesConfig)


@dataclass(frozen=True)
class ModelSource:
    """Where the weights are: a safetensors directory, or one GGUF file inside ``directory``."""

    directory: Path
    gguf_file: str | None = None

    @classmethod
    def locate(cls, path_or_dir: str | Path) -> ModelSource:
        path = Path(path_or_dir).expanduser()
        if path.is_file():
            if path.suffix != ".gguf":
                raise ModelFormatError(f"{path} is neither a model directory nor a .gguf file")
            return cls(path.parent, path.name)
        if not path.is_dir():
            raise ModelNotFoundError(f"no model at {path}")
        if (path / "config.json").is_file():
            return cls(path)
        ggufs = sorted(p.name for p in path.glob("*.gguf"))
        if len(ggufs) == 1:
            return cls(path, ggufs[0])
        raise ModelFormatError(f"{path} has no config.json and {len(ggufs)} .gguf files: point at one file")

    def readable(self) -> ModelSource:
        """Where transformers reads it from: a GGUF's unpacked float32 checkpoint where the cache holds
        (or now takes) it, else the GGUF itself (engine/gguf_unpack.py)."""
        if self.gguf_file is None:
            return self
        from qwenkit.engine.gguf_unpack import unpacked

        folder = unpacked(self.directory / self.gguf_file)
        return self if folder is None else ModelSource(folder)

    def gguf_kwargs(self) -> dict[str, str]:
        return {"gguf_file": self.gguf_file} if self.gguf_file is not None else {}


def load_tokenizer(source: ModelSource) -> Tokenizer:
    from qwenkit.chat.hf_tokenizer import HFTokenizer

    if source.gguf_file is None:
        return HFTokenizer.from_dir(source.directory)
    from transformers import AutoTokenizer

    readable = source.readable()
    try:
        hf = AutoTokenizer.from_pretrained(readable.directory, **readable.gguf_kwargs())
    except ImportError as exc:
        raise MissingDependencyError(f"reading the tokenizer of a GGUF needs a package: {exc}") from exc
    except (OSError, ValueError, KeyError) as exc:
        raise ModelFormatError(f"no tokenizer could be read from {source.gguf_file}: {exc}") from exc
    return tokenizer_of(hf)


def tokenizer_of(hf: Any) -> Tokenizer:
    """Our tokenizer from a transformers one (its fast backend, end-of-sequence token and template)."""
    from qwenkit.chat.hf_tokenizer import HFTokenizer

    config = {"eos_token": hf.eos_token} if hf.eos_token else {}
    template = getattr(hf, "chat_template", None)
    return HFTokenizer(hf.backend_tokenizer.to_str(), config, chat_template=template)


def apply_adapters(model: Any, adapters: Sequence[str], quantized: bool) -> Any:
    """Full-precision: merge each LoRA into the weights (several add up). Quantized: one, unmerged."""
    if not adapters:
        return model
    try:
        from peft import PeftModel
    except ImportError as exc:
        raise MissingDependencyError.for_extra("peft", "hf") from exc
    for adapter in adapters:
        if not (Path(adapter) / "adapter_config.json").is_file():
            raise ModelNotFoundError(f"no PEFT adapter at {adapter} (adapter_config.json missing)")
    if quantized and len(adapters) > 1:
        raise UsageError(
            "several adapters on a bitsandbytes-quantized model are not supported: merge them offline, "
            "or load the model unquantized",
            param="adapters",
        )
    for adapter in adapters:
        try:
            model = PeftModel.from_pretrained(model, adapter)
            if not quantized:
                model = model.merge_and_unload()
        except (ValueError, KeyError, RuntimeError) as exc:
            raise ModelFormatError(f"adapter {adapter} does not fit this model: {exc}") from exc
    return model


def load_named_adapters(model: Any, named: Sequence[tuple[str, str]]) -> Any:
    """Adapters kept apart (not merged), each selected per row by name through peft's mixed batches."""
    if not named:
        return model
    try:
        from peft import PeftModel
    except ImportError as exc:
        raise MissingDependencyError.for_extra("peft", "hf") from exc
    for name, path in named:
        if not (Path(path) / "adapter_config.json").is_file():
            raise ModelNotFoundError(f"no PEFT adapter at {path} (adapter {name!r})")
    try:
        first, *rest = named
        model = PeftModel.from_pretrained(model, first[1], adapter_name=first[0])
        for name, path in rest:
            model.load_adapter(path, adapter_name=name)
    except (ValueError, KeyError, RuntimeError) as exc:
        raise ModelFormatError(f"an adapter does not fit this model: {exc}") from exc
    return model


def cache_kwarg(model: Any) -> str:
    """transformers 5 renamed ``past_key_values`` to ``cache``; ask the model which it takes."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"


def load_model(source: ModelSource, device: str, dtype: Any, quant: Any) -> Any:
    """A causal LM, or for a vision-language checkpoint (a ``vision_config``) its image-text model."""
    from transformers import AutoModelForCausalLM, AutoModelForImageTextToText

    source = source.readable()
    kwargs: dict[str, Any] = {"dtype": dtype, "attn_implementation": "sdpa", **source.gguf_kwargs()}
    if quant is not None:
        kwargs["quantization_config"] = quant
    if device != "cpu":
        kwargs["device_map"] = {"": device}
    auto = AutoModelForImageTextToText if _has_vision(source) else AutoModelForCausalLM
    try:
        return auto.from_pretrained(source.directory, **kwargs)
    except ImportError as exc:
        raise MissingDependencyError(f"loading {source.directory} needs a package: {exc}") from exc
    except (OSError, ValueError, KeyError) as exc:
        raise ModelFormatError(f"transformers could not load {source.directory}: {exc}") from exc


def _has_vision(source: ModelSource) -> bool:
    config = Path(source.directory) / "config.json"
    if source.gguf_file is not None or not config.is_file():
        return False
    try:
        return "vision_config" in json.loads(config.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
