"""The Jinja sandbox chat templates run in: no Python internals, bounded work and bounded size.

Chat templates come with downloaded models, so they are untrusted code (CVE-2024-34359 was a GGUF
template escaping a plain Jinja environment). ``ImmutableSandboxedEnvironment`` blocks attribute
access to internals; on top of it we (1) turn an unsafe attribute access into an immediate error
instead of a silently empty value, (2) count loop iterations and calls against a per-render budget
with a deadline, and (3) refuse operations that would build strings or lists beyond a size cap.
The filters and globals mirror what ``transformers`` gives chat templates, so templates render the same.
"""

from __future__ import annotations

import json
import re
import string
import time
from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import jinja2
import jinja2.ext
import jinja2.filters
import jinja2.nodes as nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError
from jinja2.utils import Namespace
from jinja2.visitor import NodeTransformer

from qwenkit.errors import TemplateError

ITER_GUARD = "__qwenkit_iter_guard"
CONCAT_GUARD = "__qwenkit_concat_guard"


@dataclass
class RenderBudget:
    """What one render may spend; exceeding any limit raises ``TemplateError``."""

    max_chars: int = 32 * 1024 * 1024
    max_steps: int = 2_000_000
    max_seconds: float = 10.0
    steps: int = 0
    deadline: float = field(default=0.0)

    def start(self) -> RenderBudget:
        self.deadline = time.monotonic() + self.max_seconds
        return self

    def step(self) -> None:
        self.steps += 1
        if self.steps > self.max_steps:
            raise TemplateError(f"chat template exceeded its budget of {self.max_steps} loop steps and calls")
        if self.steps % 1024 == 0 and time.monotonic() > self.deadline:
            raise TemplateError(f"chat template ran longer than {self.max_seconds:g} s")

    def check_size(self, size: int, what: str) -> None:
        if size > self.max_chars:
            raise TemplateError(
                f"chat template tried to build a {what} of size {size} (limit {self.max_chars})"
            )


_BUDGET: ContextVar[RenderBudget | None] = ContextVar("qwenkit_template_budget", default=None)


def active_budget() -> RenderBudget:
    budget = _BUDGET.get()
    return budget if budget is not None else RenderBudget().start()


def run_with_budget(budget: RenderBudget, fn: Callable[[], str]) -> str:
    token = _BUDGET.set(budget.start())
    try:
        return fn()
    finally:
        _BUDGET.reset(token)


def _iter_guard(iterable: Iterable[Any]) -> Iterator[Any]:
    budget = active_budget()
    for item in iterable:
        budget.step()
        yield item


def _concat_guard(*parts: Any) -> str:
    texts = [str(p) for p in parts]
    active_budget().check_size(sum(map(len, texts)), "string")
    return "".join(texts)


class _GuardTransformer(NodeTransformer):
    """Route every for-loop's iterable and every ``~`` concatenation through the budget guards."""

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        guard = nodes.Name(ITER_GUARD, "load", lineno=node.lineno)
        node.iter = nodes.Call(guard, [node.iter], [], None, None, lineno=node.lineno)
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        guard = nodes.Name(CONCAT_GUARD, "load", lineno=node.lineno)
        return nodes.Call(guard, list(node.nodes), [], None, None, lineno=node.lineno)


_WIDTH_RE = re.compile(r"%[#0\- +]*(\d*)(?:\.(\d*))?")


def _check_widths(numbers: Iterable[str], args: Iterable[Any]) -> None:
    """printf/format widths (literal or passed as ``*`` arguments) are output sizes: cap them."""
    budget = active_budget()
    for num in numbers:
        if num:
            budget.check_size(int(num), "formatted string")
    for arg in args:
        if isinstance(arg, int) and not isinstance(arg, bool):
            budget.check_size(abs(arg), "formatted string")


def _printf_check(fmt: str, args: Any) -> None:
    values = args if isinstance(args, tuple) else (args,)
    _check_widths((n for m in _WIDTH_RE.finditer(fmt) for n in m.groups() if n), values)


