"""A scripted evaluation target: answers by item, records what it was asked."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from qwenkit.bench.target import TargetInfo
from qwenkit.eval.targets import Answer, GenSettings


class ScriptedTarget:
    """Answers each question (its last user message) from ``answers``; records what it was asked and
    the pre-filled openings it was given to continue."""

    def __init__(self, answers: Mapping[str, str], *, fail: Sequence[str] = ()) -> None:
        self.info = TargetInfo(kind="scripted", model="scripted-model")
        self.answers = dict(answers)
        self.fail = set(fail)
        self.asked: list[str] = []
        self.settings: list[GenSettings] = []
        self.prefills: list[str] = []

    async def answer(self, messages: Sequence[Mapping[str, Any]], settings: GenSettings) -> Answer:
        question = str([m for m in messages if m["role"] == "user"][-1]["content"])
        if messages[-1]["role"] == "assistant":
            self.prefills.append(str(messages[-1]["content"]))
        self.asked.append(question)
        self.settings.append(settings)
        if question in self.fail:
            return Answer(error="HTTP 503: overloaded")
        text = self.answers[question]
        return Answer(content=text, prompt_tokens=10, completion_tokens=len(text.split()), seconds=0.01,
                      decode_tps=100.0, finish_reason="stop")

    def server_pids(self) -> tuple[int, ...]:
        return ()

    async def aclose(self) -> None:
        pass


def gsm8k_file(folder: Path, answers: Sequence[int]) -> Path:
    path = folder / "gsm8k.jsonl"
    rows = [{"question": f"q{n}", "answer": f"work\n#### {a}"} for n, a in enumerate(answers)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path
