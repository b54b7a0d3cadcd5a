"""qwenkit: the Qwen model family made practical."""

from qwenkit.errors import QwenkitError

__version__ = "0.1.0"
__all__ = ["QwenkitError", "__version__"]
