"""A GGUF dequantized once into a float32 checkpoint, for every later load through transformers.

transformers reads a GGUF slowly: its reader parses the whole file once for the config, once for the
tokenizer and once for the weights, then dequantizes every tensor (about 100 s for the 0.5B on two
cores). ``tune``, ``merge``, ``eval`` and the transformers backend each load their GGUF base again, so
the first load writes what it read as a plain checkpoint (config, tokenizer, float32 safetensors) under
``$QWENKIT_HOME/unpacked/`` and later loads read that in seconds. float32 keeps every dequantized value
exactly (a 4-bit block's scale times its integers is not a 16-bit number), so a load from the cache
gives the same tensors as a load from the GGUF, at 4 bytes a parameter on disk.

The cache holds at most ``$QWENKIT_UNPACKED_GB`` (default 16; 0 turns it off): the entries used
longest ago are removed to make room, and a GGUF whose unpacked size alone exceeds the cap is read from
the file every time. An entry is keyed by the file's path, size and modification time, so a GGUF
replaced in place is unpacked afresh.
"""

from __future__ import annotations

import hashlib
import math
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qwenkit.errors import ModelFormatError, UsageError
from qwenkit.models.gguf_reader import read_gguf_metadata
from qwenkit.models.store import qwenkit_home

CAP_ENV = "QWENKIT_UNPACKED_GB"
DEFAULT_CAP_GB = 16.0
BYTES_PER_PARAMETER = 4  # float32
COMPLETE_MARK = ".complete"


@dataclass(frozen=True)
class UnpackCache:
    """Where unpacked GGUFs live and how many bytes they may take together."""

    root: Path
    cap_bytes: int

    @classmethod
    def from_env(cls) -> UnpackCache:
        raw = os.environ.get(CAP_ENV, "").strip()
        try:
            gigabytes = float(raw) if raw else DEFAULT_CAP_GB
        except ValueError:
            raise UsageError(f"{CAP_ENV}={raw!r} is not a number of gigabytes", param=CAP_ENV) from None
        if not math.isfinite(gigabytes) or gigabytes < 0:
            raise UsageError(f"{CAP_ENV}={raw!r} is not a number of gigabytes of 0 or more", param=CAP_ENV)
        return cls(qwenkit_home() / "unpacked", int(gigabytes * 1e9))

    def entry(self, gguf: Path) -> Path:
        """The folder for this file as it is now (path, size and modification time)."""
        stat = gguf.stat()
        key = hashlib.sha256(f"{gguf.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()
        return self.root / f"{gguf.stem}-{key[:16]}"

    def entries(self) -> list[Path]:
        if not self.root.is_dir():
            return []
        return [p for p in self.root.iterdir() if (p / COMPLETE_MARK).is_file()]

    def make_room(self, needed: int) -> bool:
        """Remove the least recently used entries until ``needed`` bytes fit; False if they never can."""
        if needed > self.cap_bytes:
            return False
        entries = sorted(self.entries(), key=lambda p: (p / COMPLETE_MARK).stat().st_mtime)
        used = sum(_size(p) for p in entries)
        while entries and used + needed > self.cap_bytes:
            oldest = entries.pop(0)
            used -= _size(oldest)
            shutil.rmtree(oldest, ignore_errors=True)
        return True


def _measure(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


def _size(folder: Path) -> int:
    """An entry's bytes, as recorded in its mark when it was written (measured for an unrecorded one)."""
    recorded = (folder / COMPLETE_MARK).read_text(encoding="ascii", errors="ignore").strip()
    return int(recorded) if recorded.isdigit() else _measure(folder)


def cached(gguf: Path, cache: UnpackCache | None = None) -> Path | None:
    """The unpacked folder of ``gguf`` if the cache already holds it (nothing is written)."""
    folder = (cache or UnpackCache.from_env()).entry(gguf)
    return folder if (folder / COMPLETE_MARK).is_file() else None


def unpacked(gguf: Path, cache: UnpackCache | None = None) -> Path | None:
    """The unpacked checkpoint folder of ``gguf``, written now if missing; None if it does not fit."""
    cache = cache or UnpackCache.from_env()
    folder = cache.entry(gguf)
    if (folder / COMPLETE_MARK).is_file():
        (folder / COMPLETE_MARK).touch()  # most recently used
        return folder
    needed = read_gguf_metadata(gguf).parameter_count * BYTES_PER_PARAMETER
    if not cache.make_room(needed):
        return None
    cache.root.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=cache.root))
    try:
        _write_checkpoint(gguf, scratch)
        (scratch / COMPLETE_MARK).write_text(str(_measure(scratch)), encoding="ascii")
        try:
            scratch.rename(folder)
        except OSError:  # another process finished the same entry first: theirs is as good
            if not (folder / COMPLETE_MARK).is_file():
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return folder


def _write_checkpoint(gguf: Path, out: Path) -> None:
    """Read ``gguf`` through transformers (dequantizing to float32) and save it as a checkpoint."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        model: Any = AutoModelForCausalLM.from_pretrained(
            gguf.parent, gguf_file=gguf.name, dtype=torch.float32
        )
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    except (OSError, ValueError, KeyError) as exc:
        raise ModelFormatError(f"transformers could not read {gguf}: {exc}") from exc
    model.hf_quantizer = None  # the GGUF "quantizer" only dequantized at load; nothing quantized remains
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