def _str_format_check(fmt: str, args: Iterable[Any]) -> None:
    specs = [spec for _, _, spec, _ in string.Formatter().parse(fmt) if spec]
    _check_widths((n for spec in specs for n in re.findall(r"\d+", spec)), args)


def _sized(value: Any) -> int:
    return len(value) if isinstance(value, (str, list, tuple)) else 0


def _estimate_str_method(name: str, s: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    """Upper bound of a str method's result size, before it allocates anything."""
    if name in ("center", "ljust", "rjust", "zfill") and args and isinstance(args[0], int):
        return max(len(s), args[0])
    if name == "expandtabs":
        size = args[0] if args else kwargs.get("tabsize", 8)
        return len(s) * max(1, size if isinstance(size, int) else 8)
    if name == "replace" and len(args) >= 2 and isinstance(args[0], str) and isinstance(args[1], str):
        return len(s) + (s.count(args[0]) + 1) * max(0, len(args[1]) - len(args[0]))
    if name == "join" and args and isinstance(args[0], (list, tuple)):
        return sum(len(str(x)) for x in args[0]) + len(s) * len(args[0])
    return 0


class QwenkitSandbox(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**", "%", "+"})

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        tree = super()._parse(source, name, filename)
        guarded = _GuardTransformer().visit(tree)
        guarded.set_environment(self)
        return guarded  # type: ignore[no-any-return]

    def unsafe_undefined(self, obj: Any, attribute: str) -> jinja2.Undefined:
        raise SecurityError(
            f"access to attribute {attribute!r} of a {type(obj).__name__!r} object is not allowed"
        )

    def call_binop(self, context: jinja2.runtime.Context, operator: str, left: Any, right: Any) -> Any:
        budget = active_budget()
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                if _sized(seq) and isinstance(times, int):
                    budget.check_size(_sized(seq) * times, "sequence")
        elif operator == "**" and isinstance(right, (int, float)) and abs(right) > 1024:
            if isinstance(left, (int, float)) and abs(left) > 1:
                raise TemplateError(f"chat template tried to compute a huge power ({left!r} ** {right!r})")
        elif operator == "%" and isinstance(left, str):
            _printf_check(left, right)
        elif operator == "+" and _sized(left) and _sized(right):
            budget.check_size(_sized(left) + _sized(right), "sequence")
        return super().call_binop(context, operator, left, right)

    def call(__self, __context: jinja2.runtime.Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        budget = active_budget()
        budget.step()
        owner = getattr(__obj, "__self__", None)
        if isinstance(owner, str):
            name = getattr(__obj, "__name__", "")
            budget.check_size(_estimate_str_method(name, owner, args, kwargs), "string")
        result = super().call(__context, __obj, *args, **kwargs)
        budget.check_size(_sized(result), "value")
        return result

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        fmt: str = value.__self__

        def checked(*args: Any, **kwargs: Any) -> str:
            values = list(args) + list(kwargs.values())
            if value.__name__ == "format_map" and args and isinstance(args[0], dict):
                values = list(args[0].values())
            _str_format_check(fmt, values)
            return wrapped(*args, **kwargs)

        return checked


class _GenerationBlock(jinja2.ext.Extension):
    """Accept transformers' ``{% generation %}`` tag (assistant-mask tracking) as a no-op wrapper."""

    tags = {"generation"}  # noqa: RUF012 - Jinja reads this class attribute

    def parse(self, parser: jinja2.parser.Parser) -> nodes.Node:
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        return nodes.CallBlock(self.call_method("_render_body"), [], [], body).set_lineno(lineno)

    def _render_body(self, caller: Callable[[], str]) -> str:
        return caller()


class _TemplateNamespace(Namespace):
    """``namespace()`` that refuses underscore names, as transformers' does."""

    def __init__(*args: Any, **kwargs: Any) -> None:
        self, rest = args[0], args[1:]
        attrs = dict(*rest, **kwargs)
        for name in attrs:
            _TemplateNamespace._check_name(name)
        Namespace.__init__(self, attrs)

    def __setitem__(self, name: str, value: Any) -> None:
        _TemplateNamespace._check_name(name)
        Namespace.__setitem__(self, name, value)

    @staticmethod
    def _check_name(name: Any) -> None:
        if isinstance(name, str) and name.startswith("_"):
            raise SecurityError(
                f"chat templates cannot store underscore-prefixed names on a namespace ({name!r})"
            )


class _TemplateDict:
    """``dict(...)`` for templates without exposing the dict type itself."""

    def __call__(self, *args: Any, **kwargs: Any) -> dict[Any, Any]:
        return dict(*args, **kwargs)

    def fromkeys(self, *args: Any, **kwargs: Any) -> dict[Any, Any]:
        return dict.fromkeys(*args, **kwargs)


def _raise_exception(message: str) -> None:
    raise jinja2.exceptions.TemplateError(message)


def _tojson(
    x: Any,
    ensure_ascii: bool = False,
    indent: int | None = None,
    separators: Any = None,
    sort_keys: bool = False,
) -> str:
    """transformers' tojson: plain json.dumps, no HTML escaping, non-ASCII kept."""
    if indent is not None:
        active_budget().check_size(abs(indent) if isinstance(indent, int) else len(str(indent)), "indent")
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def _strftime_now(fmt: str) -> str:
    return datetime.now().strftime(fmt)


def _center(value: str, width: int = 80) -> str:
    active_budget().check_size(width, "string")
    return jinja2.filters.do_center(value, width)


def _indent(s: str, width: int | str = 4, first: bool = False, blank: bool = False) -> str:
    pad = width if isinstance(width, int) else len(width)
    active_budget().check_size(pad * (str(s).count("\n") + 1) + len(str(s)), "string")
    return jinja2.filters.do_indent(s, width, first, blank)


def _format(value: str, *args: Any, **kwargs: Any) -> str:
    _printf_check(str(value), kwargs or args)
    return jinja2.filters.do_format(value, *args, **kwargs)


@jinja2.pass_eval_context
def _replace(eval_ctx: Any, s: str, old: str, new: str, count: int | None = None) -> str:
    text = str(s)
    active_budget().check_size(_estimate_str_method("replace", text, (str(old), str(new)), {}), "string")
    return jinja2.filters.do_replace(eval_ctx, s, old, new, count)


@jinja2.pass_eval_context
def _join(eval_ctx: Any, value: Iterable[Any], d: str = "", attribute: Any = None) -> str:
    items = list(value)
    if attribute is None:
        active_budget().check_size(sum(len(str(x)) for x in items) + len(d) * len(items), "string")
    result = jinja2.filters.do_join(eval_ctx, items, d, attribute)
    active_budget().check_size(len(result), "string")
    return result


def build_environment() -> QwenkitSandbox:
    """A fresh sandbox configured like transformers' chat-template environment."""
    env = QwenkitSandbox(
        trim_blocks=True,
        lstrip_blocks=True,
        extensions=[_GenerationBlock, jinja2.ext.loopcontrols],
        autoescape=False,
        keep_trailing_newline=False,
    )
    env.globals.pop("lipsum", None)  # lipsum(n) builds unbounded text and no chat template needs it
    env.globals.update(
        {
            "raise_exception": _raise_exception,
            "strftime_now": _strftime_now,
            "dict": _TemplateDict(),
            "namespace": _TemplateNamespace,
            ITER_GUARD: _iter_guard,
            CONCAT_GUARD: _concat_guard,
        }
    )
    env.filters.update(
        {
            "tojson": _tojson,
            "center": _center,
            "indent": _indent,
            "format": _format,
            "replace": _replace,
            "join": _join,
        }
    )
    return env
