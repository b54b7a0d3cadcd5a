"""``qwenkit serve``: the OpenAI-compatible HTTP server, run with uvicorn in this process."""

from __future__ import annotations

from pathlib import Path

import typer

from qwenkit.cli.app import app
from qwenkit.errors import MissingDependencyError

_REF_HELP = "model to serve: catalog id[:quant], Hub repo id, directory or .gguf (default: the default model)"


@app.command()
def serve(
    ref: str | None = typer.Argument(None, help=_REF_HELP, show_default=False),
    host: str | None = typer.Option(None, help="address to bind (default: 127.0.0.1)"),
    port: int | None = typer.Option(None, help="port to listen on (default: 8000)"),
    backend: str | None = typer.Option(None, help="auto, llamacpp or transformers (default: auto)"),
    parallel: int | None = typer.Option(None, help="sequences decoded together (default: 4)"),
    context: int | None = typer.Option(None, help="context length in tokens (default: 4096)"),
    threads: int | None = typer.Option(None, help="CPU threads (default: physical cores)"),
    api_key: list[str] | None = typer.Option(
        None, "--api-key", help="accepted API key, 'secret' or 'name:secret'"
    ),
    api_keys_file: Path | None = typer.Option(None, help="file with one API key per line"),
    config: Path | None = typer.Option(None, "--config", help="settings file (TOML or YAML)"),
    log_prompts: bool | None = typer.Option(
        None, "--log-prompts/--no-log-prompts", help="log prompt and output text (default: sha256 only)"
    ),
    log_level: str | None = typer.Option(None, help="critical, error, warning, info or debug"),
    request_timeout: float | None = typer.Option(
        None, help="seconds per request, 0 for none (default: 600)"
    ),
    drain_timeout: float | None = typer.Option(
        None, help="seconds to finish requests on SIGTERM (default: 30)"
    ),
) -> None:
    """Serve a model with OpenAI's API (chat, completions, models, tokenize) until SIGTERM."""
    try:
        from qwenkit.server.app import run_server
        from qwenkit.server.settings import load_settings
    except ImportError as exc:
        raise MissingDependencyError.for_extra(exc.name or "fastapi", "serve") from exc
    settings = load_settings(
        model=ref,
        host=host,
        port=port,
        backend=backend,
        parallel=parallel,
        context=context,
        threads=threads,
        api_keys=api_key,
        api_keys_file=api_keys_file,
        config_file=config,
        log_prompts=log_prompts,
        log_level=log_level,
        request_timeout=request_timeout,
        drain_timeout=drain_timeout,
    )
    run_server(settings)
