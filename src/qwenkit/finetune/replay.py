"""Replay data: the base model's own answers to general prompts, generated once and cached.

Mixed into the training set, they ask the update to keep the base's behaviour on everything the
user's data does not cover. Only answers that ended on their own (``<|im_end|>``) are used, so the
model is never taught to stop mid-sentence.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from qwenkit.chat.tokenizer import Tokenizer
from qwenkit.finetune.base import generate
from qwenkit.finetune.data import Conversation
from qwenkit.finetune.recipe import REPLAY_PROMPTS

MAX_NEW_TOKENS = 64
CACHE_VERSION = 1


def cache_path(base: Path, prompts: tuple[str, ...]) -> Path:
    from qwenkit.models.store import qwenkit_home

    stat = base.stat()
    key = json.dumps(
        [CACHE_VERSION, str(base.resolve()), stat.st_size, int(stat.st_mtime), prompts, MAX_NEW_TOKENS]
    )
    return qwenkit_home() / "tune-replay" / f"{hashlib.sha256(key.encode()).hexdigest()[:24]}.json"


def _llamacpp_answers(base: Path, prompts: tuple[str, ...]) -> list[str | None]:
    """A GGUF base answers through qwenkit's own llama.cpp engine: the same greedy answers, far faster
    on a CPU than transformers' generate over the dequantized weights."""
    from qwenkit.engine.llm import load

    with load(str(base), backend="llamacpp", context=512, parallel=8, progress=False) as llm:
        results = llm.chat_batch(
            [[{"role": "user", "content": p}] for p in prompts], temperature=0.0, max_tokens=MAX_NEW_TOKENS
        )
    return [r.content.strip() if r.finish_reason == "stop" else None for r in results]


def replay_answers(
    base: Path, count: int, model: Any = None, tokenizer: Tokenizer | None = None
) -> list[Conversation]:
    """``count`` prompts' base answers (fewer if some did not finish), from the cache when it has them.

    A GGUF base is asked through llama.cpp (``model`` unused); otherwise ``model`` generates."""
    if count <= 0:
        return []
    prompts = REPLAY_PROMPTS  # all of them are answered and cached once; the first ``count`` are used
    path = cache_path(base, prompts)
    if path.is_file():
        answers = json.loads(path.read_text(encoding="utf-8"))
    else:
        if base.suffix == ".gguf":
            answers = _llamacpp_answers(base, prompts)
        else:
            assert model is not None and tokenizer is not None
            generated = generate(
                model, tokenizer, [[{"role": "user", "content": p}] for p in prompts], MAX_NEW_TOKENS
            )
            answers = [text if finished else None for text, finished in generated]
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(answers, ensure_ascii=False), encoding="utf-8")
        tmp.replace(path)
    return [
        Conversation(0, ({"role": "user", "content": p}, {"role": "assistant", "content": a}))
        for p, a in list(zip(prompts, answers, strict=True))[:count]
        if a
    ]
