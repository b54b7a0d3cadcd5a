"""Prompt builders: message lists for common tasks, and token ids for Coder fill-in-the-middle.

Chat prompts are returned as typed ``Message`` lists (what ``normalize_messages`` yields) so that
the chat template, not string concatenation, turns them into ChatML. FIM prompts have no chat template:
they are built as ids, where only the FIM/repo markers are special tokens and every piece of caller
text goes through ``encode_text``, so a ``<|fim_middle|>`` typed inside the code stays plain text.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from qwenkit.chat.messages import Message
from qwenkit.chat.tokenizer import Tokenizer
from qwenkit.errors import UsageError

#: Qwen2.5-Math's recommended system prompts, by reasoning mode (chain of thought, tool-integrated).
MATH_SYSTEM_PROMPTS: dict[str, str] = {
    "cot": "Please reason step by step, and put your final answer within \\boxed{}.",
    "tir": (
        "Please integrate natural language reasoning with programs to solve the problem above, "
        "and put your final answer within \\boxed{}."
    ),
}

FIM_PREFIX = "<|fim_prefix|>"
FIM_SUFFIX = "<|fim_suffix|>"
FIM_MIDDLE = "<|fim_middle|>"
REPO_NAME = "<|repo_name|>"
FILE_SEP = "<|file_sep|>"


_LEADING_BLANK_LINES = re.compile(r"\A(?:[ \t]*\r?\n)+")


def _require_text(value: object, param: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise UsageError(f"{param} must be a non-empty string", param=param)
    return value.strip()


def _with_system(system: str | None, user: str) -> list[Message]:
    messages: list[Message] = []
    if system is not None:
        messages.append(Message(role="system", content=_require_text(system, "system")))
    messages.append(Message(role="user", content=user))
    return messages


def _fence(body: str) -> str:
    """A backtick fence longer than any backtick run in ``body``, so quoted code cannot close it."""
    longest = max((len(run) for run in re.findall(r"`+", body)), default=0)
    return "`" * max(3, longest + 1)


def step_by_step(question: str, *, system: str | None = None) -> list[Message]:
    """Ask for explicit reasoning before a clearly marked final answer."""
    q = _require_text(question, "question")
    user = (
        f"{q}\n\nThink through this step by step, showing each step briefly. "
        "Then give the final answer on its own last line, starting with 'Answer:'."
    )
    return _with_system(system, user)


def coding_task(
    task: str,
    *,
    language: str,
    context: str | None = None,
    constraints: Sequence[str] = (),
    system: str | None = None,
) -> list[Message]:
    """A code-writing request with its language, optional existing code, and hard constraints."""
    what = _require_text(task, "task")
    lang = _require_text(language, "language")
    if isinstance(constraints, str):
        raise UsageError("constraints is a list of strings, not one string", param="constraints")
    rules = [_require_text(c, "constraints") for c in constraints]
    parts = [f"Write {lang} code for the following task.", f"Task:\n{what}"]
    if context is not None:
        _require_text(context, "context")
        code = _LEADING_BLANK_LINES.sub("", context).rstrip()  # the first line keeps its indentation
        fence = _fence(code)
        parts.append(f"Existing code to build on:\n{fence}{lang.lower()}\n{code}\n{fence}")
    if rules:
        parts.append("Constraints:\n" + "\n".join(f"- {rule}" for rule in rules))
    parts.append(f"Reply with the complete code in a single {lang} code block, then a short explanation.")
    return _with_system(system, "\n\n".join(parts))


def multilingual_answer(
    question: str, languages: Sequence[str], *, system: str | None = None
) -> list[Message]:
    """One answer per language, in the order given, each under the language's name."""
    q = _require_text(question, "question")
    if isinstance(languages, str):
        raise UsageError("languages is a list of language names, not one string", param="languages")
    names = [_require_text(lang, "languages") for lang in languages]
    if len(names) < 1:
        raise UsageError("multilingual_answer needs at least one language", param="languages")
    if len({n.casefold() for n in names}) != len(names):
        raise UsageError(f"languages are repeated: {', '.join(names)}", param="languages")
    listed = ", ".join(names)
    user = (
        f"Answer the question below in {len(names)} language{'s' if len(names) > 1 else ''}: {listed}. "
        "Give the same answer in each, under a heading with the language's name, in that order.\n\n"
        f"Question: {q}"
    )
    return _with_system(system, user)


