"""Greedy outputs compared across batch shapes: equal, except where the reference run was a near-tie.

A model's kernels round differently for different batch shapes (llama.cpp's quantized matmuls, torch's
padded batches), so a greedy sequence decoded beside others may take the runner-up where the same
sequence decoded alone had two almost equally likely tokens. Measured on the real Qwen2.5-Coder-0.5B
Q4_K_M (12 prompts x 48 tokens, up to 8 streams against solo runs, 2 rounds): the same token's
log-probability moved by up to 0.23 nats, and the greedy choice flipped at margins up to 0.08 nats.

So a divergence is accepted only where the token taken instead was within ``NEAR_TIE_NATS`` of the
reference's best choice at that position, read from the reference's own top log-probabilities; after
it the two sequences are different texts and are not compared further. Cross-talk between requests
(another request's tokens) is not a near-tie: tests also check that each answer answers its own question.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass

NEAR_TIE_NATS = 0.5
TOP_K = 5  # top log-probabilities the reference run records per position


@dataclass(frozen=True)
class GreedyReference:
    """A solo greedy run: its tokens and, per position, the top candidates' log-probabilities."""

    tokens: tuple[Hashable, ...]
    top: tuple[Mapping[Hashable, float], ...]

    @classmethod
    def from_events(cls, events: Iterable[object]) -> GreedyReference:
        """From backend TokenEvents (``token_id``, ``top_logprobs`` as (id, logprob) pairs)."""
        return cls._of((e.token_id, e.top_logprobs) for e in events)  # type: ignore[attr-defined]

    @classmethod
    def from_chat_logprobs(cls, entries: Iterable[object]) -> GreedyReference:
        """From a ChatResult's logprobs (token text, top as (text, logprob) pairs)."""
        return cls._of((e.token, e.top) for e in entries)  # type: ignore[attr-defined]

    @classmethod
    def _of(cls, steps: Iterable[tuple[Hashable, Iterable[tuple[Hashable, float]]]]) -> GreedyReference:
        tokens: list[Hashable] = []
        top: list[Mapping[Hashable, float]] = []
        for token, candidates in steps:
            tokens.append(token)
            top.append(dict(candidates))
            if not top[-1]:
                raise ValueError("the reference run needs top_logprobs")
        return cls(tuple(tokens), tuple(top))


def divergence(
    actual: Sequence[Hashable],
    reference: GreedyReference,
    *,
    ended_with: Iterable[Hashable] = (),
    threshold: float = NEAR_TIE_NATS,
) -> int | None:
    """Where ``actual`` first differs from ``reference`` (None: nowhere); AssertionError unless a near-tie.

    ``ended_with``: the tokens ``actual`` may have stopped on without emitting them (end-of-text ids):
    an ``actual`` that stopped early chose one of them there. Run the reference with ``ignore_eos`` so it
    records what it would have done at that position.
    """
    stops = frozenset(ended_with)
    for i, expected in enumerate(reference.tokens):
        if i < len(actual):
            if actual[i] == expected:
                continue
            chosen: frozenset[Hashable] = frozenset({actual[i]})
        elif expected in stops:
            return None  # both stopped here
        else:
            chosen = stops  # actual stopped (on some end-of-text token) where the reference went on
        _assert_near_tie(i, chosen, reference, threshold, actual)
        return i
    if len(actual) > len(reference.tokens):
        raise AssertionError(f"actual run is longer than the reference: {actual!r} vs {reference.tokens!r}")
    return None


def _assert_near_tie(
    i: int,
    chosen: frozenset[Hashable],
    reference: GreedyReference,
    threshold: float,
    actual: Sequence[Hashable],
) -> None:
    top = reference.top[i]
    best = max(top.values())
    alternatives = {tok: lp for tok, lp in top.items() if tok in chosen}
    if alternatives and best - max(alternatives.values()) < threshold:
        return
    raise AssertionError(
        f"greedy runs diverge at token {i} where the reference was no near-tie: reference took "
        f"{reference.tokens[i]!r} (top: {dict(top)!r}), the other run {sorted(map(repr, chosen))}; "
        f"reference {list(reference.tokens[: i + 1])!r}, other {list(actual[: i + 1])!r}"
    )
