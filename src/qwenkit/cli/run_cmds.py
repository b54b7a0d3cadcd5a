"""``qwenkit run`` (one answer) and ``qwenkit chat`` (an interactive session).

The engine and the chat layer are imported inside the commands: every other command, and every
``--help``, imports this module too.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from qwenkit.cli.app import app, err_console, print_json, warn
from qwenkit.cli.load_options import (
    REF_HELP,
    BackendOption,
    ContextOption,
    MmprojOption,
    ThreadsOption,
    load_options,
)
from qwenkit.errors import UsageError

if TYPE_CHECKING:
    from qwenkit.chat.events import Event
    from qwenkit.engine.chat_run import ChatResult

BUDGET_HELP = "most reasoning tokens before Qwen's early stop (thinking models)"


def result_dict(result: ChatResult) -> dict[str, Any]:
    return {
        "content": result.content,
        "reasoning": result.reasoning,
        "tool_calls": [{"id": c.id, "name": c.name, "arguments": c.arguments} for c in result.tool_calls],
        "finish_reason": result.finish_reason,
        "usage": {
            "prompt_tokens": result.usage.prompt_tokens,
            "completion_tokens": result.usage.completion_tokens,
            "reasoning_tokens": result.usage.reasoning_tokens,
        },
        "timings": {
            "time_to_first_token": result.time_to_first_token,
            "decode_tokens_per_second": result.decode_tokens_per_second,
        },
        "thinking_stopped_early": result.thinking_stopped_early,
        "warnings": list(result.warnings),
    }


def print_event(event: Event) -> None:
    """Content to stdout as it streams; reasoning to stderr, so that stdout stays the answer."""
    from qwenkit.chat.events import ContentDelta, ReasoningDelta, ToolCall

    if isinstance(event, ContentDelta):
        sys.stdout.write(event.text)
        sys.stdout.flush()
    elif isinstance(event, ReasoningDelta):
        err_console.print(event.text, style="dim", end="", highlight=False, markup=False)
    elif isinstance(event, ToolCall):
        sys.stdout.write(f"\n[tool call] {event.name}({event.arguments})\n")


def _split_args(args: list[str]) -> tuple[str | None, str]:
    if len(args) == 1:
        return None, args[0]
    if len(args) == 2:
        return args[0], args[1]
    raise UsageError('usage: qwenkit run [REF] "prompt"')


def user_content(prompt: str, images: list[Path]) -> str | list[dict[str, str]]:
    """The prompt, after its images (checked here, before a model loads for nothing)."""
    if not images:
        return prompt
    for path in images:
        if not path.is_file():
            raise UsageError(f"no image file at {path}", param="--image")
    parts = [{"type": "image", "image": str(path)} for path in images]
    return [*parts, {"type": "text", "text": prompt}]


@app.command()
def run(
    args: list[str] = typer.Argument(..., metavar="[REF] PROMPT", help=f"REF: {REF_HELP}"),
    system: str | None = typer.Option(None, "--system", help="system prompt"),
    think: bool | None = typer.Option(None, "--think/--no-think", help="Qwen3 thinking mode"),
    thinking_budget: int | None = typer.Option(None, "--thinking-budget", min=0, help=BUDGET_HELP),
    max_tokens: int | None = typer.Option(None, "--max-tokens", min=1, help="most generated tokens"),
    temperature: float | None = typer.Option(
        None, "--temperature", min=0.0, max=2.0, help="default: the model's recommended"
    ),
    seed: int | None = typer.Option(None, "--seed"),
    json_out: bool = typer.Option(False, "--json", help="one JSON object with answer, reasoning and usage"),
    image: list[Path] = typer.Option(
        [], "--image", help="an image file for a vision model, before the prompt (repeatable)"
    ),
    backend: str = BackendOption,
    context: int = ContextOption,
    threads: int | None = ThreadsOption,
    mmproj: str | None = MmprojOption,
) -> None:
    """Answer one prompt: the answer on stdout; reasoning and warnings on stderr (or all in --json)."""
    ref, prompt = _split_args(args)
    messages = ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": user_content(prompt, image)}
    ]
    from qwenkit.cli.notices import ThinkingRequest, cut_notice  # the engine: after the cheap checks
    from qwenkit.engine.params import ChatParams
    from qwenkit.engine.sampling import SamplingOptions

    with load_options(ref, backend, context, threads, mmproj=mmproj).load(progress=not json_out) as llm:
        thinking = ThinkingRequest.for_model(llm, think, thinking_budget)
        params = ChatParams(
            enable_thinking=thinking.enable,
            thinking_budget=thinking.budget,
            max_tokens=max_tokens,
            sampling=SamplingOptions.create(temperature=temperature, seed=seed),
        )
        stream = llm.start_chat(messages, params)
        if not json_out:
            for event in stream:
                print_event(event)
            sys.stdout.write("\n")
            sys.stdout.flush()
        result = stream.result()
        notice = cut_notice(result, max_tokens, llm.context_length)
    warnings = [*thinking.warnings, *result.warnings]
    if json_out:
        print_json({**result_dict(result), "warnings": warnings})
        return
    for warning in warnings:
        warn(warning)
    if notice:
        err_console.print(notice, style="yellow", highlight=False, markup=False)


@app.command()
def chat(
    ref: str | None = typer.Argument(None, help=REF_HELP),
    system: str | None = typer.Option(None, "--system", help="system prompt"),
    think: bool | None = typer.Option(None, "--think/--no-think", help="start with thinking on or off"),
    thinking_budget: int | None = typer.Option(None, "--thinking-budget", min=0, help=BUDGET_HELP),
    max_tokens: int | None = typer.Option(None, "--max-tokens", min=1, help="most tokens per answer"),
    backend: str = BackendOption,
    context: int = ContextOption,
    threads: int | None = ThreadsOption,
    mmproj: str | None = MmprojOption,
) -> None:
    """Interactive chat: streaming answers, /think, /no_think, /image FILE, /reset, /save FILE, /exit."""
    from qwenkit.cli.chat_session import ChatSession, run_repl
    from qwenkit.cli.notices import ThinkingRequest

    with load_options(ref, backend, context, threads, mmproj=mmproj).load() as llm:
        thinking = ThinkingRequest.for_model(llm, think, thinking_budget)
        for warning in thinking.warnings:
            warn(warning)
        session = ChatSession(
            llm, system=system, thinking=thinking.enable, thinking_budget=thinking.budget,
            max_tokens=max_tokens,
        )
        run_repl(session, input_fn=input)
