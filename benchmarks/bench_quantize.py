"""The whole convert-and-quantize path on a real model, timed, and the quality report of its quantizations.

  1. the published Q4_K_M GGUF -> a Hugging Face checkpoint (transformers dequantizes it; float16)
  2. that checkpoint -> an f16 GGUF (``qwenkit convert``, llama.cpp's converter)
  3. the f16 GGUF -> each type (``qwenkit quantize``), timed one by one
  4. ``qwenkit quantize --report``: every type scored against the f16 (perplexity, KL divergence,
     top-1 agreement, decode speed, memory), the published Q4_K_M as an extra row

Each step's wall time and the peak RSS of its process tree go to the JSON beside the report. The f16
made here carries the 4-bit rounding of the file it came from, so it is no better than that file:
its quantizations are compared with it (KL divergence), not with the original bf16 model.

    python benchmarks/bench_quantize.py [--chunks 40] [--work /tmp/qwenkit-quantize]
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import sys
from pathlib import Path

from _common import DEFAULT_MODEL, machine, write_result
from _steps import run_step

TEXT = Path("/work/shared/data/tinyshakespeare/input.txt")
TYPES = ("Q8_0", "Q6_K", "Q5_K_M", "Q4_K_M")
NAME = "quantize_qwen2.5-coder-0.5b"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--text", type=Path, default=TEXT)
    parser.add_argument("--chunks", type=int, default=40)
    parser.add_argument("--context", type=int, default=512)
    parser.add_argument("--work", type=Path, default=Path("/tmp/qwenkit-quantize"))
    parser.add_argument("--keep", action="store_true", help="keep the work folder (several GB)")
    args = parser.parse_args()
    work: Path = args.work
    work.mkdir(parents=True, exist_ok=True)
    hf, f16 = work / "hf", work / "model-F16.gguf"
    steps = [
        run_step(
            "gguf_to_checkpoint",
            [
                "-c",
                "from qwenkit.convert.from_gguf import gguf_to_checkpoint; "
                f"gguf_to_checkpoint({str(args.model)!r}, {str(hf)!r})",
            ],
        ),
        run_step("convert_f16", ["convert", str(hf), "-o", str(f16), "--outtype", "f16", "-q"]),
    ]
    for qtype in TYPES:
        out = work / f"model-{qtype}.gguf"
        steps.append(run_step(f"quantize_{qtype}", ["quantize", str(f16), "-t", qtype, "-o", str(out), "-q"]))
        out.unlink()
    report_json = work / "report.json"
    plot = Path(__file__).parent / "results" / f"{NAME}.png"
    report_args = [
        "quantize",
        str(f16),
        *(a for t in TYPES for a in ("-t", t)),
        "--report",
        "--text",
        str(args.text),
        "--context",
        str(args.context),
        "--chunks",
        str(args.chunks),
        "--also",
        str(args.model),
        "--out-dir",
        str(work),
        "--report-json",
        str(report_json),
        "--plot",
        str(plot),
    ]
    steps.append(run_step("report", report_args))
    report = json.loads(report_json.read_text())
    sizes = {
        "source_gguf": args.model.stat().st_size,
        "checkpoint": sum(p.stat().st_size for p in hf.iterdir()),
    }
    path = write_result(
        NAME,
        {
            "command": shlex.join(["python", "benchmarks/bench_quantize.py", *sys.argv[1:]]),
            "report_command": shlex.join(["qwenkit", *report_args]),
            "machine": machine(),
            "note": "the f16 GGUF was made from the published Q4_K_M file, so it carries that file's 4-bit "
            "rounding; KL divergence is measured against this f16",
            "sizes": sizes,
            "steps": [s.to_dict() for s in steps],
            "report": report,
        },
    )
    print(path)
    if not args.keep:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
