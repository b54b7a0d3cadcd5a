"""Chat prompts and greedy runs on a llama.cpp backend, for the tests that drive one directly."""

from __future__ import annotations

from qwenkit.chat import encode_chat
from qwenkit.engine.llamacpp import LlamaCppBackend
from qwenkit.engine.types import FinishReason, SamplingParams

GREEDY = SamplingParams(temperature=0.0, max_tokens=48)


def chat(backend: LlamaCppBackend, question: str, system: str | None = None) -> list[int]:
    messages = ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": question}
    ]
    return list(encode_chat(messages, backend.tokenizer).ids)


def run(backend: LlamaCppBackend, prompt: list[int], params: SamplingParams = GREEDY) -> list[int]:
    handle = backend.submit(prompt, params)
    ids = [ev.token_id for ev in handle]
    assert handle.finish_reason in (FinishReason.STOP, FinishReason.LENGTH)
    return ids
