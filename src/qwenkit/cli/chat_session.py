"""The interactive chat loop, separate from terminal I/O so that tests can drive it."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from qwenkit.chat.events import ContentDelta, ReasoningDelta, ToolCall
from qwenkit.cli.notices import NO_THINKING, can_think, cut_notice
from qwenkit.engine.chat_run import ChatResult
from qwenkit.engine.image_prompt import ImagePrompt
from qwenkit.engine.llm import LLM
from qwenkit.engine.params import ChatParams
from qwenkit.errors import QwenkitError, UsageError

HELP = (
    "commands: /think  /no_think  /image FILE  /reset  /save FILE  /exit"
    "   (end a line with \\ to continue it)"
)


@dataclass
class ChatSession:
    """A conversation with a loaded model; ``send`` streams one answer to ``console``."""

    llm: LLM
    system: str | None = None
    thinking: bool | None = None
    thinking_budget: int | None = None
    max_tokens: int | None = None
    console: Console = field(default_factory=Console)
    err_console: Console = field(default_factory=lambda: Console(stderr=True))
    messages: list[dict[str, Any]] = field(default_factory=list)
    images: list[str] = field(default_factory=list)  # attached to the next message

    def __post_init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.messages = [{"role": "system", "content": self.system}] if self.system else []
        self.images = []

    def attach(self, path: str) -> int:
        """/image FILE: the next message shows this image. Read and sized now, so that a wrong path or
        a file that is no image is said before the question is typed; returns its image tokens."""
        if not path:
            raise UsageError("usage: /image FILE")
        target = Path(path).expanduser()
        if not target.is_file():
            raise UsageError(f"no image file at {target}")
        try:  # the model's own check: text only, no projector, not an image, too large
            prompt = self.llm.encode([{"role": "user", "content": [{"type": "image", "image": str(target)}]}],
                                     ChatParams())
        except QwenkitError as exc:
            raise UsageError(str(exc).removeprefix("messages[0].content[0]: ")) from exc
        self.images.append(str(target))
        return sum(image.tokens for image in prompt.prepared) if isinstance(prompt, ImagePrompt) else 0

    def warn(self, message: str) -> None:
        self.err_console.print(f"warning: {message}", style="yellow", markup=False, highlight=False)

    def set_thinking(self, on: bool) -> None:
        """/think and /no_think; a model without a thinking mode says so instead of pretending."""
        if not can_think(self.llm):
            self.warn(f"/{'think' if on else 'no_think'} changes nothing: {NO_THINKING}")
            return
        self.thinking = on
        self.console.print("thinking on" if on else "thinking off", style="dim")

    def save(self, path: str) -> Path:
        if not path:
            raise UsageError("usage: /save FILE")
        target = Path(path).expanduser()
        try:
            target.write_text(json.dumps({"messages": self.messages}, indent=2, ensure_ascii=False) + "\n")
        except OSError as exc:
            raise UsageError(f"cannot write {target}: {exc.strerror}") from exc
        return target

    def _user_message(self, text: str) -> dict[str, Any]:
        if not self.images:
            return {"role": "user", "content": text}
        parts: list[dict[str, str]] = [{"type": "image", "image": path} for path in self.images]
        return {"role": "user", "content": [*parts, {"type": "text", "text": text}]}

    def send(self, text: str) -> ChatResult:
        params = ChatParams(
            enable_thinking=self.thinking, thinking_budget=self.thinking_budget, max_tokens=self.max_tokens
        )
        # The turn joins the conversation once it has started: a refused one leaves it as it was.
        messages = [*self.messages, self._user_message(text)]
        stream = self.llm.start_chat(messages, params)
        self.messages, self.images = messages, []
        try:
            for event in stream:
                if isinstance(event, ReasoningDelta):
                    self.console.print(event.text, style="dim", end="", markup=False, highlight=False)
                elif isinstance(event, ContentDelta):
                    self.console.print(event.text, end="", markup=False, highlight=False)
                elif isinstance(event, ToolCall):
                    self.console.print(f"\n[tool call] {event.name}({event.arguments})", markup=False)
        except KeyboardInterrupt:
            stream.cancel()
            self.console.print("\n[interrupted]", style="yellow")
        result = stream.result()
        self.messages.append(
            {"role": "assistant", "content": result.content, "reasoning_content": result.reasoning}
        )
        self.console.print(
            f"\n[{result.usage.completion_tokens} tokens, {result.decode_tokens_per_second:.1f} tok/s, "
            f"first token {result.time_to_first_token * 1000:.0f} ms]",
            style="dim cyan",
            markup=False,
        )
        for warning in result.warnings:
            self.warn(warning)
        notice = cut_notice(result, self.max_tokens, self.llm.context_length)
        if notice:
            self.err_console.print(notice, style="yellow", markup=False, highlight=False)
        return result


def _command(session: ChatSession, line: str) -> bool:
    """Handle a /command; False means: leave the loop."""
    name, _, arg = line.partition(" ")
    if name in ("/exit", "/quit", "/bye"):
        return False
    if name in ("/think", "/no_think"):
        session.set_thinking(name == "/think")
    elif name == "/reset":
        session.reset()
        session.console.print("conversation cleared", style="dim")
    elif name == "/save":
        session.console.print(f"saved to {session.save(arg.strip())}", style="dim")
    elif name == "/image":
        tokens = session.attach(arg.strip())
        session.console.print(f"image attached to the next message ({tokens} image tokens)", style="dim")
    else:
        session.console.print(HELP, style="yellow")
    return True


def read_message(input_fn: Callable[[str], str]) -> str:
    """One message; a line ending in a backslash continues on the next line."""
    lines: list[str] = []
    prompt = ">>> "
    while True:
        line = input_fn(prompt)
        if line.endswith("\\"):
            lines.append(line[:-1])
            prompt = "... "
            continue
        lines.append(line)
        return "\n".join(lines)


def run_repl(session: ChatSession, input_fn: Callable[[str], str]) -> None:
    session.console.print(HELP, style="dim")
    while True:
        try:
            text = read_message(input_fn).strip()
        except EOFError:
            return
        if not text:
            continue
        try:
            if text.startswith("/"):
                if not _command(session, text):
                    return
                continue
            session.send(text)
        except QwenkitError as exc:
            session.console.print(f"error: {exc}", style="red", markup=False)
