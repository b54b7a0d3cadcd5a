"""The greedy fast path under penalties chooses what llama.cpp's own penalties + greedy chain chooses."""

from __future__ import annotations

import ctypes
from typing import Any

import numpy as np
import pytest

from qwenkit.engine.llama_lib import llama_lib
from qwenkit.engine.llama_sampling import PenalisedArgmax

N_VOCAB = 4096


def _llama_choice(lib: Any, chain: Any, row: np.ndarray) -> int:
    data = (lib.llama_token_data * N_VOCAB)(
        *(lib.llama_token_data(i, float(row[i]), 0.0) for i in range(N_VOCAB))
    )
    arr = lib.llama_token_data_array(data, N_VOCAB, -1, False)
    lib.llama_sampler_apply(chain, ctypes.byref(arr))
    token = int(data[arr.selected].id)
    lib.llama_sampler_accept(chain, token)
    return token


@pytest.mark.parametrize(
    ("repetition", "frequency", "presence"),
    [(1.05, 0.0, 0.0), (1.5, 0.0, 0.0), (0.8, 0.0, 0.0), (1.1, 0.3, 0.0), (1.0, 0.0, 1.5), (1.2, 0.5, 0.7)],
)
def test_the_fast_path_picks_llama_cpps_token(repetition: float, frequency: float, presence: float) -> None:
    lib = llama_lib()
    rng = np.random.default_rng(7)
    for trial in range(4):
        distinct = 64 if trial < 2 else 300  # few ids (many repeats), or more than the first buffer holds
        history = [int(t) for t in rng.integers(0, distinct, size=40 if trial < 2 else 400)]
        chain = lib.llama_sampler_chain_init(lib.llama_sampler_chain_default_params())
        # the window spans the whole history, as the engine sets it
        penalties = lib.llama_sampler_init_penalties(N_VOCAB, 1024, repetition, frequency, presence)
        for token in history:
            lib.llama_sampler_accept(penalties, token)
        lib.llama_sampler_chain_add(chain, penalties)
        lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_greedy())
        fast = PenalisedArgmax(N_VOCAB, repetition, frequency, presence, history)
        try:
            for step in range(24):
                row = rng.normal(0.0, 1.0, size=N_VOCAB).astype(np.float32)
                row[:distinct] += np.float32(3.0)  # the seen ids lead, so the penalties decide
                row[rng.integers(0, distinct)] = 0.0
                if step % 3 == 0:  # a tie between a seen and an unseen id: the first index must win
                    row[N_VOCAB - 1] = row[:distinct].max()
                expected = _llama_choice(lib, chain, row)
                before = row.copy()
                got = fast.choose(row)
                np.testing.assert_array_equal(row, before)  # the model's logits are put back
                fast.accept(got)
                assert got == expected, (trial, step)
        finally:
            lib.llama_sampler_free(chain)


def test_without_history_it_is_the_argmax() -> None:
    row = np.array([0.5, 2.0, -1.0], dtype=np.float32)
    assert PenalisedArgmax(3, 1.3, 0.0, 0.0, []).choose(row) == 1
