"""Every option an error message or hint tells people to use exists on the commands that can show it.

The texts are read from the source (``hint=...`` and the message of every ``...Error(...)`` call, a
``hint`` variable followed to its assignments); each ``--option`` in them must be an option of every
command that can surface that module's errors (``REACH``), or, after ``qwenkit <command>`` in the
same clause, of that command. Commands named as ``qwenkit <command>`` must exist.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import typer

import qwenkit
from qwenkit.cli import app

SRC = Path(qwenkit.__file__).parent
OPTION = re.compile(r"(?<![\w-])(--[a-z][a-z0-9-]*)")
COMMAND = re.compile(r"\bqwenkit ([a-z][a-z-]*)")
COMMAND_CONTEXT = re.compile(r"[:`(]\s*$")  # "...: qwenkit pull", "`qwenkit catalog`": meant as a command

GROUP = typer.main.get_command(app)


def _options(cmd: Any) -> set[str]:
    """A command's --options; a group's (``tune``) are its subcommands' together."""
    subcommands = getattr(cmd, "commands", {}).values()
    own = {opt for p in cmd.params for opt in (*p.opts, *p.secondary_opts) if opt.startswith("--")}
    return own.union(*(_options(sub) for sub in subcommands))


COMMANDS: dict[str, set[str]] = {name: _options(cmd) for name, cmd in getattr(GROUP, "commands", {}).items()}
ALL = frozenset(COMMANDS)
MODEL_REF = frozenset({"pull", "rm", "info", "run", "chat", "serve", "bench", "doctor"})
LOADING = frozenset({"run", "chat", "serve", "bench", "doctor"})

# Which commands can show the errors raised in a module (the longest matching prefix decides).
REACH: dict[str, frozenset[str]] = {
    "errors.py": ALL,
    "catalog/": frozenset({"catalog", "select"}) | MODEL_REF,
    "catalog/select.py": frozenset({"select"}),
    "models/": MODEL_REF,
    "chat/": LOADING,
    "engine/": LOADING,
    "server/": frozenset({"serve"}),
    "bench/": frozenset({"bench"}),
    "bench/doctor": frozenset({"doctor"}),
    "cli/app.py": ALL,
    "cli/load_options.py": LOADING | {"select"},
    "cli/notices.py": frozenset({"run", "chat"}),
    "cli/chat_session.py": frozenset({"chat"}),
    "cli/convert_cmds.py": frozenset({"quantize"}),  # helpers of its --report; commands are found by name
    "convert/": frozenset({"convert"}),
    "convert/output.py": frozenset({"convert", "quantize"}),
    "convert/quantize": frozenset({"quantize"}),
    "convert/report.py": frozenset({"quantize"}),
    "convert/perplexity.py": frozenset({"perplexity", "quantize"}),
    "convert/kl.py": frozenset({"perplexity", "quantize"}),
    "convert/llama_eval.py": frozenset({"perplexity", "quantize"}),
    "eval/": frozenset({"eval"}),
    "media/fetch.py": frozenset({"serve"}),  # only a server fetches image URLs
    "finetune/": frozenset({"tune"}),
    "cli/tune_cmds.py": frozenset({"tune"}),  # a command group: its subcommands' options count
}


def _commands_in(module: str, function: str | None = None) -> frozenset[str]:
    """The commands defined in ``module`` (only the one whose callback is ``function``, if given)."""
    return frozenset(
        info.name or typer.main.get_command_name(info.callback.__name__)
        for info in app.registered_commands
        if info.callback is not None and info.callback.__module__ == module
        and function in (None, info.callback.__name__)
    )


@dataclass(frozen=True)
class Text:
    module: str  # relative to src/qwenkit
    line: int
    text: str  # the literal parts; formatted values become {}
    function: str | None = None  # the function it is in


def reach(item: Text) -> frozenset[str]:
    module = "qwenkit." + item.module.removesuffix(".py").replace("/", ".")
    in_command = _commands_in(module, item.function) if item.function else frozenset()
    keys = [k for k in REACH if item.module.startswith(k)]
    found = in_command or (REACH[max(keys, key=len)] if keys else _commands_in(module))
    if not found:
        raise AssertionError(f"add {item.module} to REACH: which commands can show its errors?")
    return found


