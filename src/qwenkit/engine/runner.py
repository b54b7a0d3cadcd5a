"""What a backend implements: the model-specific half of the engine (load, forward, sample, free).

The engine core (``core.py``) owns everything else: validation, the engine thread, admission,
cancellation, forced tokens, length rules and shutdown. A new backend is one file with a class that
satisfies ``ModelRunner`` and a ``load`` function registered in ``registry.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from qwenkit.engine.sequence import Sequence
from qwenkit.engine.types import BackendOptions, LoadedModel, SamplingParams, TokenEvent


class ModelRunner(LoadedModel, Protocol):
    """A loaded model that computes steps for the core. Called from the engine thread only, except
    ``validate`` (any thread, before a sequence exists)."""

    @property
    def vocab_size(self) -> int:
        """Ids below this are valid prompt, bias and injection ids."""

    @property
    def n_slots(self) -> int:
        """Sequences decoded together."""

    def warm_up(self) -> None:
        """Run a first step and forget it, on the engine thread before any request (the core waits for
        it in ``load``): a user's first request should not pay for paging weights in."""

    def validate(self, params: SamplingParams) -> None:
        """Raise UsageError for parameters this runner cannot honour (e.g. a grammar it cannot parse)."""

    def place(self, seq: Sequence, free: list[int]) -> int:
        """The free slot a new sequence should take (e.g. the one caching the longest prefix of it)."""

    def start(self, seq: Sequence) -> None:
        """Bind a placed sequence to ``seq.slot``: reuse what can be reused (setting ``seq.cached``),
        make its sampler, and set ``seq.pending`` to what must be fed first."""

    def run(self, seqs: list[Sequence]) -> list[Sequence]:
        """One forward pass over what the running sequences need next (prefill chunks, pending tokens);
        the sequences whose next token is now due, in any order."""

    def sample(self, seq: Sequence) -> TokenEvent:
        """Choose (and record) the next token of a sequence that ``run`` just returned."""

    def accept_forced(self, seq: Sequence, token: int) -> bool:
        """Record an injected token as if sampled; False if the sequence's grammar forbids it."""

    def release(self, seq: Sequence, *, keep_cache: bool) -> None:
        """The sequence left its slot; keep its KV for prefix reuse, or clear it (after a failure).

        A kept cache must hold exactly the tokens the runner recorded as decoded for that slot."""

    def close(self) -> None:
        """Free the model; the core has already stopped calling."""


class LoadableRunner(ModelRunner, Protocol):
    @classmethod
    def load(cls, path: str | Path, options: BackendOptions) -> ModelRunner:
        """Load a model file or folder with these options."""
