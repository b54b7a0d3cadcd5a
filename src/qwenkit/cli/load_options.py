"""Options shared by every command that loads a model (run, chat, serve, bench, doctor).

Their values are checked while the command line is parsed, so that a bad one fails at once, before a
model is fetched or loaded. The engine is imported only then: every run of the CLI builds these options.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import typer

from qwenkit.defaults import DEFAULT_MODEL, MAX_CONTEXT, MIN_CONTEXT

REF_HELP = "catalog id[:quant], Hub repo id, model directory or .gguf file (default: the default model)"
THREADS_HELP = "CPU threads for decoding (default: the physical cores)"


@dataclass(frozen=True)
class LoadOptions:
    ref: str
    backend: str
    context: int
    threads: int | None
    parallel: int
    mmproj: str | None = None

    def load(self, *, progress: bool = True):  # type: ignore[no-untyped-def]
        from qwenkit.engine.llm import load

        extra = {"mmproj": self.mmproj} if self.mmproj is not None else {}
        return load(
            self.ref,
            backend=self.backend,
            context=self.context,
            threads=self.threads,
            parallel=self.parallel,
            progress=progress,
            **extra,
        )


def check_backend(name: str | None) -> str | None:
    """A typer callback: the backend must be one we have, before anything is loaded."""
    if name is None or name == "auto":  # the default, known without importing the engine
        return name
    from qwenkit.engine.registry import BACKEND_CHOICES

    if name not in BACKEND_CHOICES:
        raise typer.BadParameter(f"{name!r} is not a backend; choose one of: {', '.join(BACKEND_CHOICES)}")
    return name


def backend_option(default: str | None = "auto", help: str = "auto, llamacpp, transformers or vllm") -> Any:
    return typer.Option(default, "--backend", help=help, callback=check_backend)


def context_option(default: int | None = 4096, help: str = "context length in tokens, per sequence") -> Any:
    return typer.Option(default, "--context", min=MIN_CONTEXT, max=MAX_CONTEXT, help=help)


BackendOption = backend_option()
ContextOption = context_option()
ThreadsOption = typer.Option(None, "--threads", min=1, help=THREADS_HELP)
MmprojOption = typer.Option(
    None, "--mmproj", help="llama.cpp vision models: the projector GGUF (default: mmproj-NAME beside it)"
)


def load_options(
    ref: str | None, backend: str, context: int, threads: int | None, parallel: int = 1,
    mmproj: str | None = None,
) -> LoadOptions:
    return LoadOptions(ref or DEFAULT_MODEL, backend, context, threads, parallel, mmproj)
