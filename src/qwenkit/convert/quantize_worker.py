"""The quantizer's own process: ``llama_model_quantize`` with its log turned into JSON lines on stdout.

It runs apart from the caller because a ctypes call into llama.cpp cannot be interrupted: Ctrl-C in
the caller kills this process at once (and the caller removes the temporary file), where in-process
it would wait for the whole quantization. llama.cpp reports its progress and fallbacks only in its
log, so the log callback parses them:

  ``[  12/ 291] blk.0.attn_q.weight - [...], type = f16, converting to q4_K .. size = ...``
  ``warning: blk.0.ffn_down.weight - ncols 4864 not divisible by 256 (required for type q4_K)
  -> falling back to q5_0`` (one line in the log)
"""

from __future__ import annotations

import ctypes
import json
import re
import sys
from typing import Any

from qwenkit.engine.llama_lib import llama_lib

PROGRESS_RE = re.compile(r"^\[\s*(\d+)/\s*(\d+)\]\s+(\S+)")
FALLBACK_RE = re.compile(
    r"warning:\s+(\S+)\s+- ncols\s+(\d+) not divisible by\s+(\d+) \(required for type\s+(\S+)\).*?"
    r"-> falling back to\s+(\S+)"
)


def _emit(event: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


def parse_line(line: str) -> dict[str, Any] | None:
    """The event one complete log line stands for, if any."""
    if match := PROGRESS_RE.match(line):
        return {"event": "tensor", "index": int(match[1]), "total": int(match[2]), "name": match[3]}
    if match := FALLBACK_RE.search(line):
        return {
            "event": "fallback",
            "name": match[1],
            "columns": int(match[2]),
            "block": int(match[3]),
            "wanted": match[4],
            "used": match[5],
        }
    if "failed to quantize" in line:
        return {"event": "error", "message": line.split("failed to quantize:", 1)[-1].strip()}
    return None


class LogParser:
    """Joins llama.cpp's log pieces into lines and emits the events they carry."""

    def __init__(self) -> None:
        self.buffer = ""

    def feed(self, text: str) -> None:
        self.buffer += text
        while "\n" in self.buffer:
            line, self.buffer = self.buffer.split("\n", 1)
            event = parse_line(line.strip())
            if event is not None:
                _emit(event)


def quantize(src: str, dst: str, ftype: int, allow_requantize: bool, threads: int) -> int:
    lib = llama_lib()
    parser = LogParser()

    @lib.llama_log_callback  # type: ignore[untyped-decorator]
    def on_log(_level: int, text: bytes, _user_data: ctypes.c_void_p) -> None:
        parser.feed(text.decode("utf-8", errors="replace"))

    lib.llama_log_set(on_log, ctypes.c_void_p(0))
    params = lib.llama_model_quantize_default_params()
    params.ftype = ftype
    params.nthread = threads
    params.allow_requantize = allow_requantize
    code = int(lib.llama_model_quantize(src.encode(), dst.encode(), ctypes.byref(params)))
    parser.feed("\n")
    _emit({"event": "done", "code": code})
    return code


def main(argv: list[str]) -> int:
    src, dst, ftype, allow, threads = argv
    return 0 if quantize(src, dst, int(ftype), allow == "1", int(threads)) == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
