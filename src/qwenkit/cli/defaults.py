"""Values the command line needs while it is built, copied from modules too heavy to import for that.

Typer reads option defaults, bounds and annotation types when it builds the commands, which it does on
every run, ``--help`` included; their homes (``qwenkit.models``, ``qwenkit.engine.types``,
``qwenkit.convert``) import the chat layer and cost ~0.4 s. tests/unit/test_cli_import_cost.py checks
that each copy still equals its source.
"""

from __future__ import annotations

from enum import Enum

DEFAULT_MODEL = "qwen2.5-coder-0.5b-instruct:q4_k_m"  # qwenkit.models.ref.DEFAULT_MODEL
MIN_CONTEXT = 64  # qwenkit.engine.types.MIN_CONTEXT


class OutTypeChoice(str, Enum):
    """``convert --outtype``: the values of ``qwenkit.convert.checkpoint.OutType``, for parsing only."""

    F32 = "f32"
    F16 = "f16"
    BF16 = "bf16"
    Q8_0 = "q8_0"
