"""``qwenkit run`` (one answer) and ``qwenkit chat`` (an interactive session)."""

from __future__ import annotations

import sys
from typing import Any

import typer

from qwenkit.chat.events import ContentDelta, Event, ReasoningDelta, ToolCall
from qwenkit.cli.app import app, err_console, print_json
from qwenkit.cli.chat_session import ChatSession, run_repl
from qwenkit.cli.load_options import REF_HELP, BackendOption, ContextOption, ThreadsOption, load_options
from qwenkit.engine.chat_run import ChatResult
from qwenkit.engine.params import ChatParams
from qwenkit.errors import UsageError


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


@app.command()
def run(
    args: list[str] = typer.Argument(..., metavar="[REF] PROMPT", help=f"REF: {REF_HELP}"),
    system: str | None = typer.Option(None, "--system", help="system prompt"),
    think: bool | None = typer.Option(None, "--think/--no-think", help="Qwen3 thinking mode"),
    thinking_budget: int | None = typer.Option(None, "--thinking-budget", help="most reasoning tokens"),
    max_tokens: int | None = typer.Option(None, "--max-tokens", help="most generated tokens"),
    temperature: float | None = typer.Option(None, "--temperature", help="default: the model's recommended"),
    seed: int | None = typer.Option(None, "--seed"),
    json_out: bool = typer.Option(False, "--json", help="one JSON object with answer, reasoning and usage"),
    backend: str = BackendOption,
    context: int = ContextOption,
    threads: int | None = ThreadsOption,
) -> None:
    """Answer one prompt: the answer on stdout, reasoning on stderr (or both in --json)."""
    ref, prompt = _split_args(args)
    messages = ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": prompt}
    ]
    params = ChatParams(
        enable_thinking=think,
        thinking_budget=thinking_budget,
        max_tokens=max_tokens,
        temperature=temperature,
        seed=seed,
    )
    with load_options(ref, backend, context, threads).load(progress=not json_out) as llm:
        stream = llm.start_chat(messages, params)
        if not json_out:
            for event in stream:
                print_event(event)
            sys.stdout.write("\n")
        result = stream.result()
    if json_out:
        print_json(result_dict(result))


@app.command()
def chat(
    ref: str | None = typer.Argument(None, help=REF_HELP),
    system: str | None = typer.Option(None, "--system", help="system prompt"),
    think: bool | None = typer.Option(None, "--think/--no-think", help="start with thinking on or off"),
    thinking_budget: int | None = typer.Option(None, "--thinking-budget"),
    max_tokens: int | None = typer.Option(None, "--max-tokens"),
    backend: str = BackendOption,
    context: int = ContextOption,
    threads: int | None = ThreadsOption,
) -> None:
    """Interactive chat: streaming answers, /think, /no_think, /reset, /save FILE, /exit."""
    with load_options(ref, backend, context, threads).load() as llm:
        session = ChatSession(
            llm, system=system, thinking=think, thinking_budget=thinking_budget, max_tokens=max_tokens
        )
        run_repl(session, input_fn=input)
