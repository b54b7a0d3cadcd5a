"""The output layer's padding rows (past the tokenizer's vocabulary) are never sampled on vLLM.

The tiny random Qwen3 here has its padding rows made to win: each is three times the output row of a
token that greedy decoding chooses, so without the mask vLLM's first greedy choice would already be a
padding id. The embeddings are tied, but padding ids never enter a prompt, so the model's answer over
real tokens is unchanged and must equal the transformers backend's, which cuts its logits to the
tokenizer's vocabulary.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from test_vllm_backend import GREEDY, build_model, load_vllm, prompt

from qwenkit.engine.types import BackendOptions, SamplingParams

CONTEXT = 512


def greedy_reference(model_dir: Path, ids: list[int]) -> list[int]:
    from qwenkit.engine.transformers import TransformersBackend

    options = BackendOptions(context=CONTEXT, parallel=1, dtype="float32")
    with TransformersBackend.load(model_dir, options) as ref:
        return [e.token_id for e in ref.submit(ids, GREEDY)]


def make_padding_win(model_dir: Path, vocab_size: int, winners: list[int]) -> int:
    """Set each padding row to 3 x the row of one of ``winners``; returns how many rows there are."""
    from safetensors.torch import load_file, save_file

    path = model_dir / "model.safetensors"
    tensors = load_file(path)
    name = "lm_head.weight" if "lm_head.weight" in tensors else "model.embed_tokens.weight"
    rows = tensors[name]
    for i, row in enumerate(range(vocab_size, rows.shape[0])):
        rows[row] = 3.0 * rows[winners[i % len(winners)]]
    save_file(tensors, path, metadata={"format": "pt"})
    return rows.shape[0] - vocab_size


@pytest.fixture(scope="module")
def padded(tmp_path_factory: pytest.TempPathFactory, qwen3_tokenizer_dir: Path) -> tuple[Path, list[int]]:
    from qwenkit.chat.hf_tokenizer import HFTokenizer

    model_dir = build_model(tmp_path_factory.mktemp("vllm-padded"), qwen3_tokenizer_dir)
    tokenizer = HFTokenizer.from_dir(model_dir)
    ids = tokenizer.encode_text("The tiny model answers")
    expected = greedy_reference(model_dir, ids)
    assert make_padding_win(model_dir, tokenizer.vocab_size, expected) > 0
    assert greedy_reference(model_dir, ids) == expected  # the transformers backend ignores padding rows
    return model_dir, expected


@pytest.fixture(scope="module")
def backend(padded: tuple[Path, list[int]]) -> Iterator[object]:
    with load_vllm(padded[0], parallel=2) as loaded:
        yield loaded


def test_greedy_never_chooses_a_padding_row(backend: object, padded: tuple[Path, list[int]]) -> None:
    tokens = [e.token_id for e in backend.submit(prompt(backend), GREEDY)]  # type: ignore[attr-defined]
    assert tokens == padded[1]


def test_sampling_never_draws_a_padding_row(backend: object) -> None:
    vocab = backend.tokenizer.vocab_size  # type: ignore[attr-defined]
    for seed in range(3):
        params = SamplingParams(temperature=1.0, top_p=1.0, max_tokens=32, ignore_eos=True, seed=seed)
        tokens = [e.token_id for e in backend.submit(prompt(backend), params)]  # type: ignore[attr-defined]
        assert len(tokens) == 32 and max(tokens) < vocab
