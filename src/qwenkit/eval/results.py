"""Per-item results as JSON Lines, written as each answer is graded, so a run can resume.

The first line describes the run (task, model, sampling, limits); every other line is one graded
answer. ``--resume`` reads the file back, checks it was written by the same kind of run, and keeps
every finished answer whose prompt is unchanged: only the rest is generated again. Answers whose
generation failed (a server error) are kept in the file but redone.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, TextIO

from qwenkit.errors import UsageError

HEADER_KIND = "qwenkit-eval-run"


@dataclass(frozen=True)
class ItemRecord:
    item: str
    sample: int
    prompt_hash: str
    thinking_budget: int | None
    correct: bool
    reason: str
    answer: str
    reasoning: str
    extracted: str | None
    prompt_tokens: int
    completion_tokens: int
    reasoning_tokens: int
    seconds: float
    decode_tps: float | None
    finish_reason: str
    error: str | None = None

    @property
    def key(self) -> tuple[int | None, str, int]:
        return (self.thinking_budget, self.item, self.sample)


_FIELDS = {f.name for f in fields(ItemRecord)}


def _record(obj: Mapping[str, Any], path: Path, number: int) -> ItemRecord:
    try:
        return ItemRecord(**{k: obj[k] for k in _FIELDS if k in obj})
    except TypeError:
        raise UsageError(f"{path}:{number} is not a qwenkit eval result line", param="out") from None


def read_results(path: Path) -> tuple[dict[str, Any], list[ItemRecord]]:
    """The header and every record of a results file."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}", param="out") from None
    header: dict[str, Any] | None = None
    records = []
    for number, line in enumerate(lines, start=1):
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            if number == len(lines):
                break  # a line cut by an interrupt: that answer is simply redone
            raise UsageError(f"{path}:{number} is not JSON", param="out") from None
        if number == 1:
            if not isinstance(obj, dict) or obj.get("kind") != HEADER_KIND:
                raise UsageError(f"{path} is not a qwenkit eval results file", param="out")
            header = obj
        else:
            records.append(_record(obj, path, number))
    if header is None:  # no line, or a single one that is not JSON (taken above for a cut last line)
        what = "is empty" if not any(line.strip() for line in lines) else "is not a qwenkit eval results file"
        raise UsageError(f"{path} {what}", param="out")
    return header, records


def _drop_cut_line(path: Path) -> None:
    """Remove a last line left without its newline by an interrupt, so appends start on a fresh line."""
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        with path.open("r+b") as handle:
            handle.truncate(data.rfind(b"\n") + 1)


def check_out(path: Path | None, resume: bool) -> None:
    """Fail before any model loads: --resume needs a file, and an existing file needs --resume."""
    if path is None and resume:
        raise UsageError("--resume needs --out: the results file to continue", param="resume")
    if path is not None and not resume and path.exists() and path.stat().st_size > 0:
        raise UsageError(f"{path} exists: pass --resume to continue it, or choose another --out", param="out")


class ResultStore:
    """Appends records (thread-safe) and knows which answers a resumed run already has."""

    def __init__(self, path: Path | None, header: Mapping[str, Any], *, resume: bool) -> None:
        self.path = path
        self.done: dict[tuple[int | None, str, int], ItemRecord] = {}
        self._lock = threading.Lock()
        self._handle: TextIO | None = None
        if path is None:
            check_out(path, resume)
            return
        full = {"kind": HEADER_KIND, **header}
        if path.exists() and path.stat().st_size > 0:
            check_out(path, resume)
            self._check_header(path, full)
            _drop_cut_line(path)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(full, ensure_ascii=False) + "\n", encoding="utf-8")
        self._handle = path.open("a", encoding="utf-8")

    def _check_header(self, path: Path, header: Mapping[str, Any]) -> None:
        old, records = read_results(path)
        differs = sorted(k for k in header if k != "created" and old.get(k) != header[k])
        if differs:
            details = ", ".join(f"{k}: {old.get(k)!r} then, {header[k]!r} now" for k in differs)
            raise UsageError(f"{path} was written by a different run ({details}); use another --out",
                             param="resume")
        for record in records:
            if record.error is None:
                self.done[record.key] = record

    def finished(self, key: tuple[int | None, str, int], prompt_hash: str) -> ItemRecord | None:
        record = self.done.get(key)
        return record if record is not None and record.prompt_hash == prompt_hash else None

    def add(self, record: ItemRecord) -> None:
        if self._handle is None:
            return
        with self._lock:
            self._handle.write(json.dumps(asdict(record), ensure_ascii=False) + "\n")
            self._handle.flush()

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def __iter__(self) -> Iterator[ItemRecord]:
        return iter(self.done.values())
