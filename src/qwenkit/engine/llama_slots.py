"""What each llama.cpp sequence id keeps between requests, for the prefix cache."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# Logits rows a slot keeps (608 KB each at Qwen's 151,936 ids): this request's and the turns before.
KEPT_ROWS = 3


@dataclass
class SlotCache:
    """The tokens whose KV one sequence id keeps (an image's cells as its pixel key), and the position
    that follows each cell: with M-RoPE an image takes fewer positions than cells, so positions and
    cells are counted apart.

    ``rows`` holds, by cell count, the logits that followed the last token of a prompt prefilled here.
    A prompt's first output token is chosen inside its prefill batch, where llama.cpp's kernels round
    differently than for a lone token; a later request for the same prompt finds it cached whole and
    chooses from the kept row, so it decodes exactly what the first one did, with no step at all."""

    kv_tokens: list[int] = field(default_factory=list)
    after: list[int] = field(default_factory=list)
    last_used: float = 0.0
    adapter: str | None = None  # the LoRA adapter the cached KV was computed with
    rows: dict[int, np.ndarray] = field(default_factory=dict)

    def position_at(self, cells: int) -> int:
        """The position of the token after the first ``cells`` cells."""
        return self.after[cells - 1] if cells else 0

    @property
    def next_position(self) -> int:
        return self.position_at(len(self.kv_tokens))

    def keep(self, keys: list[int], after: list[int], rows: dict[int, np.ndarray] | None = None) -> None:
        """Hold ``keys`` (``after`` their positions) and those of ``rows`` that they still lead to."""
        self.kv_tokens, self.after = keys, after
        self.rows = {cells: row for cells, row in (rows or {}).items() if cells <= len(keys)}

    def row_for(self, keys: list[int]) -> np.ndarray | None:
        """The kept logits after exactly ``keys``, if this slot holds them."""
        row = self.rows.get(len(keys))
        return row if row is not None and self.kv_tokens[: len(keys)] == keys else None

    def remember(self, row: np.ndarray) -> None:
        """Keep ``row`` as the logits after the cells held now (a prompt's last token)."""
        self.rows.pop(len(self.kv_tokens), None)
        self.rows[len(self.kv_tokens)] = row
        while len(self.rows) > KEPT_ROWS:
            del self.rows[next(iter(self.rows))]  # the oldest first

    def add_text(self, tokens: list[int], start: int) -> None:
        self.kv_tokens.extend(tokens)
        self.after.extend(range(start + 1, start + 1 + len(tokens)))

    def add_image(self, key: int, cells: int, following: int) -> None:
        self.kv_tokens.extend([key] * cells)
        self.after.extend([following] * cells)
