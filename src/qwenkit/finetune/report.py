"""The run's record: report.json (config, plan, data counts, speed, probe), report.md for people, loss.png."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from qwenkit.finetune.probe import ProbeResult
from qwenkit.finetune.train import History


def plot_loss(history: History, path: Path) -> str | None:
    """The loss curve as a PNG; the reason it was not drawn otherwise (never silently)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "loss.png not drawn: matplotlib is not installed (pip install matplotlib)"
    if not history.steps:
        return "loss.png not drawn: no step was logged"
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(history.steps, history.loss, label="train loss")
    if history.eval_steps:
        ax.plot(history.eval_steps, history.eval_loss, "o-", label="eval loss")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return None


def _probe_md(probe: ProbeResult) -> list[str]:
    lines = [
        f"## Forgetting probe: {probe.kept}/{len(probe.answers)} answers kept",
        "",
        f"Perplexity on unrelated text: {probe.ppl_base:.2f} -> {probe.ppl_tuned:.2f} "
        f"(x{probe.ppl_ratio:.3f})",
        "",
        "| question | base | tuned | kept |",
        "| --- | --- | --- | --- |",
    ]
    for a in probe.answers:
        cells = [a.question, a.base, a.tuned]
        lines.append(
            "| "
            + " | ".join(" ".join(c.split())[:80].replace("|", "\\|") for c in cells)
            + f" | {'yes' if a.kept else 'NO'} |"
        )
    return lines


def write_report(out: Path, record: dict[str, Any], probe: ProbeResult | None, notes: list[str]) -> None:
    data = dict(record, probe=probe.to_dict() if probe else None, notes=notes)
    (out / "report.json").write_text(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")
    plan, speed, d = record["plan"], record["speed"], record["data"]
    lines = [
        f"# qwenkit tune: {record['config']['base']}",
        "",
        f"- data: {d['train_examples']} training examples (+{d['replay_examples']} replay), "
        f"{d['eval_examples']} held out; {d['invalid_lines']} invalid line(s) skipped, "
        f"{d['truncated']} truncated, {d['skipped_overlong']} too long and left out",
        f"- LoRA r {plan['lora_r']}, alpha {plan['lora_alpha']}, lr {plan['lr']}, {plan['steps']} steps",
        f"- speed: {speed['tokens_per_second']:.0f} tokens/s over {speed['seconds']:.0f} s "
        f"on {record['device']}",
        f"- final train loss {record['final_loss']}, eval loss {record['final_eval_loss']}",
        "",
    ]
    if probe is not None:
        lines += _probe_md(probe)
    lines += ["", *[f"note: {n}" for n in notes]]
    (out / "report.md").write_text("\n".join(lines) + "\n")
