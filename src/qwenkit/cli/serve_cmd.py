"""``qwenkit serve``: the OpenAI-compatible HTTP server, run with uvicorn in this process."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from qwenkit.cli.app import app
from qwenkit.cli.load_options import THREADS_HELP, MmprojOption, backend_option
from qwenkit.errors import MissingDependencyError, UsageError

if TYPE_CHECKING:
    from qwenkit.server.settings import ServerSettings

_REF_HELP = "model to serve: catalog id[:quant], Hub repo id, directory or .gguf (default: the default model)"
_VLLM = "vLLM (--backend vllm)"
_WILDCARDS = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}


def base_url(host: str, port: int) -> str:
    """The URL people can open: a wildcard bind address is reached through loopback."""
    shown = _WILDCARDS.get(host, host)
    return f"http://[{shown}]:{port}" if ":" in shown else f"http://{shown}:{port}"


def banner(model: str, host: str, port: int) -> str:
    root = base_url(host, port)
    return f"qwenkit: serving {model} at {root}/v1 (playground: {root}/)"


def announce(line: str) -> None:
    """The one human line among the JSON log lines, on stderr whether or not it is a terminal."""
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def serve_until_stopped(settings: ServerSettings, on_listening: Callable[[str], None]) -> None:
    """``run_server``, printing the banner line through ``on_listening`` once the socket is bound."""
    from qwenkit.server.app import run_server
    from qwenkit.server.state import model_identity

    def announce(llm: Any, port: int) -> None:
        model_id = model_identity(llm, settings.model, settings.served_model_name).id
        on_listening(banner(model_id, settings.host, port))

    run_server(settings, announce)


@app.command()
def serve(
    ref: str | None = typer.Argument(None, help=_REF_HELP, show_default=False),
    host: str | None = typer.Option(None, help="address to bind (default: 127.0.0.1)"),
    port: int | None = typer.Option(None, help="port to listen on (default: 8000)"),
    backend: str | None = backend_option(None, "auto, llamacpp, transformers or vllm (default: auto)"),
    parallel: int | None = typer.Option(None, help="sequences decoded together (default: 4)"),
    context: int | None = typer.Option(None, help="context length in tokens (default: 4096)"),
    threads: int | None = typer.Option(None, "--threads", help=THREADS_HELP),
    api_key: list[str] | None = typer.Option(
        None, "--api-key", help="accepted API key, 'secret' or 'name:secret'"
    ),
    api_keys_file: Path | None = typer.Option(None, help="file with one API key per line"),
    lora: list[str] | None = typer.Option(
        None, "--lora", help="a LoRA adapter served as its own model, 'name=path' (repeatable)"
    ),
    config: Path | None = typer.Option(None, "--config", help="settings file (TOML or YAML)"),
    image_fetch_hosts: list[str] | None = typer.Option(
        None, "--image-fetch-hosts", help="fetch image URLs from these hosts ('*.example.com', '*': any "
        "public one; repeatable); default: none, images come as data: URLs",
    ),
    image_max_pixels: int | None = typer.Option(
        None, help="pixels an image is resized to at most when a request names no max_pixels (default: "
        "1280 tokens' worth, 1003520)",
    ),
    mmproj: str | None = MmprojOption,
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
    tensor_parallel_size: int | None = typer.Option(
        None, help="vllm: GPUs each layer is split across (divides the heads)", rich_help_panel=_VLLM
    ),
    pipeline_parallel_size: int | None = typer.Option(
        None, help="vllm: stages the layers are split into (one per node)", rich_help_panel=_VLLM
    ),
    data_parallel_size: int | None = typer.Option(None, help="vllm: model copies", rich_help_panel=_VLLM),
    distributed_executor: str | None = typer.Option(
        None, help="vllm: mp (this machine) or ray (a cluster)", rich_help_panel=_VLLM
    ),
    gpu_memory_utilization: float | None = typer.Option(
        None, help="vllm: share of each GPU's memory it may take (default: 0.9)", rich_help_panel=_VLLM
    ),
    quantization: str | None = typer.Option(
        None, help="vllm: awq, gptq or fp8 (default: what the checkpoint says)", rich_help_panel=_VLLM
    ),
    enable_prefix_caching: bool | None = typer.Option(
        None, "--enable-prefix-caching/--no-enable-prefix-caching", help="vllm: reuse cached prompt prefixes",
        rich_help_panel=_VLLM,
    ),
    enforce_eager: bool | None = typer.Option(
        None, "--enforce-eager/--no-enforce-eager",
        help="vllm: no torch.compile or CUDA graphs (starts sooner, decodes slower)", rich_help_panel=_VLLM,
    ),
) -> None:
    """Serve a model with OpenAI's API (chat, completions, models, tokenize) until SIGTERM."""
    try:
        from qwenkit.server import app as server_app  # noqa: F401  (fastapi, uvicorn: the serve extra)
        from qwenkit.server.settings import load_settings
    except ImportError as exc:
        raise MissingDependencyError.for_extra(exc.name or "fastapi", "serve") from exc
    from qwenkit.engine.registry import BACKEND_CHOICES, check_vllm_settings

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
        lora=lora,
        config_file=config,
        image_fetch_hosts=image_fetch_hosts,
        image_max_pixels=image_max_pixels,
        mmproj=mmproj,
        log_prompts=log_prompts,
        log_level=log_level,
        request_timeout=request_timeout,
        drain_timeout=drain_timeout,
        tensor_parallel_size=tensor_parallel_size,
        pipeline_parallel_size=pipeline_parallel_size,
        data_parallel_size=data_parallel_size,
        distributed_executor=distributed_executor,
        gpu_memory_utilization=gpu_memory_utilization,
        quantization=quantization,
        enable_prefix_caching=enable_prefix_caching,
        enforce_eager=enforce_eager,
    )
    if settings.backend not in BACKEND_CHOICES:  # from the environment or the config file
        known = ", ".join(BACKEND_CHOICES)
        raise UsageError(f"unknown backend {settings.backend!r}; choose one of: {known}", param="backend")
    check_vllm_settings(settings.backend, settings.vllm_settings)  # before anything loads
    serve_until_stopped(settings, announce)
