"""``qwenkit pull | list | rm | info``: thin commands over ``qwenkit.models``.

``qwenkit.models`` is imported by the commands (it pulls in the chat layer, ~0.3 s), not with the module.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import typer
from rich.table import Table

from qwenkit.cli.app import app, console, print_json
from qwenkit.defaults import DEFAULT_MODEL
from qwenkit.errors import ModelNotFoundError

if TYPE_CHECKING:
    from qwenkit.catalog import Variant
    from qwenkit.models import ModelInfo
    from qwenkit.models.fetch import LocalModel

_REF_HELP = "catalog id[:quant], Hub repo id[:quant], model directory or .gguf file"
_JSON_HELP = "machine-readable JSON on stdout"


def human_bytes(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{size} B"  # pragma: no cover - the loop always returns


def _local_dict(model: LocalModel) -> dict[str, Any]:
    return {
        "path": str(model.path), "format": model.format, "model": model.variant.id if model.variant else None,
        "quant": model.quant, "sha256": model.sha256, "source": model.source, "downloaded": model.downloaded,
    }


@app.command()
def pull(
    ref: str = typer.Argument(DEFAULT_MODEL, help=_REF_HELP),
    json_out: bool = typer.Option(False, "--json", help=_JSON_HELP),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress bar"),
) -> None:
    """Download a model into the local cache (Hub first, then mirrors); a no-op when it is already there."""
    from qwenkit.models.fetch import ensure_local
    from qwenkit.models.ref import resolve

    model = ensure_local(resolve(ref), progress=not (quiet or json_out))
    if json_out:
        print_json(_local_dict(model))
        return
    if model.downloaded:
        checked = " (sha256 verified)" if model.sha256 else ""
        console.print(f"downloaded from {model.source}{checked}:", highlight=False)
    else:
        console.print(f"already local ({model.source}):", highlight=False)
    console.print(str(model.path), highlight=False, soft_wrap=True)


@app.command("list")
def list_models(json_out: bool = typer.Option(False, "--json", help=_JSON_HELP)) -> None:
    """Models on this machine: the Hugging Face cache and qwenkit's own store."""
    from qwenkit.models import list_local
    from qwenkit.models.ref import default_catalog
    from qwenkit.models.store import hub_cache_dir, store_root

    entries = list_local(default_catalog())
    if json_out:
        print_json([e.to_dict() for e in entries])
        return
    if not entries:
        console.print(f"no local models (HF cache: {hub_cache_dir()}, qwenkit store: {store_root()})")
        return
    table = Table()
    table.add_column("model", overflow="fold")
    table.add_column("source", no_wrap=True)
    table.add_column("size", justify="right", no_wrap=True)
    table.add_column("path", overflow="fold")
    for entry in entries:
        table.add_row(entry.ref, entry.source, human_bytes(entry.size), str(entry.path))
    console.print(table)
    console.print(f"{len(entries)} models, {human_bytes(sum(e.size for e in entries))}", highlight=False)


@app.command()
def rm(
    ref: str = typer.Argument(..., help=_REF_HELP),
    json_out: bool = typer.Option(False, "--json", help=_JSON_HELP),
) -> None:
    """Delete a downloaded model from the HF cache and qwenkit's store."""
    from qwenkit.models import remove
    from qwenkit.models.ref import resolve

    report = remove(resolve(ref))
    if json_out:
        removed = [str(r.path) for r in report.removed]
        print_json({"ref": report.ref, "removed": removed, "freed": report.freed})
        return
    if not report.removed:
        console.print(f"nothing to remove: {report.ref} is not in the local cache", highlight=False)
        return
    console.print(f"removed {report.ref} ({human_bytes(report.freed)} freed):", highlight=False)
    for item in report.removed:
        console.print(f"  {item.path}", highlight=False, soft_wrap=True)


def _billions(n: int) -> str:
    return f"{n / 1e9:.2f} B ({n:,})"


@dataclass(frozen=True)
class InfoView:
    """A file's own facts joined with its catalog entry, when it has one.

    ``model_parameters`` counts the embeddings as the model does: a tied matrix once, even when the
    file stores it twice (the GGUFs of tied Qwen models keep token_embd and output both).
    """

    details: ModelInfo
    variant: Variant | None

    @property
    def name(self) -> str | None:
        return self.variant.display_name if self.variant else self.details.name

    @property
    def stores_tied_twice(self) -> bool:
        emb = self.details.embeddings
        tied = self.variant is not None and self.variant.arch.tied_embeddings
        return tied and emb.output_head > 0 and emb.output_head == emb.input

    @property
    def model_parameters(self) -> int:
        extra = self.details.embeddings.output_head if self.stores_tied_twice else 0
        return self.details.parameter_count - extra

    def parameters_line(self) -> str:
        without = self.details.non_embedding_parameters
        if without == self.details.parameter_count:  # no embedding tensor recognised
            return _billions(self.model_parameters)
        return f"{_billions(self.model_parameters)} with embeddings, {_billions(without)} without"

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.details.to_dict(),
            "model": self.variant.id if self.variant else None,
            "name": self.name,
            "file_label": self.details.name,
            "model_parameters": self.model_parameters,
        }

    def rows(self) -> list[tuple[str, str]]:
        info = self.details
        heads = f"{info.attention_heads} (KV heads: {info.kv_heads})" if info.attention_heads else "?"
        tensor_types = ", ".join(f"{name} ×{count}" for name, count in info.tensor_types.items())
        template = f"yes ({info.template_family})" if info.chat_template else "no"
        specials = ", ".join(f"{t.role}={t.id} {t.text or ''}".rstrip() for t in info.special_tokens)
        name = f"{self.name} (catalog: {self.variant.id})" if self.variant else (self.name or "-")
        rows = [("path", str(info.path)), ("format", info.format), ("name", name)]
        if self.variant and info.name:
            label = f"{info.name} (general.name, the packager's)" if info.format == "gguf" else info.name
            rows.append(("file label", label))
        rows += [("architecture", info.architecture), ("parameters", self.parameters_line())]
        if self.stores_tied_twice:
            stored = f"{_billions(info.parameter_count)}: the tied embedding matrix is stored twice, as " \
                     "token_embd and output"
            rows.append(("in this file", stored))
        rows += [
            ("layers", str(info.layers)), ("hidden size", str(info.hidden_size)), ("attention heads", heads),
            ("context length", str(info.context_length)), ("quantization", info.quantization or "-"),
            ("tensor types", tensor_types or "-"), ("chat template", template),
            ("special tokens", specials or "-"), ("file size", human_bytes(info.file_size)),
        ]
        return rows


def _info_table(view: InfoView) -> Table:
    table = Table(show_header=False, box=None)
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    for key, value in view.rows():
        table.add_row(key, value)
    return table


@app.command()
def info(
    ref: str = typer.Argument(DEFAULT_MODEL, help=_REF_HELP),
    json_out: bool = typer.Option(False, "--json", help=_JSON_HELP),
) -> None:
    """Architecture, size, quantization, context and chat template of a local model (weights not loaded)."""
    from qwenkit.models import find_local, inspect_path
    from qwenkit.models.ref import resolve

    model_ref = resolve(ref)
    local = find_local(model_ref)
    if local is None:
        raise ModelNotFoundError(
            f"{model_ref.display} is not on this machine", hint=f"download it first: qwenkit pull {ref}"
        )
    view = InfoView(inspect_path(local.path), local.variant)
    if json_out:
        print_json(view.to_dict())
        return
    console.print(_info_table(view))
