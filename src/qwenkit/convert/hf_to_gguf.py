"""A Hugging Face checkpoint to GGUF through llama.cpp's own ``convert_hf_to_gguf.py``.

The converter comes from the pinned llama-cpp-python sdist (``sources.converter_tree``) and runs in a
subprocess with the sdist's ``gguf-py`` first on its path, so it always writes what the installed
llama.cpp reads. It runs with the installed torch and transformers (5.x works; llama.cpp itself pins
4.x) and needs ``sentencepiece`` importable: its Qwen2 vocabulary code tries a SentencePiece model
first and falls back to the BPE files only when the file is missing, not the module. Both come with
``qwenkit[hf]``.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from qwenkit.convert.checkpoint import check_checkpoint
from qwenkit.convert.output import atomic_outputs, check_room, check_target, child_process
from qwenkit.convert.sources import converter_tree
from qwenkit.defaults import OutType
from qwenkit.errors import ConversionError, MissingDependencyError, UsageError

CONVERTER_MODULES = ("torch", "transformers", "safetensors", "sentencepiece")


@dataclass(frozen=True)
class ConvertResult:
    """What was written: the text GGUF and, for a vision-language checkpoint, its mmproj beside it."""

    path: Path
    outtype: OutType
    architecture: str
    parameters: int
    size: int
    seconds: float
    mmproj: Path | None = None
    mmproj_size: int = 0


def default_output(src: Path, outtype: OutType) -> Path:
    """llama.cpp's habit: the GGUF inside the checkpoint directory, named after it and the type."""
    return src / f"{src.resolve().name}-{outtype.file_suffix}.gguf"


def default_mmproj(text_gguf: Path) -> Path:
    """llama.cpp's name for a vision projector: ``mmproj-`` before the text GGUF's name, beside it, which
    is where qwenkit looks for it when the text GGUF is loaded."""
    return text_gguf.with_name(f"mmproj-{text_gguf.name}")


def _check_modules() -> None:
    for module in CONVERTER_MODULES:
        if importlib.util.find_spec(module) is None:
            raise MissingDependencyError.for_extra(module, "hf")


def _converter_env(tree: Path) -> dict[str, str]:
    env = dict(os.environ)
    paths = [str(tree / "gguf-py"), str(tree)]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env.pop("NO_LOCAL_GGUF", None)
    return env


def _failure(lines: deque[str]) -> str:
    """The converter's own reason: its last error-looking line, else its last line."""
    for line in reversed(lines):
        if "Error" in line or line.startswith(("ERROR", "error")):
            return line.strip()
    return lines[-1].strip() if lines else "no output"


def run_converter(
    src: Path,
    tmp: Path,
    outtype: OutType,
    progress: Callable[[str], None] | None = None,
    *,
    mmproj: bool = False,
) -> None:
    """Run the converter into ``tmp`` (the vision projector with ``mmproj``); ConversionError with its
    reason when it fails."""
    tree = converter_tree()
    command = [
        sys.executable,
        str(tree / "convert_hf_to_gguf.py"),
        str(src.resolve()),  # the converter runs in its own folder: a relative path would point there
        "--outfile",
        str(tmp.resolve()),
        "--outtype",
        outtype.value,
        *(["--mmproj"] if mmproj else []),
    ]
    tail: deque[str] = deque(maxlen=40)
    with child_process(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, errors="replace",
        env=_converter_env(tree), cwd=tree,
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            tail.append(line.rstrip("\n"))
            if progress is not None:
                progress(line.rstrip("\n"))
        code = proc.wait()
    if code != 0:
        raise ConversionError(f"llama.cpp's converter failed on {src}: {_failure(tail)}")


def convert(
    src: str | Path,
    output: str | Path | None = None,
    outtype: OutType | str = OutType.F16,
    *,
    mmproj_output: str | Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> ConvertResult:
    """Convert a Qwen checkpoint directory to one GGUF file, and a vision-language one to two (the text
    GGUF and its mmproj, ``mmproj_output`` or beside it); nothing is left under either name on failure."""
    outtype = OutType(outtype)
    checkpoint = check_checkpoint(src)
    _check_modules()
    target = Path(output) if output is not None else default_output(checkpoint.path, outtype)
    check_target(target, checkpoint.path)
    if mmproj_output is not None and not checkpoint.has_vision:
        raise UsageError(
            f"{checkpoint.architecture} has no vision tower, so there is no mmproj to write", param="mmproj"
        )
    targets = [target]
    if checkpoint.has_vision:
        projector = Path(mmproj_output) if mmproj_output is not None else default_mmproj(target)
        check_target(projector, checkpoint.path)
        if projector.resolve() == target.resolve():
            raise UsageError(f"the mmproj and the text GGUF are both {target}", param="mmproj")
        targets.append(projector)
    check_room(target, checkpoint.output_bytes(outtype))
    start = time.perf_counter()
    with atomic_outputs(*targets) as tmps:
        run_converter(checkpoint.path, tmps[0], outtype, progress)
        if len(tmps) > 1:
            run_converter(checkpoint.path, tmps[1], outtype.projector_type, progress, mmproj=True)
    mmproj = targets[1] if len(targets) > 1 else None
    return ConvertResult(
        target,
        outtype,
        checkpoint.architecture,
        checkpoint.parameters,
        target.stat().st_size,
        time.perf_counter() - start,
        mmproj,
        mmproj.stat().st_size if mmproj is not None else 0,
    )
