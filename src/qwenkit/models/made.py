"""Model files made on this machine (``qwenkit convert`` / ``quantize``), so that references find them.

A made file stays where its maker wrote it; ``$QWENKIT_HOME/made.json`` records its path, the catalog
entry it is a version of (when known) and its quant. Then ``qwenkit list`` shows it, a catalog
reference such as ``qwen2.5-coder-0.5b-instruct:q6_k`` resolves to it (also for quants the catalog
does not list), and ``select`` marks recommendations that are already on disk. Records of files that
were deleted since are dropped when read.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from qwenkit.models import store

INDEX = "made.json"


@dataclass(frozen=True)
class MadeFile:
    path: Path
    variant: str | None  # catalog id
    quant: str | None  # lower case, as catalog references write it: q4_k_m, f16
    made_from: str
    created: str

    def to_dict(self) -> dict[str, str | None]:
        return {**asdict(self), "path": str(self.path)}


def _index() -> Path:
    return store.qwenkit_home() / INDEX


def _read() -> list[MadeFile]:
    try:
        rows = json.loads(_index().read_text())
    except (OSError, ValueError):
        return []
    made = []
    for row in rows if isinstance(rows, list) else []:
        try:
            made.append(MadeFile(Path(row["path"]), row.get("variant"), row.get("quant"), row["made_from"],
                                 row["created"]))  # fmt: skip
        except (KeyError, TypeError):
            continue
    return made


def made_files() -> list[MadeFile]:
    """Every recorded file that still exists, newest record per path."""
    latest = {m.path: m for m in _read()}
    return [m for m in latest.values() if m.path.is_file()]


def record_made(path: Path, *, variant: str | None, quant: str | None, made_from: Path | str) -> MadeFile:
    """Remember ``path`` (written atomically: a crash never leaves a half index)."""
    entry = MadeFile(path.resolve(), variant, quant.lower() if quant else None, str(made_from),
                     time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))  # fmt: skip
    rows = [m for m in made_files() if m.path != entry.path] + [entry]
    index = _index()
    index.parent.mkdir(parents=True, exist_ok=True)
    tmp = index.with_name(f".{INDEX}.{os.getpid()}")
    tmp.write_text(json.dumps([m.to_dict() for m in rows], indent=1))
    os.replace(tmp, index)
    return entry


def find_made(variant: str, quant: str) -> Path | None:
    """The newest made file of ``variant`` in ``quant``, if any."""
    matches = [m for m in made_files() if m.variant == variant and m.quant == quant.lower()]
    return max(matches, key=lambda m: m.created).path if matches else None


def made_record(path: Path) -> MadeFile | None:
    resolved = path.resolve()
    return next((m for m in made_files() if m.path == resolved), None)


def variant_of(source: Path) -> str | None:
    """The catalog entry a file made from ``source`` is a version of, when that is known: the
    source's own record, or its file name being one of the catalog's official GGUF files."""
    record = made_record(source) if source.is_file() else None
    if record is not None:
        return record.variant
    if source.is_file() and source.suffix.lower() == ".gguf":
        from qwenkit.models.ref import resolve

        ref = resolve(str(source))
        return ref.variant.id if ref.variant is not None else None
    return None
