"""``qwenkit.tune(...)``: data -> labels -> recipe -> replay -> LoRA training -> probe -> report.

Output layout: ``OUT/adapter`` (a peft adapter), ``OUT/checkpoints``, ``OUT/loss.png``,
``OUT/report.json`` and ``OUT/report.md``.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from qwenkit.finetune.base import Base, load_base, locate_base
from qwenkit.finetune.config import TuneConfig
from qwenkit.finetune.data import Dataset, load_jsonl, split_holdout
from qwenkit.finetune.labels import Encoder, EncodeReport, encode_all
from qwenkit.finetune.probe import ProbeResult, run_probe
from qwenkit.finetune.recipe import Plan, plan
from qwenkit.finetune.replay import replay_answers
from qwenkit.finetune.report import plot_loss, write_report
from qwenkit.finetune.train import History, LoopSettings, Say, run_loop

ADAPTER = "adapter"
TUNE_META = "qwenkit_tune.json"


@dataclass(frozen=True)
class TuneResult:
    adapter: Path
    report: Path
    history: History
    probe: ProbeResult | None
    plan: Plan


def _stderr(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def _wrap_lora(base: Base, p: Plan, config: TuneConfig) -> Any:
    from peft import LoraConfig, get_peft_model
    from transformers import set_seed

    set_seed(config.seed)  # LoRA's initial weights: the same seed gives the same run

    targets: str | list[str] = config.target if config.target == "all-linear" else config.target.split(",")
    lora = LoraConfig(
        r=p.lora_r,
        lora_alpha=p.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=targets,
        task_type="CAUSAL_LM",
        bias="none",
    )
    try:
        return get_peft_model(base.model, lora)
    except ValueError as exc:
        from qwenkit.errors import UsageError

        raise UsageError(
            f"--target {config.target!r} matches no module of this model: {exc}", param="target"
        ) from exc


def _data(config: TuneConfig) -> tuple[Dataset, list[Any], list[Any], int]:
    train_set = load_jsonl(config.data, config.data_format, skip_invalid=config.skip_invalid)
    invalid = len(train_set.bad)
    if config.eval_data is not None:
        held_set = load_jsonl(config.eval_data, config.data_format, skip_invalid=config.skip_invalid)
        invalid += len(held_set.bad)
        return train_set, list(train_set.conversations), list(held_set.conversations), invalid
    train, held = split_holdout(train_set.conversations, config.eval_fraction, config.seed)
    return train_set, train, held, invalid


def _record(
    config: TuneConfig,
    base: Base,
    p: Plan,
    enc: EncodeReport,
    held: EncodeReport | None,
    replay: int,
    invalid: int,
    history: History,
) -> dict[str, Any]:
    return {
        "config": config.to_dict(),
        "plan": asdict(p),
        "device": base.device,
        "dtype": str(base.dtype),
        "base_path": str(base.path),
        "architecture": base.architecture,
        "data": {
            "train_examples": len(enc.examples),
            "replay_examples": replay,
            "eval_examples": len(held.examples) if held else 0,
            "invalid_lines": invalid,
            "truncated": len(enc.truncated),
            "skipped_overlong": len(enc.skipped),
            "longest_tokens": enc.longest,
        },
        "speed": {
            "tokens_per_second": history.tokens_per_second,
            "seconds": history.seconds,
            "tokens": history.tokens,
        },
        "final_loss": history.loss[-1] if history.loss else None,
        "final_eval_loss": history.eval_loss[-1] if history.eval_loss else None,
        "history": asdict(history),
    }


def tune_config(config: TuneConfig, say: Say = _stderr, probe_text: str | None = None) -> TuneResult:
    """Run one fine-tuning job as ``config`` says (see ``TuneConfig``)."""
    dataset, train_convs, held_convs, invalid = _data(config)
    ref = locate_base(config.base)
    path, arch = ref.path, ref.architecture
    if config.replay != 0 and path.suffix == ".gguf":  # before the training copy is in memory
        replay_answers(path, 1)
    base = load_base(path, arch, config.device, config.qlora, config.threads)
    encoder = Encoder(base.tokenizer, None, config.thinking)
    enc = encode_all(train_convs, encoder, config.max_length, config.overlong)
    held = encode_all(held_convs, encoder, config.max_length, config.overlong) if held_convs else None
    p = plan(config, len(enc.examples))
    say(
        f"{dataset.format.value} data: {len(enc.examples)} examples, "
        f"{len(held.examples) if held else 0} held out; "
        f"LoRA r {p.lora_r}, lr {p.lr}, {p.steps} steps on {base.device}"
    )
    replay = replay_answers(path, p.replay, base.model, base.tokenizer) if p.replay else []
    replay_examples = (
        encode_all(replay, encoder, config.max_length, config.overlong).examples if replay else []
    )
    model = _wrap_lora(base, p, config)
    config.output.mkdir(parents=True, exist_ok=True)
    settings = LoopSettings(
        output=config.output,
        steps=p.steps,
        lr=p.lr,
        batch_size=config.batch_size,
        grad_accum=config.grad_accum,
        seed=config.seed,
        eval_every=p.eval_every,
        save_every=p.save_every,
        device=base.device,
        bf16=base.device != "cpu",
        gradient_checkpointing=base.quantized,
        resume=config.resume,
    )
    history = run_loop(
        model,
        enc.examples + replay_examples,
        held.examples if held else [],
        min(base.tokenizer.eos_token_ids),
        settings,
        say,
    )
    adapter = config.output / ADAPTER
    model.save_pretrained(str(adapter))
    (adapter / TUNE_META).write_text(json.dumps({"base": str(path), "architecture": arch}, indent=2) + "\n")
    probe = None
    if config.probe:
        say("probing for forgetting (base vs tuned answers, perplexity on unrelated text)")
        probe = run_probe(model, base.tokenizer, probe_text)
        say(f"probe: {probe.kept}/{len(probe.answers)} answers kept; perplexity x{probe.ppl_ratio:.3f}")
    notes = [n for n in [plot_loss(history, config.output / "loss.png")] if n]
    write_report(
        config.output,
        _record(config, base, p, enc, held, len(replay_examples), invalid, history),
        probe,
        notes,
    )
    say(f"adapter written to {adapter}; report in {config.output / 'report.md'}")
    return TuneResult(adapter, config.output / "report.json", history, probe, p)


def tune(
    base: str,
    data: str | Path,
    output: str | Path,
    *,
    config_file: str | Path | None = None,
    say: Say = _stderr,
    **settings: Any,
) -> TuneResult:
    """The Python API: ``qwenkit.tune("qwen2.5-0.5b-instruct", "train.jsonl", "out", lora_r=8)``."""
    values = dict(settings, base=base, data=data, output=output)
    return tune_config(TuneConfig.build(values, Path(config_file) if config_file else None), say)
