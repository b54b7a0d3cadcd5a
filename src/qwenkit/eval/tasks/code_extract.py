"""Code out of a chat answer, as EvalPlus's sanitizer does it (the facts, re-implemented on ``ast``).

An instruct model answers in prose around one or more Markdown code blocks, sometimes with no block,
sometimes cut off inside one. The block that defines the entry point wins (the longest, if several
do); a block that does not parse (cut off by the token limit) is cut to its longest run of lines
that parses; without blocks, the same over the whole answer. Then only what the entry point needs is
kept: imports, and the top-level functions, classes and assignments it reaches; example calls,
prints, asserts and ``if __name__ == "__main__"`` blocks go (they could fail or never end).
"""

from __future__ import annotations

import ast
import re

_FENCE = re.compile(r"```[ \t]*([\w+#.-]*)[^\n]*\n(.*?)(?:\n[ \t]*```|\Z)", re.DOTALL)
_PYTHON_TAGS = frozenset({"", "python", "py", "python3", "pycon"})
_MAX_SPAN_LINES = 300  # the quadratic span search runs on answers up to this many lines


def code_blocks(text: str) -> list[str]:
    """Bodies of the Markdown code blocks tagged Python or untagged; an unclosed last block counts."""
    return [m.group(2) for m in _FENCE.finditer(text) if m.group(1).lower() in _PYTHON_TAGS]


def parses(code: str) -> bool:
    try:
        ast.parse(code)
    except (SyntaxError, ValueError):
        return False
    return True


def _lines_of_code(code: str) -> int:
    return sum(1 for line in code.splitlines() if line.strip())


def defines(code: str, name: str) -> bool:
    """Whether ``code`` parses and defines ``name`` at its top level."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return False
    return any(isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == name for n in tree.body)


def longest_parsing_span(text: str) -> str:
    """The run of consecutive lines with the most code lines that parses on its own ("" if none)."""
    lines = text.splitlines()[:_MAX_SPAN_LINES]
    best, best_len = "", 0
    for i in range(len(lines)):
        if not lines[i].strip():
            continue
        for j in range(len(lines), i, -1):
            candidate = "\n".join(lines[i:j])
            size = _lines_of_code(candidate)
            if size <= best_len:
                break  # shorter spans from i cannot win
            if parses(candidate):
                best, best_len = candidate, size
                break
    return best


def raw_code(text: str, entry_point: str) -> str:
    blocks = [b if parses(b) else longest_parsing_span(b) for b in code_blocks(text)]  # cut ones too
    if any(b.strip() for b in blocks):
        defining = [b for b in blocks if defines(b, entry_point)]
        if defining:
            return max(defining, key=_lines_of_code)
        parsing = [b for b in blocks if parses(b)]
        return max(parsing or blocks, key=_lines_of_code)
    if parses(text):
        return text
    return longest_parsing_span(text)


def _names_used(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)} | {
        n.value.id for n in ast.walk(node) if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name)
    }


def _defined_name(node: ast.stmt) -> str | None:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return node.name
    if isinstance(node, (ast.Assign, ast.AnnAssign)):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        names = [t.id for t in targets if isinstance(t, ast.Name)]
        return names[0] if names else None
    return None


def sanitize(code: str, entry_point: str) -> str:
    """Imports plus the definitions reachable from ``entry_point``; unparseable code is returned as is."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return code
    imports = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    definitions: dict[str, ast.stmt] = {}
    for node in tree.body:
        name = _defined_name(node)
        if name is not None:
            definitions[name] = node  # a later definition replaces an earlier one, as at run time
    if entry_point not in definitions:
        return code
    keep, queue = {entry_point}, [entry_point]
    while queue:
        for used in _names_used(definitions[queue.pop()]):
            if used in definitions and used not in keep:
                keep.add(used)
                queue.append(used)
    kept = [n for n in tree.body if n in imports or (definitions.get(_defined_name(n) or "") is n
            and _defined_name(n) in keep)]
    lines = code.splitlines()
    return "\n".join("\n".join(lines[_first_line(n) - 1 : n.end_lineno]) for n in kept)


def _first_line(node: ast.stmt) -> int:
    """Where a top-level statement starts, decorators included (1-based)."""
    decorators = getattr(node, "decorator_list", [])
    return min([node.lineno, *(d.lineno for d in decorators)])


def extract_code(text: str, entry_point: str) -> str:
    """The code to test from a chat answer: the right block, stripped to what the entry point needs."""
    return sanitize(raw_code(text, entry_point), entry_point)
