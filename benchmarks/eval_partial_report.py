"""A report from a results file alone: for a run that was stopped before its end (no model needed).

``qwenkit eval --resume`` finishes such a run and writes the full report; this summarises what a
``--out`` file holds so far (every graded answer, and the first problems without a gap), with the
same scoring code, into ``<results>.partial.json``.

    python benchmarks/eval_partial_report.py benchmarks/results/eval/humaneval-0.5b-q4_k_m.jsonl
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path

from qwenkit.eval.report import failure_reasons, score_records
from qwenkit.eval.results import ItemRecord, read_results
from qwenkit.eval.tasks import Metric, make_task


def prefix(records: list[ItemRecord], order: list[str]) -> list[ItemRecord]:
    """The records of the first problems, in the task's order, up to the first one not yet graded."""
    done = {r.item: r for r in records}
    out = []
    for item in order:
        if item not in done:
            break
        out.append(done[item])
    return out


def summary(path: Path) -> dict[str, object]:
    header, records = read_results(path)
    records = [r for r in records if r.error is None]
    task = make_task(str(header["task"]), Path("/dev/null") if header["task"] == "gsm8k" else None)
    metric = task.metric
    order = [i.id for i in task.items()] if metric is Metric.PASS_AT else sorted(
        {r.item for r in records}, key=lambda s: int(s.split("/")[-1]))
    first = prefix(records, order)
    decode = [r.decode_tps for r in records if r.decode_tps]
    return {
        "results_file": str(path), "header": header, "answers": len(records),
        "scores_all_graded": {k: asdict(v) for k, v in score_records(records, metric, 1).items()},
        "first_problems": len(first),
        "scores_first_problems": {k: asdict(v) for k, v in score_records(first, metric, 1).items()},
        "completion_tokens_mean": sum(r.completion_tokens for r in records) / len(records),
        "decode_tps_mean_per_answer": sum(decode) / len(decode) if decode else None,
        "failures": failure_reasons(records),
        "published": asdict(p) if (p := task.published(str(header["model"]))) else None,
    }


def main(paths: list[str]) -> int:
    for name in paths:
        path = Path(name)
        data = summary(path)
        out = path.with_suffix(".partial.json")
        out.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        print(f"{out}: {json.dumps(data['scores_all_graded'])} over {data['answers']} answers")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
