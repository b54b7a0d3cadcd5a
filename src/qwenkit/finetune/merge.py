"""``qwenkit tune merge``: base + adapter -> one safetensors model directory that any runtime loads.

The directory holds the merged weights, the tokenizer with the model's chat template, and a
generation_config.json carrying Qwen's recommended sampling for the model (the catalog's values, else
the template family's), so ``transformers`` and ``qwenkit convert`` users get the same defaults as
``qwenkit run``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from qwenkit.errors import ModelFormatError, UsageError
from qwenkit.finetune.base import load_base, locate_base

MERGE_DTYPES = ("bfloat16", "float16", "float32")


def adapter_dir(path: Path) -> Path:
    """An adapter folder, or a ``tune`` output folder holding one."""
    for candidate in (path, path / "adapter"):
        if (candidate / "adapter_config.json").is_file():
            return candidate
    raise UsageError(f"no LoRA adapter at {path} (adapter_config.json missing)", param="adapter")


def generation_config(tokenizer: Any, variant: Any) -> dict[str, Any]:
    from qwenkit.chat.template import classify_template
    from qwenkit.engine.params import fallback_defaults

    if variant is not None:
        s = variant.sampling_for(None)
    else:
        s = fallback_defaults(classify_template(tokenizer.chat_template), None)
    end = sorted({tokenizer.special_tokens["<|im_end|>"], *tokenizer.eos_token_ids})
    config: dict[str, Any] = {
        "do_sample": True, "temperature": s.temperature, "top_p": s.top_p, "eos_token_id": end,
        "pad_token_id": min(tokenizer.eos_token_ids),
    }  # fmt: skip
    if s.top_k:
        config["top_k"] = s.top_k
    if s.repetition_penalty != 1.0:
        config["repetition_penalty"] = s.repetition_penalty
    return config


def _save_tokenizer(base_path: Path, out: Path) -> None:
    from transformers import AutoTokenizer

    from qwenkit.engine.transformers_loading import ModelSource

    source = ModelSource.locate(base_path).readable()
    try:
        AutoTokenizer.from_pretrained(source.directory, **source.gguf_kwargs()).save_pretrained(out)
    except (OSError, ValueError) as exc:
        raise ModelFormatError(f"the tokenizer of {base_path} could not be written: {exc}") from exc


def merge(base: str, adapter: str | Path, output: str | Path, *, dtype: str = "bfloat16") -> Path:
    """Merge ``adapter`` into ``base`` and write a model directory at ``output``."""
    import torch
    from peft import PeftModel

    if dtype not in MERGE_DTYPES:
        raise UsageError(f"dtype {dtype!r} is not one of: {', '.join(MERGE_DTYPES)}", param="dtype")
    folder = adapter_dir(Path(adapter))
    out = Path(output)
    if out.exists() and any(out.iterdir()):
        raise UsageError(f"{out} exists and is not empty: choose a new output directory", param="output")
    ref = locate_base(base)
    loaded = load_base(ref.path, ref.architecture, "cpu", qlora=False, threads=None)
    try:
        model = PeftModel.from_pretrained(loaded.model, str(folder)).merge_and_unload()
    except (ValueError, KeyError, RuntimeError) as exc:
        raise ModelFormatError(f"adapter {folder} does not fit {base}: {exc}") from exc
    model = model.to(getattr(torch, dtype))
    model.config.use_cache = True
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    _save_tokenizer(ref.path, out)
    gen = generation_config(loaded.tokenizer, ref.variant)
    (out / "generation_config.json").write_text(json.dumps(gen, indent=2) + "\n")
    return out
