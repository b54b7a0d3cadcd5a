"""Final-answer extraction for math outputs that follow the ``\\boxed{}`` convention.

Qwen2.5-Math and Qwen3 put the final answer in ``\\boxed{...}`` (sometimes ``\\fbox{...}``); the
answer itself may hold braces (``\\boxed{\\frac{1}{2}}``), so it is found by brace matching, not by a
regex. One pass over the text; escaped braces (``\\{``, ``\\}``) do not count.
"""

from __future__ import annotations

import re

_TOKENS = re.compile(
    r"(?P<box>\\(?:boxed|fbox)\s*\{)|\\boxed[ \t]+(?P<bare>[^\s${}]+)|(?P<escaped>\\[{}])"
    r"|(?P<open>\{)|(?P<close>\})"
)


def boxed_answers(text: str) -> list[str]:
    """Every complete outermost ``\\boxed{}``/``\\fbox{}`` content, in order; unclosed ones are skipped."""
    found: list[str] = []
    stack: list[tuple[bool, int]] = []  # (opened by a box command, content start)
    open_boxes = 0
    for match in _TOKENS.finditer(text):
        kind = match.lastgroup
        if kind == "box":
            stack.append((True, match.end()))
            open_boxes += 1
        elif kind == "bare":
            if not open_boxes:
                found.append(match.group("bare"))
        elif kind == "open":
            stack.append((False, match.end()))
        elif kind == "close" and stack:
            is_box, start = stack.pop()
            if is_box:
                open_boxes -= 1
                if not open_boxes:
                    found.append(text[start : match.start()].strip())
    return found


def extract_boxed_answer(text: str) -> str | None:
    """The last complete boxed answer, or None when the text boxes nothing."""
    answers = boxed_answers(text)
    return answers[-1] if answers else None