def _literal(node: ast.AST) -> str:
    parts = []
    for sub in ast.walk(node):
        if isinstance(sub, ast.Constant) and isinstance(sub.value, str):
            parts.append(sub.value)
        elif isinstance(sub, ast.FormattedValue):
            parts.append("{}")
    return " ".join(parts)


def _name_of(func: ast.expr) -> str:
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""


def _assigned(scope: ast.AST, name: str) -> Iterator[ast.expr]:
    for node in ast.walk(scope):
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == name for t in node.targets):
            yield node.value


def _functions(tree: ast.Module) -> Iterator[tuple[ast.AST, str | None]]:
    """Every top-level function (its nested ones included), then the module body outside them."""
    top = [n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    classes = [n for n in tree.body if isinstance(n, ast.ClassDef)]
    methods = [n for c in classes for n in c.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    for function in [*top, *methods]:
        yield function, function.name
    rest = [n for n in tree.body if n not in top and n not in classes]
    yield ast.Module(body=rest, type_ignores=[]), None


def _texts_in(path: Path) -> Iterator[Text]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    relative = path.relative_to(SRC).as_posix()
    for scope, function in _functions(tree):
        for node in ast.walk(scope):
            if not isinstance(node, ast.Call) or not _name_of(node.func).endswith("Error"):
                continue
            values: list[ast.expr] = list(node.args[:1])
            for kw in node.keywords:
                if kw.arg == "hint" and isinstance(kw.value, ast.Name):
                    values += _assigned(scope, kw.value.id)
                elif kw.arg == "hint":
                    values.append(kw.value)
            for value in values:
                text = _literal(value)
                if "--" in text or "qwenkit " in text:
                    yield Text(relative, node.lineno, text, function)


def user_texts() -> list[Text]:
    found = {t for path in sorted(SRC.rglob("*.py")) for t in _texts_in(path)}
    return sorted(found, key=lambda t: (t.module, t.line))


def problems(item: Text) -> list[str]:
    """Options and commands in ``item`` that do not exist where it can be shown."""
    found = []
    for clause in item.text.split(";"):
        mentions = list(COMMAND.finditer(clause))
        found += [
            f"there is no command 'qwenkit {m.group(1)}'" for m in mentions
            if m.group(1) not in COMMANDS and COMMAND_CONTEXT.search(clause[: m.start()])
        ]
        named = next((m for m in mentions if m.group(1) in COMMANDS), None)
        for match in OPTION.finditer(clause):
            after_command = named is not None and match.start() > named.start()
            targets = {named.group(1)} if named and after_command else reach(item)
            found += [f"{match.group(1)} is not an option of 'qwenkit {c}'"
                      for c in sorted(targets) if match.group(1) not in COMMANDS[c]]
    return found


def _params() -> list[object]:
    return [pytest.param(item, id=f"{item.module}:{item.line}") for item in user_texts()]


def test_the_scan_finds_the_texts_it_checks() -> None:
    texts = [t.text for t in user_texts()]
    assert any("--device cuda --memory 24GB" in t for t in texts)  # a literal hint
    assert any("qwenkit catalog" in t for t in texts)  # a hint held in a variable
    assert any("(--url)" in t for t in texts)  # a message


@pytest.mark.parametrize("item", _params())
def test_options_named_to_users_exist(item: Text) -> None:
    assert problems(item) == [], item.text


def test_the_check_catches_a_wrong_option() -> None:
    wrong = Text("models/fetch.py", 1, "If you have the model, point --model at it")
    assert problems(wrong) == [f"--model is not an option of 'qwenkit {c}'"
                               for c in sorted(MODEL_REF) if c != "bench"]
    assert problems(Text("cli/app.py", 1, "try: qwenkit pulll x")) == ["there is no command 'qwenkit pulll'"]
    assert problems(Text("models/ref.py", 1, "download it: qwenkit pull --json x")) == []
