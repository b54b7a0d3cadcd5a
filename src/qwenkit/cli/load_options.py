"""Options shared by every command that loads a model (run, chat, serve, bench)."""

from __future__ import annotations

from dataclasses import dataclass

import typer

from qwenkit.models import DEFAULT_MODEL

REF_HELP = "catalog id[:quant], Hub repo id, model directory or .gguf file (default: the default model)"


@dataclass(frozen=True)
class LoadOptions:
    ref: str
    backend: str
    context: int
    threads: int | None
    parallel: int

    def load(self, *, progress: bool = True):  # type: ignore[no-untyped-def]
        from qwenkit.engine.llm import load

        return load(
            self.ref,
            backend=self.backend,
            context=self.context,
            threads=self.threads,
            parallel=self.parallel,
            progress=progress,
        )


BackendOption = typer.Option("auto", "--backend", help="auto, llamacpp or transformers")
ContextOption = typer.Option(4096, "--context", help="context length in tokens, per sequence")
ThreadsOption = typer.Option(None, "--threads", help="CPU threads (default: physical cores)")


def load_options(
    ref: str | None, backend: str, context: int, threads: int | None, parallel: int = 1
) -> LoadOptions:
    return LoadOptions(ref or DEFAULT_MODEL, backend, context, threads, parallel)
