"""BackendOptions refuses what no backend can load, before any model is read."""

from __future__ import annotations

import pytest

from qwenkit.defaults import MAX_CONTEXT, MIN_CONTEXT
from qwenkit.engine.types import BackendOptions
from qwenkit.errors import UsageError


@pytest.mark.parametrize("context", [MIN_CONTEXT - 1, MAX_CONTEXT + 1, 1 << 32])
def test_a_context_out_of_range_is_refused(context: int) -> None:
    """2**32 tokens would reach llama.cpp's 32-bit n_ctx as 0 (it answered with a tiny context)."""
    with pytest.raises(UsageError, match=f"{MIN_CONTEXT} to {MAX_CONTEXT}"):
        BackendOptions(context=context)


def test_context_times_sequences_must_fit_llama_cpps_32_bits() -> None:
    BackendOptions(context=MAX_CONTEXT, parallel=(1 << 31) // MAX_CONTEXT - 1)
    with pytest.raises(UsageError, match="more KV cells"):
        BackendOptions(context=MAX_CONTEXT, parallel=(1 << 31) // MAX_CONTEXT)
