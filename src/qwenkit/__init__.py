"""qwenkit: the Qwen model family made practical.

``qwenkit.load`` is imported on first use so that ``import qwenkit`` stays light.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from qwenkit.errors import QwenkitError

if TYPE_CHECKING:
    from qwenkit.engine.llm import LLM, load
    from qwenkit.finetune.run import tune

__version__ = "0.1.0"

# A library logs; the application decides where to (the server configures JSON lines).
logging.getLogger("qwenkit").addHandler(logging.NullHandler())
__all__ = ["LLM", "QwenkitError", "__version__", "load", "tune"]


def __getattr__(name: str) -> Any:
    if name in ("load", "LLM"):
        from qwenkit.engine import llm

        return getattr(llm, name)
    if name == "tune":
        from qwenkit.finetune.run import tune

        return tune
    raise AttributeError(f"module 'qwenkit' has no attribute {name!r}")
