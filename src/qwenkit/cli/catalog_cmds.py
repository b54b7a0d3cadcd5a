"""``qwenkit catalog``: list the Qwen family, as a table for people or JSON for programs."""

from __future__ import annotations

import typer
from rich.table import Table

from qwenkit.catalog import Variant, load_catalog, variant_to_dict
from qwenkit.cli.app import app, console, print_json


def human_count(n: int) -> str:
    """494032768 -> '494M', 7615616512 -> '7.62B' (for tables; JSON keeps exact numbers)."""
    if n >= 10**11:
        return f"{n / 1e9:.0f}B"
    if n >= 10**10:
        return f"{n / 1e9:.1f}B"
    if n >= 10**9:
        return f"{n / 1e9:.2f}B"
    return f"{n / 1e6:.0f}M"


def human_context(tokens: int) -> str:
    return f"{tokens // 1024}K" if tokens % 1024 == 0 else str(tokens)


def _context(v: Variant) -> str:
    """Native context, then the YaRN-extended one where the model supports it: '32K/128K'."""
    if v.context_max == v.context_native:
        return human_context(v.context_native)
    return f"{human_context(v.context_native)}/{human_context(v.context_max)}"


def _gguf(v: Variant) -> str:
    if v.gguf_files:
        return f"{len(v.gguf_files)} quant" + ("s" if len(v.gguf_files) > 1 else "")
    return "repo" if v.gguf_repo else "-"


def _table(variants: list[Variant]) -> Table:
    table = Table(
        title=f"Qwen models ({len(variants)})",
        header_style="bold",
        caption="context: native/with YaRN; GGUF: official quantized files listed (repo: files unlisted)",
    )
    for column, justify in (
        ("id", "left"), ("generation", "left"), ("spec", "left"), ("params", "right"),
        ("active", "right"), ("context", "right"), ("thinking", "left"), ("GGUF", "left"),
    ):
        table.add_column(column, justify=justify, no_wrap=column == "id")  # type: ignore[arg-type]
    for v in variants:
        table.add_row(
            v.id,
            v.generation.value,
            v.specialisation.value,
            human_count(v.params_total),
            human_count(v.params_active) if v.is_moe else "",
            _context(v),
            v.thinking.value,
            _gguf(v),
        )
    return table


@app.command("catalog")
def catalog_command(
    generation: str | None = typer.Option(
        None, "--generation", "-g", help="qwen1, qwen1.5, qwen2, qwen2.5 or qwen3."
    ),
    specialisation: str | None = typer.Option(
        None, "--task", "--specialisation", "-t", help="general, coder, math, vl or audio."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print complete entries as a JSON list."),
) -> None:
    """List the Qwen models qwenkit knows: sizes, context, thinking mode and GGUF availability."""
    variants = load_catalog().filter(generation=generation, specialisation=specialisation)
    if as_json:
        print_json([variant_to_dict(v) for v in variants])
        return
    if not variants:
        console.print("no model matches these filters")
        return
    console.print(_table(variants))
