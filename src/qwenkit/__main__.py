"""``python -m qwenkit`` runs the CLI."""

from __future__ import annotations

import sys

from qwenkit.cli import main

sys.exit(main())
