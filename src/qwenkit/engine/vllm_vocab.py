"""The vLLM backend never samples the output layer's padding columns.

Qwen checkpoints pad the output layer past the tokenizer so that it splits evenly across GPUs:
151,936 rows for Qwen3's 151,669 tokens (Qwen2.5: 151,665). The padding rows name no token. A trained
model gives them no weight, but nothing forbids them, and a random or damaged one draws them (a tiny
random Qwen3 drew one in 1,600 tokens at temperature 1); the chat layer then meets an id its
tokenizer does not have. The transformers runner cuts its logits to the tokenizer's vocabulary and
llama.cpp's GGUF vocabulary names every row; vLLM samples the whole layer, so this logits processor
sets the padding columns to -inf in every request. vLLM imports it by name in its engine process and
applies it to greedy requests too (it says it may change the argmax).
"""

from __future__ import annotations

from typing import Any

import torch
from vllm.v1.sample.logits_processor import BatchUpdate, LogitsProcessor

# The key in vLLM's ``additional_config`` that carries the tokenizer's vocabulary size to the engine
# process, where this processor is built from vLLM's config alone.
VOCAB_SIZE_KEY = "qwenkit_tokenizer_vocab_size"


class PaddedVocabMask(LogitsProcessor):  # type: ignore[misc]  # vLLM is untyped for mypy here
    def __init__(self, vllm_config: Any, device: torch.device, is_pin_memory: bool) -> None:
        extra = vllm_config.additional_config or {}
        self.vocab_size = int(extra.get(VOCAB_SIZE_KEY, 0))

    def is_argmax_invariant(self) -> bool:
        return False

    def update_state(self, batch_update: BatchUpdate | None) -> None:
        return None  # the same columns for every request: no per-request state

    def apply(self, logits: torch.Tensor) -> torch.Tensor:
        if 0 < self.vocab_size < logits.shape[-1]:
            logits[:, self.vocab_size :] = float("-inf")
        return logits
