"""The forgetting probe: unrelated questions answered by the base and by the tuned model (the same
weights with the adapter off and on), and perplexity on unrelated text, before and after.

An answer counts as kept when it is the base's answer word for word, or when both hold the question's
key (e.g. "Paris"): greedy wording may drift by a token without the model having forgotten anything.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from qwenkit.chat.tokenizer import Tokenizer
from qwenkit.finetune.base import generate

PROBE: tuple[tuple[str, str], ...] = (
    ("What is the capital of France?", "Paris"),
    ("What is the capital of Germany?", "Berlin"),
    ("What is the capital of Brazil?", "Bras"),
    ("What is 7 plus 5?", "12"),
    ("What is 12 times 3?", "36"),
    ("How many hours are in a day?", "24"),
    ("How many sides does a triangle have?", "3"),
    ("Who painted the Mona Lisa?", "Leonardo"),
    ("What is the largest mammal on Earth?", "whale"),
    ("What gas do plants absorb from the air for photosynthesis?", "carbon dioxide"),
    ("Write a Python function add(a, b) that returns the sum of a and b.", "return a + b"),
    ("What is the square root of 81?", "9"),
)
PPL_CHUNK = 128
PPL_CHUNKS = 6


@dataclass(frozen=True)
class ProbeAnswer:
    question: str
    key: str
    base: str
    tuned: str

    @property
    def identical(self) -> bool:
        return _norm(self.base) == _norm(self.tuned)

    @property
    def kept(self) -> bool:
        return self.identical or (_has(self.base, self.key) and _has(self.tuned, self.key))


@dataclass(frozen=True)
class ProbeResult:
    answers: tuple[ProbeAnswer, ...]
    ppl_base: float
    ppl_tuned: float

    @property
    def kept(self) -> int:
        return sum(a.kept for a in self.answers)

    @property
    def ppl_ratio(self) -> float:
        return self.ppl_tuned / self.ppl_base

    def to_dict(self) -> dict[str, Any]:
        return {
            "kept": self.kept,
            "total": len(self.answers),
            "ppl_base": self.ppl_base,
            "ppl_tuned": self.ppl_tuned,
            "ppl_ratio": self.ppl_ratio,
            "answers": [asdict(a) | {"kept": a.kept, "identical": a.identical} for a in self.answers],
        }


def _norm(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def _has(text: str, key: str) -> bool:
    return key.lower() in text.lower()


def builtin_text() -> str:
    """A few chunks of tinyshakespeare (public domain): text unrelated to anyone's tuning data."""
    return resources.files("qwenkit.finetune").joinpath("probe_text.txt").read_text(encoding="utf-8")


def perplexity(
    model: Any, tokenizer: Tokenizer, text: str, chunk: int = PPL_CHUNK, chunks: int = PPL_CHUNKS
) -> float:
    import torch

    ids = tokenizer.encode_text(text)
    rows = [ids[i : i + chunk] for i in range(0, len(ids) - chunk + 1, chunk)][:chunks]
    if not rows:
        raise ValueError("the perplexity text is shorter than one chunk")
    batch = torch.tensor(rows, device=model.device)
    with torch.no_grad():
        loss = model(input_ids=batch, labels=batch).loss
    return math.exp(float(loss))


def run_probe(
    model: Any,
    tokenizer: Tokenizer,
    text: str | None = None,
    questions: Sequence[tuple[str, str]] = PROBE,
    max_new_tokens: int = 40,
) -> ProbeResult:
    """``model`` is a peft model: ``disable_adapter()`` gives the base answers from the same weights."""
    prompts = [[{"role": "user", "content": q}] for q, _ in questions]
    text = text if text is not None else builtin_text()
    model.eval()  # no dropout in either measurement
    with model.disable_adapter():
        base = generate(model, tokenizer, prompts, max_new_tokens)
        ppl_base = perplexity(model, tokenizer, text)
    tuned = generate(model, tokenizer, prompts, max_new_tokens)
    ppl_tuned = perplexity(model, tokenizer, text)
    answers = tuple(
        ProbeAnswer(q, key, b, t) for (q, key), (b, _), (t, _) in zip(questions, base, tuned, strict=True)
    )
    return ProbeResult(answers, ppl_base, ppl_tuned)


def probe_text_from(path: Path | None) -> str | None:
    return path.read_text(encoding="utf-8") if path is not None else None
