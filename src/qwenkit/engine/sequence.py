"""One generation as the engine core tracks it: its prompt, its progress, and the runner's own state."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from qwenkit.engine.handle import QueuedHandle
from qwenkit.engine.types import SamplingParams

if TYPE_CHECKING:
    from qwenkit.media import PreparedImage


@dataclass(eq=False)
class Sequence:
    """Created by ``EngineCore.submit``; the core decides its life, a ``ModelRunner`` computes it.

    ``pending`` holds the tokens the runner feeds next: every emitted token, sampled or forced, and,
    for a runner that prefills all but the last prompt token, that token after ``start``.
    """

    prompt: list[int]
    params: SamplingParams
    handle: QueuedHandle
    stop_ids: frozenset[int]
    slot: int = -1
    cached: int = 0  # prompt tokens whose KV was reused from an earlier sequence
    pending: list[int] = field(default_factory=list)
    generated: int = 0  # tokens emitted (sampled or forced)
    state: Any = None  # the runner's per-sequence state (sampler, cache row, logits index)
    error: BaseException | None = None  # set by a runner when only this sequence's work failed
    images: tuple[PreparedImage, ...] = ()  # what the prompt's image pads stand for, in order

    @property
    def total(self) -> int:
        """Prompt and output tokens: what the context must hold once all of them are fed."""
        return len(self.prompt) + self.generated
