"""qwenkit: the Qwen model family made practical.

``qwenkit.load`` is imported on first use so that ``import qwenkit`` stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from qwenkit.errors import QwenkitError

if TYPE_CHECKING:
    from qwenkit.engine.llm import LLM, load

__version__ = "0.1.0"
__all__ = ["LLM", "QwenkitError", "__version__", "load"]


def __getattr__(name: str) -> Any:
    if name in ("load", "LLM"):
        from qwenkit.engine import llm

        return getattr(llm, name)
    raise AttributeError(f"module 'qwenkit' has no attribute {name!r}")