def math_boxed(problem: str, *, mode: str = "cot") -> list[Message]:
    """Qwen2.5-Math's recommended form: its system prompt, then the problem as the user turn."""
    if mode not in MATH_SYSTEM_PROMPTS:
        raise UsageError(
            f"unknown math prompt mode {mode!r}; choose one of {', '.join(MATH_SYSTEM_PROMPTS)}", param="mode"
        )
    return [
        Message(role="system", content=MATH_SYSTEM_PROMPTS[mode]),
        Message(role="user", content=_require_text(problem, "problem")),
    ]


def _special(tokenizer: Tokenizer, marker: str) -> int:
    token_id = tokenizer.special_tokens.get(marker)
    if token_id is None:
        raise UsageError(
            f"this tokenizer has no {marker} token: "
            "fill-in-the-middle needs a Qwen2.5-Coder or Qwen3 tokenizer"
        )
    return token_id


def _single_line(value: object, param: str) -> str:
    text = _require_text(value, param)
    if "\n" in str(value) or "\r" in str(value):  # a trailing newline too: the prompt uses the value
        raise UsageError(f"{param} must be a single line", param=param)
    return text


@dataclass(frozen=True)
class FimPrompt:
    """Code before and after the hole; the model writes what goes in between."""

    prefix: str
    suffix: str

    def __post_init__(self) -> None:
        if not isinstance(self.prefix, str) or not isinstance(self.suffix, str):
            raise UsageError("FIM prefix and suffix must be strings")
        if not self.prefix and not self.suffix:
            raise UsageError("FIM needs a non-empty prefix or suffix")

    def encode(self, tokenizer: Tokenizer) -> list[int]:
        """``<|fim_prefix|>{prefix}<|fim_suffix|>{suffix}<|fim_middle|>`` (Qwen2.5-Coder's PSM order)."""
        return [
            _special(tokenizer, FIM_PREFIX),
            *tokenizer.encode_text(self.prefix),
            _special(tokenizer, FIM_SUFFIX),
            *tokenizer.encode_text(self.suffix),
            _special(tokenizer, FIM_MIDDLE),
        ]


def encode_fim(prefix: str, suffix: str, tokenizer: Tokenizer) -> list[int]:
    return FimPrompt(prefix, suffix).encode(tokenizer)


@dataclass(frozen=True)
class RepoFile:
    path: str
    content: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", _single_line(self.path, "path"))  # as written into the prompt
        if not isinstance(self.content, str):
            raise UsageError(f"content of {self.path} must be a string", param="content")


def encode_repo(
    repo_name: str,
    files: Sequence[RepoFile],
    tokenizer: Tokenizer,
    *,
    fim: FimPrompt | None = None,
    fim_path: str | None = None,
) -> list[int]:
    """Qwen2.5-Coder's repository-level prompt, as ids.

    ``<|repo_name|>{name}\\n`` then ``<|file_sep|>{path}\\n{content}`` per file. Without ``fim`` the
    last file is the one being written and the model continues it; with ``fim`` every file is context
    and the hole lives in ``fim_path``: ``<|file_sep|>{fim_path}\\n<|fim_prefix|>...<|fim_middle|>``.
    """
    name = _single_line(repo_name, "repo_name")
    files = list(files)
    paths = [f.path for f in files]
    if len(set(paths)) != len(paths):
        raise UsageError("a repository prompt lists each file path once", param="files")
    if fim is None and fim_path is not None:
        raise UsageError("fim_path only makes sense together with fim", param="fim_path")
    if fim is None and not files:
        raise UsageError("repository completion needs a file to complete (the last one)", param="files")
    sep = _special(tokenizer, FILE_SEP)
    ids = [_special(tokenizer, REPO_NAME), *tokenizer.encode_text(f"{name}\n")]
    for position, item in enumerate(files):
        is_open_file = fim is None and position == len(files) - 1
        tail = "" if is_open_file else "\n"
        ids += [sep, *tokenizer.encode_text(f"{item.path}\n{item.content}{tail}")]
    if fim is not None:
        target = _single_line(fim_path, "fim_path")
        if target in paths:
            raise UsageError(f"{target} is both a context file and the file with the hole", param="fim_path")
        ids += [sep, *tokenizer.encode_text(f"{target}\n"), *fim.encode(tokenizer)]
    return ids
