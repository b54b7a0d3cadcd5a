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


def replay_conversations(model: Any, tokenizer: Tokenizer, base: Path, count: int) -> list[Conversation]:
    """``count`` prompts' base answers (fewer if some did not finish), from the cache when it has them."""
    prompts = REPLAY_PROMPTS[:count]
    if not prompts:
        return []
    path = cache_path(base, prompts)
    if path.is_file():
        answers = json.loads(path.read_text(encoding="utf-8"))
    else:
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
        for p, a in zip(prompts, answers, strict=True)
        if a
    ]
