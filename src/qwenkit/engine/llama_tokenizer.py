"""The Tokenizer protocol over a loaded GGUF's own vocabulary (llama.cpp's tokenizer).

Using the model's vocabulary, not a separate tokenizer.json, guarantees the ids the chat layer
builds are exactly the ids the model was converted with.
"""

from __future__ import annotations

import ctypes
from collections.abc import Mapping, Sequence
from typing import Any

from qwenkit.engine.llama_lib import llama_lib
from qwenkit.errors import UsageError

_PIECE_BUFFER = 256


class LlamaTokenizer:
    """Tokenizer over ``llama_model``'s vocab. Valid while the model is loaded (see ``detach``)."""

    def __init__(self, model: Any) -> None:
        lib = llama_lib()
        self._lib = lib
        self._model = model
        self._vocab = lib.llama_model_get_vocab(model)
        self._n_vocab = int(lib.llama_vocab_n_tokens(self._vocab))
        self._pieces: dict[int, bytes] = {}
        special_attrs = lib.LLAMA_TOKEN_ATTR_CONTROL | lib.LLAMA_TOKEN_ATTR_USER_DEFINED
        special: dict[str, int] = {}
        for tid in range(self._n_vocab):
            if lib.llama_vocab_get_attr(self._vocab, tid) & special_attrs:
                text = lib.llama_vocab_get_text(self._vocab, tid).decode("utf-8", errors="replace")
                special.setdefault(text, tid)
        self._special = special
        eos = {tid for tid in special.values() if lib.llama_vocab_is_eog(self._vocab, tid)}
        for tid in (lib.llama_vocab_eos(self._vocab), lib.llama_vocab_eot(self._vocab)):
            if 0 <= tid < self._n_vocab:
                eos.add(int(tid))
        self._eos = frozenset(eos)
        template = lib.llama_model_chat_template(model, None)
        self._template = template.decode("utf-8") if template else None

    def detach(self) -> None:
        """Called by the backend when it frees the model: later calls fail cleanly, not in C."""
        self._model = None
        self._vocab = None

    def _live_vocab(self) -> Any:
        if self._vocab is None:
            raise UsageError("this tokenizer's model has been closed")
        return self._vocab

    @property
    def special_tokens(self) -> Mapping[str, int]:
        return dict(self._special)

    @property
    def eos_token_ids(self) -> frozenset[int]:
        return self._eos

    @property
    def chat_template(self) -> str | None:
        return self._template

    @property
    def vocab_size(self) -> int:
        return self._n_vocab

    def encode_text(self, text: str) -> list[int]:
        """Plain text to ids: no BOS, and ``<|im_start|>`` in ``text`` stays ordinary characters."""
        if not text:
            return []
        vocab = self._live_vocab()
        raw = text.encode("utf-8")
        capacity = len(raw) + 8
        while True:
            buf = (self._lib.llama_token * capacity)()
            n = self._lib.llama_tokenize(vocab, raw, len(raw), buf, capacity, False, False)
            if n >= 0:
                return list(buf[:n])
            capacity = -n

    def token_bytes(self, token_id: int) -> bytes:
        piece = self._pieces.get(token_id)
        if piece is not None:
            return piece
        if not 0 <= token_id < self._n_vocab:
            raise UsageError(f"token id {token_id} is outside the vocabulary (0..{self._n_vocab - 1})")
        vocab = self._live_vocab()
        size = _PIECE_BUFFER
        while True:
            buf = ctypes.create_string_buffer(size)
            n = self._lib.llama_token_to_piece(vocab, token_id, buf, size, 0, True)
            if n >= 0:
                piece = buf.raw[:n]
                break
            size = -n
        self._pieces[token_id] = piece
        return piece

    def decode(self, ids: Sequence[int]) -> str:
        return b"".join(self.token_bytes(t) for t in ids).decode("utf-8", errors="replace")
