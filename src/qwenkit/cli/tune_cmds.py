"""``qwenkit tune``: LoRA fine-tuning (``qwenkit tune BASE --data ...``), ``tune merge`` and ``tune export``.

``tune`` is a group whose default command is ``train``: ``qwenkit tune BASE --data d.jsonl -o out`` is
``qwenkit tune train BASE ...``, while ``merge`` and ``export`` are named. Every command is a thin call
into ``qwenkit.finetune``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from typer.core import TyperGroup

from qwenkit.cli.app import app, err_console

_HELP_NAMES = ("-h", "--help")


class TuneGroup(TyperGroup):
    """A group that runs ``train`` when the first argument names no subcommand."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in _HELP_NAMES:
            ctx.meta["qwenkit_tune_default"] = True
            args = ["train", *args]
        return super().parse_args(ctx, args)

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        name, cmd, rest = super().resolve_command(ctx, args)
        if ctx.meta.pop("qwenkit_tune_default", False):
            return "", cmd, rest  # shown as ``qwenkit tune``, the way it was typed
        return name, cmd, rest


tune_app = typer.Typer(
    cls=TuneGroup,
    help="Fine-tune a Qwen model with LoRA; merge or export the adapter. "
    "'qwenkit tune BASE --data FILE -o OUT' trains (short for 'qwenkit tune train ...').",
    context_settings={"help_option_names": list(_HELP_NAMES)},
    no_args_is_help=True,
)
app.add_typer(tune_app, name="tune")


def _say(line: str) -> None:
    err_console.print(line, highlight=False, soft_wrap=True)


@tune_app.command("train")
def train(
    base: str | None = typer.Argument(None, help="the base model: catalog id, Hub repo, directory or .gguf"),
    data: Path | None = typer.Option(
        None, "--data", help="training JSONL (messages, ShareGPT, Alpaca)"
    ),
    eval_data: Path | None = typer.Option(None, "--eval", help="held-out JSONL (default: a random split)"),
    output: Path | None = typer.Option(None, "-o", "--output", help="output directory"),
    config: Path | None = typer.Option(None, "--config", help="settings file (TOML or YAML); flags win"),
    data_format: str | None = typer.Option(None, "--format", help="auto, messages, sharegpt or alpaca"),
    skip_invalid: bool | None = typer.Option(None, "--skip-invalid", help="leave bad lines out (counted)"),
    thinking: str | None = typer.Option(None, help="Qwen3 reasoning in the data: template, keep or drop"),
    max_length: int | None = typer.Option(None, help="tokens per example (default 1024)"),
    overlong: str | None = typer.Option(None, help="longer examples: error, truncate or skip"),
    lora_r: int | None = typer.Option(None, help="LoRA rank (default: from the data size)"),
    lora_alpha: int | None = typer.Option(None, help="LoRA alpha (default: 2 x rank)"),
    lora_dropout: float | None = typer.Option(None, help="LoRA dropout (default 0.05)"),
    target: str | None = typer.Option(None, help="modules to adapt: all-linear or q_proj,v_proj,..."),
    qlora: bool | None = typer.Option(None, "--qlora", help="load the base in nf4 (CUDA, bitsandbytes)"),
    epochs: float | None = typer.Option(None, help="passes over the data (default: from the data size)"),
    max_steps: int | None = typer.Option(None, help="optimizer steps (overrides --epochs)"),
    lr: float | None = typer.Option(None, help="learning rate (default: from the data size)"),
    batch_size: int | None = typer.Option(None, help="examples per step (default 4)"),
    grad_accum: int | None = typer.Option(None, help="gradient accumulation steps (default 1)"),
    seed: int | None = typer.Option(None, help="seed for the split, shuffling and init (default 0)"),
    replay: int | None = typer.Option(None, help="base answers mixed in against forgetting (0: none)"),
    probe: bool | None = typer.Option(
        None, "--probe/--no-probe", help="forgetting probe (default on)"
    ),
    device: str | None = typer.Option(None, help="auto, cpu or cuda[:N]"),
    threads: int | None = typer.Option(None, help="CPU threads for training"),
    resume: bool | None = typer.Option(None, "--resume", help="continue from the last checkpoint in OUT"),
) -> None:
    """Train a LoRA adapter on chat data (labels only on what the assistant wrote)."""
    from qwenkit.finetune.config import TuneConfig
    from qwenkit.finetune.run import tune_config

    values = {
        "base": base, "data": data, "eval_data": eval_data, "output": output, "data_format": data_format,
        "skip_invalid": skip_invalid, "thinking": thinking, "max_length": max_length, "overlong": overlong,
        "lora_r": lora_r, "lora_alpha": lora_alpha, "lora_dropout": lora_dropout, "target": target,
        "qlora": qlora, "epochs": epochs, "max_steps": max_steps, "lr": lr, "batch_size": batch_size,
        "grad_accum": grad_accum, "seed": seed, "replay": replay, "probe": probe, "device": device,
        "threads": threads, "resume": resume,
    }  # fmt: skip
    tune_config(TuneConfig.build(values, config), say=_say)


@tune_app.command("merge")
def merge_cmd(
    base: str = typer.Argument(..., help="the base model the adapter was trained on"),
    adapter: Path = typer.Argument(..., help="the adapter directory (or the tune output directory)"),
    output: Path = typer.Option(..., "-o", "--output", help="new directory for the merged model"),
    dtype: str = typer.Option("bfloat16", help="bfloat16, float16 or float32"),
) -> None:
    """Merge an adapter into its base: safetensors, tokenizer and Qwen's generation_config."""
    from qwenkit.errors import UsageError
    from qwenkit.finetune.merge import MERGE_DTYPES, merge

    if dtype not in MERGE_DTYPES:
        raise UsageError(f"dtype {dtype!r} is not one of: {', '.join(MERGE_DTYPES)}", param="dtype")
    out = merge(base, adapter, output, dtype=dtype)
    _say(f"merged model written to {out}")


@tune_app.command("export")
def export_cmd(
    adapter: Path = typer.Argument(..., help="the adapter directory (or the tune output directory)"),
    gguf: bool = typer.Option(False, "--gguf", help="write a GGUF adapter for llama.cpp"),
    output: Path | None = typer.Option(None, "-o", "--output", help="the .gguf file to write"),
    base: str | None = typer.Option(None, help="the base model (default: the one the adapter names)"),
    outtype: str = typer.Option("f16", help="f32, f16, bf16 or q8_0"),
) -> None:
    """Export an adapter: --gguf converts it with llama.cpp's convert_lora_to_gguf.py."""
    from qwenkit.errors import UsageError
    from qwenkit.finetune.export import LORA_OUTTYPES, export_gguf

    if not gguf:
        raise UsageError("say what to export to: --gguf (the only format so far)", param="gguf")
    if outtype not in LORA_OUTTYPES:
        raise UsageError(f"outtype {outtype!r} is not one of: {', '.join(LORA_OUTTYPES)}", param="outtype")
    path = export_gguf(adapter, output, base=base, outtype=outtype)
    _say(f"GGUF adapter written to {path}")
