"""The Tokenizer protocol over a loaded GGUF's own vocabulary (llama.cpp's tokenizer).

Using the model's vocabulary, not a separate tokenizer.json, guarantees the ids the chat layer
builds are exactly the ids the model was converted with.

llama.cpp reads user-defined added tokens (``<tool_call>``, ``<think>`` ...) in text even with special-token
parsing off, so ``encode_text`` cuts caller text inside every added-token text first (see
``chat.pretokenize``): the ids are then those of Hugging Face's tokenizer with the added tokens unknown.
"""

from __future__ import annotations

import ctypes
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from qwenkit.chat.pretokenize import PRE_TOKENIZERS, AddedTokenCutter
from qwenkit.engine.llama_lib import llama_lib
from qwenkit.errors import ModelFormatError, ModelNotFoundError, UsageError

_PIECE_BUFFER = 256
_META_BUFFER = 256
PRE_KEY = b"tokenizer.ggml.pre"

logger = logging.getLogger(__name__)


def _meta_str(lib: Any, model: Any, key: bytes) -> str | None:
    buf = ctypes.create_string_buffer(_META_BUFFER)
    n = lib.llama_model_meta_val_str(model, key, buf, _META_BUFFER)
    return None if n < 0 else buf.value.decode("utf-8", errors="replace")


class LlamaTokenizer:
    """Tokenizer over ``llama_model``'s vocab. Valid while the model is loaded (see ``detach``).

    ``owns_model``: ``close`` frees the model (a vocab-only load, see ``from_gguf``); otherwise the backend
    that loaded it frees it and calls ``detach``.
    """

    def __init__(self, model: Any, *, owns_model: bool = False) -> None:
        lib = llama_lib()
        self._lib = lib
        self._model = model
        self._owns_model = owns_model
        self._vocab = lib.llama_model_get_vocab(model)
        self._n_vocab = int(lib.llama_vocab_n_tokens(self._vocab))
        self._pieces: dict[int, bytes] = {}
        self._special, flagged = self._added_tokens()
        self._special_ids = frozenset(self._special.values())
        self._eos = self._eog_ids(flagged)
        template = lib.llama_model_chat_template(model, None)
        self._template = template.decode("utf-8") if template else None
        self.pre_tokenizer = _meta_str(lib, model, PRE_KEY) or "default"
        self._cutter = AddedTokenCutter.build(self._special, PRE_TOKENIZERS.get(self.pre_tokenizer))
        if self._cutter.inexact or self._cutter.uncuttable:
            logger.warning(
                "pre-tokenizer %r: text holding the added-token texts %s stays plain text but may get "
                "other ids than the original tokenizer gives it; text holding %s cannot be encoded",
                self.pre_tokenizer,
                sorted(self._cutter.inexact),
                sorted(self._cutter.uncuttable),
            )

    @classmethod
    def from_gguf(cls, path: str | Path) -> LlamaTokenizer:
        """Only the vocabulary of a GGUF file (no weights); ``close`` frees it."""
        lib = llama_lib()
        path = Path(path)
        if not path.is_file():
            raise ModelNotFoundError(f"no model file at {path}")
        params = lib.llama_model_default_params()
        params.vocab_only = True
        model = lib.llama_model_load_from_file(str(path).encode(), params)
        if not model:
            raise ModelFormatError(f"llama.cpp could not read the vocabulary of {path}")
        try:
            return cls(model, owns_model=True)
        except BaseException:
            lib.llama_model_free(model)
            raise

    def _added_tokens(self) -> tuple[dict[str, int], list[int]]:
        """The vocabulary's added tokens by text (CONTROL or USER_DEFINED in the GGUF's token types), and
        every id llama.cpp flags so.

        llama.cpp also flags some NORMAL tokens as control while loading (Qwen's ``</s>``, to end
        generation); those stay normal BPE tokens, as in the original tokenizer, so they are no added tokens.
        """
        lib, vocab = self._lib, self._vocab
        added_attrs = lib.LLAMA_TOKEN_ATTR_CONTROL | lib.LLAMA_TOKEN_ATTR_USER_DEFINED
        added: dict[str, int] = {}
        flagged: list[int] = []
        for tid in range(self._n_vocab):
            attr = lib.llama_vocab_get_attr(vocab, tid)
            if not attr & added_attrs:
                continue
            flagged.append(tid)
            if not attr & lib.LLAMA_TOKEN_ATTR_NORMAL:
                text = lib.llama_vocab_get_text(vocab, tid).decode("utf-8", errors="replace")
                added.setdefault(text, tid)
        return added, flagged

    def _eog_ids(self, flagged: Sequence[int]) -> frozenset[int]:
        lib, vocab = self._lib, self._vocab
        eos = {tid for tid in flagged if lib.llama_vocab_is_eog(vocab, tid)}
        for tid in (lib.llama_vocab_eos(vocab), lib.llama_vocab_eot(vocab)):
            if 0 <= tid < self._n_vocab:
                eos.add(int(tid))
        return frozenset(eos)

    def detach(self) -> None:
        """Called by the backend when it frees the model: later calls fail cleanly, not in C."""
        self._model = None
        self._vocab = None

    def close(self) -> None:
        """Free a model this tokenizer owns (``from_gguf``); a backend's model is the backend's to free."""
        model = self._model
        self.detach()
        if self._owns_model and model is not None:
            self._lib.llama_model_free(model)

    def __enter__(self) -> LlamaTokenizer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

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

    @property
    def cutter(self) -> AddedTokenCutter:
        return self._cutter

    def encode_text(self, text: str) -> list[int]:
        """Plain text to ids: no BOS, and no added token (``<|im_start|>``, ``<tool_call>``) from ``text``."""
        if not text:
            return []
        vocab = self._live_vocab()
        text = self._cutter.normalize(text)
        ids: list[int] = []
        for piece in self._cutter.pieces(text):
            ids.extend(self._tokenize(vocab, piece))
        if not self._special_ids.isdisjoint(ids):  # only single-character added tokens get here
            leaked = next(self.token_bytes(t) for t in ids if t in self._special_ids)
            raise UsageError(
                f"the text contains {leaked.decode('utf-8', errors='replace')!r}, which this model's "
                "vocabulary always reads as an added token; it cannot be encoded as plain text"
            )
        return ids

    def _tokenize(self, vocab: Any, text: str) -> list[int]:
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
