"""``qwenkit tune export ADAPTER --gguf``: a peft LoRA as a GGUF adapter that llama.cpp applies at run time.

llama.cpp's own ``convert_lora_to_gguf.py`` does the work; it comes from the same pinned, hash-checked
llama-cpp-python sdist as ``qwenkit convert`` (``qwenkit.convert.sources``), so the adapter file always
matches the llama.cpp that loads it. The script needs the base model's config.json only; for a GGUF
base, that config is written from the GGUF's metadata into a temporary folder.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections import deque
from pathlib import Path

from qwenkit.convert.output import atomic_output, check_target
from qwenkit.convert.sources import CONVERTER_PARTS, llama_cpp_tree
from qwenkit.errors import ConversionError, ModelFormatError, ModelNotFoundError, UsageError
from qwenkit.finetune.merge import adapter_dir

LORA_SCRIPT = "convert_lora_to_gguf.py"
LORA_OUTTYPES = ("f32", "f16", "bf16", "q8_0")
_ARCHITECTURES = {
    "qwen2": "Qwen2ForCausalLM", "qwen3": "Qwen3ForCausalLM",
    "qwen2_moe": "Qwen2MoeForCausalLM", "qwen3_moe": "Qwen3MoeForCausalLM",
}  # fmt: skip


def recorded_base(folder: Path) -> str | None:
    """The base a qwenkit-trained adapter names (qwenkit_tune.json), else peft's base_model_name_or_path."""
    meta, config = folder / "qwenkit_tune.json", folder / "adapter_config.json"
    try:
        if meta.is_file():
            return str(json.loads(meta.read_text())["base"])
        value = json.loads(config.read_text()).get("base_model_name_or_path")
    except (ValueError, KeyError, TypeError, AttributeError) as exc:  # not JSON, or not the expected shape
        reason = f"{type(exc).__name__}: {exc}"
        raise ModelFormatError(f"{folder} is not a readable LoRA adapter: {reason}") from None
    return str(value) if value else None


def _config_dir(base: Path, tmp: Path) -> Path:
    """A folder with the base's config.json: the base itself, or one written from a GGUF's metadata."""
    if base.is_dir() and (base / "config.json").is_file():
        return base
    if base.is_file() and base.suffix == ".gguf":
        from qwenkit.engine.gguf_unpack import cached

        unpacked = cached(base)
        if unpacked is not None:  # its config.json, written when the base was loaded for training
            return unpacked
        from transformers import AutoConfig  # only now: importing transformers costs seconds

        config = AutoConfig.from_pretrained(base.parent, gguf_file=base.name)
        if not getattr(config, "architectures", None):  # the converter picks its model class by this name
            config.architectures = [_ARCHITECTURES.get(config.model_type, "Qwen2ForCausalLM")]
        config.save_pretrained(tmp)
        return tmp
    raise ModelNotFoundError(f"no base model at {base} (a model directory or a .gguf file)")


def _run(command: list[str], tree: Path) -> None:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(tree / "gguf-py"), str(tree), env.get("PYTHONPATH")) if p
    )
    tail: deque[str] = deque(maxlen=30)
    done = subprocess.run(
        command, capture_output=True, text=True, errors="replace", env=env, cwd=tree, check=False
    )
    tail.extend((done.stdout + done.stderr).splitlines())
    if done.returncode != 0:
        reason = next(
            (line for line in reversed(tail) if "Error" in line or "error" in line), tail[-1] if tail else ""
        )
        raise ConversionError(f"llama.cpp's convert_lora_to_gguf.py failed: {reason.strip()}")


def export_gguf(
    adapter: str | Path, output: str | Path | None = None, *, base: str | None = None, outtype: str = "f16"
) -> Path:
    """Convert the adapter to ``output`` (default: ``<adapter>/adapter-<outtype>.gguf``)."""
    if outtype not in LORA_OUTTYPES:
        raise UsageError(f"outtype {outtype!r} is not one of: {', '.join(LORA_OUTTYPES)}", param="outtype")
    folder = adapter_dir(Path(adapter))
    base_ref = base or recorded_base(folder)
    if base_ref is None:
        raise UsageError("the adapter does not name its base model: pass --base", param="base")
    target = Path(output) if output is not None else folder / f"adapter-{outtype}.gguf"
    check_target(target, folder)
    from qwenkit.finetune.base import locate_base

    base_path = locate_base(base_ref).path
    tree = llama_cpp_tree((*CONVERTER_PARTS, LORA_SCRIPT))
    with tempfile.TemporaryDirectory(prefix="qwenkit-lora-") as tmp, atomic_output(target) as partial:
        config = _config_dir(base_path, Path(tmp))
        command = [sys.executable, str(tree / LORA_SCRIPT), str(folder.resolve())]
        command += ["--base", str(config.resolve())]  # resolved: the script runs in its own folder
        _run([*command, "--outfile", str(partial.resolve()), "--outtype", outtype], tree)
    return target
