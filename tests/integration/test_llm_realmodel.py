"""The Python API on the real 0.5B model: 8 concurrent streams, independence, cancellation."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from qwenkit.chat.events import ContentDelta
from qwenkit.engine.llm import LLM, load

pytestmark = [pytest.mark.realmodel, pytest.mark.slow]

QUESTIONS = [
    ("What is the capital of France? Answer in one word.", "paris"),
    ("What is 2 + 2? Answer with a number only.", "4"),
    ("What color is the sky on a clear day? One word.", "blue"),
    ("What is the opposite of hot? One word.", "cold"),
    ("How many legs does a spider have? Answer with a number only.", "8"),
    ("What is 10 minus 3? Answer with a number only.", "7"),
    ("What is the capital of Japan? Answer in one word.", "tokyo"),
    ("What language is this function in: def f(): pass? One word.", "python"),
]


@pytest.fixture(scope="module")
def llm(real_model_path: Path) -> Iterator[LLM]:
    with load(str(real_model_path), context=1024, parallel=8, threads=2, progress=False) as model:
        yield model


def ask(llm: LLM, question: str) -> str:
    events = llm.stream_chat([{"role": "user", "content": question}], temperature=0.0, max_tokens=24)
    return "".join(e.text for e in events if isinstance(e, ContentDelta))


def test_eight_concurrent_streams_are_independent(llm: LLM) -> None:
    solo = [ask(llm, q) for q, _ in QUESTIONS]
    answers: list[str | None] = [None] * len(QUESTIONS)

    def worker(i: int) -> None:
        answers[i] = ask(llm, QUESTIONS[i][0])

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(QUESTIONS))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    assert answers == solo  # greedy: same tokens alone or batched = no cross-talk
    for answer, (_, expected) in zip(answers, QUESTIONS, strict=True):
        assert answer is not None and expected in answer.lower().replace(" ", ""), answer


def test_cancelling_one_stream_frees_its_slot_while_others_go_on(llm: LLM) -> None:
    backend = llm.backend
    streams = [
        llm.start_chat(
            [{"role": "user", "content": f"Count slowly from {n} to 300."}], temperature=0.0, max_tokens=120
        )
        for n in range(4)
    ]
    iterators = [iter(s) for s in streams]
    for it in iterators:
        next(it)  # every stream has produced output: all four are running
    assert backend.stats().running == 4  # type: ignore[attr-defined]
    steps_before = backend.stats().steps  # type: ignore[attr-defined]
    streams[0].cancel()
    deadline = time.monotonic() + 30
    while backend.stats().running != 3 and time.monotonic() < deadline:  # type: ignore[attr-defined]
        time.sleep(0.005)
    stats = backend.stats()  # type: ignore[attr-defined]
    assert stats.running == 3
    assert stats.steps - steps_before <= 2  # freed within one engine step (one more may be in flight)
    results = [s.result() for s in streams[1:]]
    assert all(r.usage.completion_tokens == 120 or r.finish_reason == "stop" for r in results)
    assert streams[0].result().finish_reason == "cancelled"
