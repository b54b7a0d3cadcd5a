"""``qwenkit perplexity`` against llama.cpp's own ``llama-perplexity`` on the same files, text and context.

llama-perplexity is built from the pinned llama-cpp-python sdist (``_llama_build.py``; reuses an existing
build folder). Both score the same chunks; the acceptance bound is 0.1 % relative difference.

    python benchmarks/bench_perplexity_vs_llama.py [MODEL.gguf ...] [--bytes 60000] [--context 512]
"""

from __future__ import annotations

import argparse
import re
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import DEFAULT_MODEL, machine, write_result
from _llama_build import build

from qwenkit.convert.perplexity import perplexity

TEXT = Path("/work/shared/data/tinyshakespeare/input.txt")
FINAL = re.compile(r"Final estimate: PPL = ([0-9.]+) \+/- ([0-9.]+)")
BOUND = 0.001


def llama_perplexity(binary: Path, model: Path, text: Path, context: int, threads: int) -> dict[str, float]:
    command = [str(binary), "-m", str(model), "-f", str(text), "-c", str(context), "-t", str(threads)]
    began = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    match = FINAL.search(done.stdout + done.stderr)
    if match is None:
        raise SystemExit(f"no final estimate from llama-perplexity:\n{done.stderr[-2000:]}")
    return {
        "ppl": float(match[1]),
        "ppl_err": float(match[2]),
        "seconds": round(time.perf_counter() - began, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("models", nargs="*", type=Path, default=[DEFAULT_MODEL])
    parser.add_argument("--text", type=Path, default=TEXT)
    parser.add_argument("--bytes", type=int, default=60000, help="score the first BYTES of the text")
    parser.add_argument("--context", type=int, default=512)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    binary = build("llama-perplexity")
    body = args.text.read_bytes()[: args.bytes].decode("utf-8", errors="ignore")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        text_file = Path(tmp) / "text.txt"
        text_file.write_text(body, encoding="utf-8")
        for model in args.models:
            theirs = llama_perplexity(binary, model, text_file, args.context, args.threads)
            began = time.perf_counter()
            ours, _ = perplexity(model, body, context=args.context, threads=args.threads)
            rel = abs(ours.ppl - theirs["ppl"]) / theirs["ppl"]
            rows.append(
                {
                    "model": str(model),
                    "llama_perplexity": theirs,
                    "qwenkit": {
                        "ppl": round(ours.ppl, 4),
                        "ppl_err": round(ours.ppl_err, 5),
                        "chunks": ours.chunks,
                        "tokens_scored": ours.tokens,
                        "seconds": round(time.perf_counter() - began, 1),
                    },
                    "relative_difference": rel,
                    "within_bound": rel <= BOUND,
                }
            )
            print(f"{model.name}: llama-perplexity {theirs['ppl']:.4f}, qwenkit {ours.ppl:.4f} ({rel:.2e})")
    path = write_result(
        "perplexity_vs_llama",
        {
            "command": shlex.join(["python", "benchmarks/bench_perplexity_vs_llama.py", *sys.argv[1:]]),
            "machine": machine(),
            "text": f"first {args.bytes} bytes of {args.text}",
            "context": args.context,
            "bound": BOUND,
            "rows": rows,
        },
    )
    print(path)
    if not all(r["within_bound"] for r in rows):
        raise SystemExit("qwenkit perplexity differs from llama-perplexity by more than 0.1 %")


if __name__ == "__main__":
    main()
