"""The base model for training: resolved like any qwenkit reference, checked to be a Qwen model
before a weight is read, then loaded through the transformers backend's own loading code (a GGUF is
dequantized), with per-device defaults: CPU fp32, CUDA bf16, ``qlora`` nf4 through bitsandbytes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qwenkit.catalog.schema import Variant
from qwenkit.chat.encode import encode_chat
from qwenkit.chat.tokenizer import Tokenizer
from qwenkit.errors import UsageError

QWEN_ARCHITECTURES = ("qwen2", "qwen3", "qwen2_moe", "qwen3_moe", "qwen2moe", "qwen3moe")


@dataclass
class Base:
    path: Path
    tokenizer: Tokenizer
    model: Any
    device: str
    dtype: Any
    quantized: bool
    architecture: str


@dataclass(frozen=True)
class BaseRef:
    path: Path
    architecture: str
    variant: Variant | None


def locate_base(ref: str) -> BaseRef:
    """The local path of ``ref`` (fetched if needed) and its architecture; a non-Qwen model is refused."""
    from qwenkit.models import ensure_local, resolve
    from qwenkit.models.inspect import inspect_path

    local = ensure_local(resolve(ref), progress=True)
    arch = inspect_path(local.path).architecture.lower()
    if arch not in QWEN_ARCHITECTURES:
        raise UsageError(
            f"{ref} is a {arch!r} model; qwenkit tune trains Qwen models (qwen2, qwen3 and their MoE)",
            param="base",
        )
    return BaseRef(local.path, arch, local.variant)


def load_base(path: Path, arch: str, device: str, qlora: bool, threads: int | None) -> Base:
    from qwenkit.engine.transformers_loading import (
        ModelSource,
        import_torch,
        load_model,
        load_tokenizer,
        quantization_config,
        resolve_device,
        resolve_dtype,
    )

    torch = import_torch()
    dev = resolve_device(device, torch)
    if qlora and dev == "cpu":
        raise UsageError(
            "--qlora loads the base in 4-bit through bitsandbytes, which needs a CUDA GPU; on CPU train "
            "plain LoRA (drop --qlora)",
            param="qlora",
        )
    source = ModelSource.locate(path)
    if qlora and source.gguf_file is not None:
        raise UsageError(
            "--qlora needs a safetensors base; a GGUF is dequantized, not re-quantized", param="qlora"
        )
    dtype = resolve_dtype("auto", dev, torch)
    quant = quantization_config("nf4", dev, torch) if qlora else None
    if threads is not None:
        torch.set_num_threads(threads)
    tokenizer = load_tokenizer(source)
    model = load_model(source, dev, dtype, quant)
    if source.gguf_file is not None:  # dequantized at load: plain tensors that train like any others
        model.hf_quantizer = None
        model.is_quantized = False
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
    model.config.use_cache = False
    if qlora:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=True)
    return Base(path, tokenizer, model, dev, dtype, qlora, arch)


def generate(
    model: Any,
    tokenizer: Tokenizer,
    prompts: Sequence[Sequence[dict[str, Any]]],
    max_new_tokens: int,
    batch: int = 16,
) -> list[tuple[str, bool]]:
    """Greedy answers (text, finished) to chat prompts, encoded as serving encodes them, in batches.

    A decode step over 16 short rows costs about what one over 8 does on a CPU (the weights are read
    once a step either way), so the probe's 12 questions go in one batch rather than two."""
    import torch

    end_ids = sorted(tokenizer.eos_token_ids | {tokenizer.special_tokens["<|im_end|>"]})
    pad = min(tokenizer.eos_token_ids)
    out: list[tuple[str, bool]] = []
    was_training = model.training
    model.eval()
    for i in range(0, len(prompts), batch):
        encoded = [list(encode_chat(p, tokenizer).ids) for p in prompts[i : i + batch]]
        width = max(len(e) for e in encoded)
        ids = torch.tensor([[pad] * (width - len(e)) + e for e in encoded], device=model.device)
        mask = torch.tensor([[0] * (width - len(e)) + [1] * len(e) for e in encoded], device=model.device)
        with torch.no_grad():
            result = model.generate(
                input_ids=ids,
                attention_mask=mask,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                eos_token_id=end_ids,
                pad_token_id=pad,
                use_cache=True,
            )
        for row in result[:, width:].tolist():
            cut = next((j for j, t in enumerate(row) if t in end_ids), None)
            out.append((tokenizer.decode(row[:cut] if cut is not None else row).strip(), cut is not None))
    if was_training:
        model.train()
    return out
