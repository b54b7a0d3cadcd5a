"""One step's batch for the llama.cpp runner: which tokens of which sequences one ``llama_decode`` takes.

Every decoding sequence's pending tokens come first; prompts fill what they leave (chunked prefill, as
llama-server and vLLM do), and one prefilling sequence may instead feed an image's embeddings in the
step's second decode. The batch is written in slot order, which llama.cpp needs to keep a step to one
pass over the weights when each sequence has its own KV stream.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from qwenkit.engine.llama_sampling import SequenceSampler
from qwenkit.engine.llama_slots import SlotCache
from qwenkit.engine.llama_vision import ImageRun
from qwenkit.engine.prefix import Placement
from qwenkit.engine.sequence import Sequence

N_BATCH = 512  # tokens per llama_decode


@dataclass
class LlamaSequenceState:
    """A running sequence's llama.cpp side (``Sequence.state``)."""

    placement: Placement
    keys: list[int]  # the prompt as the prefix cache compares it
    runs: list[ImageRun] = field(default_factory=list)
    sampler: SequenceSampler | None = None
    prefilled: int = 0  # prompt tokens in the KV
    logits_index: int = -1  # batch position whose logits choose the next token
    kept_row: np.ndarray | None = None  # the first token's logits, when the prompt was cached whole


def state_of(seq: Sequence) -> LlamaSequenceState:
    state = seq.state
    assert isinstance(state, LlamaSequenceState), "a sequence placed by another runner"
    return state


@dataclass
class PlannedTokens:
    """One sequence's tokens in the batch."""

    seq: Sequence
    tokens: list[int]
    prefill: bool
    position: int  # of the first token


@dataclass
class ImagePiece:
    """Embeddings of one image fed in this step's second decode."""

    seq: Sequence
    run: ImageRun
    count: int


@dataclass
class StepPlan:
    tokens: list[PlannedTokens]  # written into the batch, in slot order
    image: ImagePiece | None
    failed: list[Sequence]  # sequences whose image could not be encoded


class BatchPlanner:
    """Fills the runner's ``llama_batch`` for one step; ``slots`` is the runner's list of slot caches."""

    def __init__(self, batch: Any, slots: list[SlotCache]) -> None:
        self._batch = batch
        self._slots = slots

    def plan(self, seqs: list[Sequence]) -> StepPlan:
        """Every decoding sequence's pending tokens, then prefill chunks, one of which may be an
        image's embeddings. Also the sequences whose image failed."""
        chosen: list[tuple[Sequence, list[int], bool]] = []  # (sequence, tokens, prefill)
        n = 0
        prefilling = []
        for seq in seqs:
            state = state_of(seq)
            state.logits_index = -1
            if state.prefilled < len(seq.prompt):
                prefilling.append(seq)
                continue
            tokens = seq.pending[: N_BATCH - n]
            if not tokens:
                continue
            seq.pending = seq.pending[len(tokens) :]
            chosen.append((seq, tokens, False))
            n += len(tokens)
        # Prompts fill what the decoding tokens leave of the batch: a waiting stream's first token comes
        # sooner, the batch is fuller, and decoding streams still get a token every step (one step is at
        # most N_BATCH tokens).
        budget = N_BATCH - n
        piece: ImagePiece | None = None
        failed: list[Sequence] = []
        for seq in prefilling:
            if budget <= 0:
                break
            state = state_of(seq)
            run = next((r for r in state.runs if r.fed < r.length), None)
            if run is not None and run.begin <= state.prefilled:  # at an image: its embeddings, if ready
                embedding = run.embedding
                if piece is not None or embedding is None or not embedding.done():
                    continue
                if (error := embedding.exception()) is not None:
                    seq.error = error
                    failed.append(seq)
                    continue
                piece = ImagePiece(seq, run, min(run.length - run.fed, budget))
                budget -= piece.count
                continue
            stop = run.begin if run is not None else len(seq.prompt)
            tokens = seq.prompt[state.prefilled : min(stop, state.prefilled + budget)]
            chosen.append((seq, tokens, True))
            budget -= len(tokens)
        return StepPlan(self._write(chosen), piece, failed)

    def _write(self, chosen: list[tuple[Sequence, list[int], bool]]) -> list[PlannedTokens]:
        """Write the chosen tokens into the batch in slot order. With a KV stream per sequence llama.cpp
        puts only consecutive sequence ids into one ubatch (``split_equal``), so a batch in admission
        order (3, 5, 0, ...) would cost one pass over the weights per run of consecutive slots: measured
        8 decoding streams at 104 ms a step against 85 ms in slot order, as llama-server keeps them."""
        plan: list[PlannedTokens] = []
        n = 0
        for seq, tokens, prefill in sorted(chosen, key=lambda item: item[0].slot):
            ends_prompt = state_of(seq).prefilled + len(tokens) == len(seq.prompt)
            last = ends_prompt if prefill else not seq.pending
            n = self._fill(n, seq, tokens, logits_last=last, prefill=prefill, plan=plan)
        self._batch.n_tokens = n
        return plan

    def _fill(
        self, n: int, seq: Sequence, tokens: list[int], *, logits_last: bool, prefill: bool,
        plan: list[PlannedTokens],
    ) -> int:
        cache = self._slots[seq.slot]
        batch, pos = self._batch, cache.next_position
        plan.append(PlannedTokens(seq, tokens, prefill, pos))
        for j, tid in enumerate(tokens):
            batch.token[n + j] = tid
            batch.pos[n + j] = pos + j
            batch.n_seq_id[n + j] = 1
            batch.seq_id[n + j][0] = seq.slot
            batch.logits[n + j] = 0
        if logits_last:
            batch.logits[n + len(tokens) - 1] = 1
            state_of(seq).logits_index = n + len(tokens) - 1
        return n + len(tokens)
