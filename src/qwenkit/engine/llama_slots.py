"""What each llama.cpp sequence id keeps between requests, for the prefix cache."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class SlotCache:
    """The tokens whose KV one sequence id keeps (an image's cells as its pixel key), and the position
    that follows each cell: with M-RoPE an image takes fewer positions than cells, so positions and
    cells are counted apart."""

    kv_tokens: list[int] = field(default_factory=list)
    after: list[int] = field(default_factory=list)
    last_used: float = 0.0
    adapter: str | None = None  # the LoRA adapter the cached KV was computed with

    def position_at(self, cells: int) -> int:
        """The position of the token after the first ``cells`` cells."""
        return self.after[cells - 1] if cells else 0

    @property
    def next_position(self) -> int:
        return self.position_at(len(self.kv_tokens))

    def keep(self, keys: list[int], after: list[int]) -> None:
        self.kv_tokens, self.after = keys, after

    def add_text(self, tokens: list[int], start: int) -> None:
        self.kv_tokens.extend(tokens)
        self.after.extend(range(start + 1, start + 1 + len(tokens)))

    def add_image(self, key: int, cells: int, following: int) -> None:
        self.kv_tokens.extend([key] * cells)
        self.after.extend([following] * cells)
