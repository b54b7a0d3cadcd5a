"""Reading task data: JSON Lines, optionally gzipped, with a clear error for anything else."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

from qwenkit.errors import UsageError


def read_jsonl(path: Path, required: tuple[str, ...]) -> list[dict[str, Any]]:
    """Every object in a ``.jsonl`` or ``.jsonl.gz`` file; each must hold the ``required`` keys."""
    opener = gzip.open if path.suffix == ".gz" else open
    rows: list[dict[str, Any]] = []
    try:
        with opener(path, "rt", encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                row = json.loads(line)
                if not isinstance(row, dict) or any(k not in row for k in required):
                    raise UsageError(
                        f"{path}:{number}: each line must be a JSON object with {', '.join(required)}",
                        param="data",
                    )
                rows.append(row)
    except FileNotFoundError:
        raise UsageError(f"no such data file: {path}", param="data") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(f"{path} is not JSON Lines: {exc}", param="data") from None
    if not rows:
        raise UsageError(f"{path} holds no problems", param="data")
    return rows
