"""Counts an event loop's wake-ups by the engine: QueuedHandle's callbacks, not asyncio's own (its
async-generator finaliser also calls ``call_soon_threadsafe``)."""

from __future__ import annotations

import asyncio


class WakeCounter:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.calls = 0
        original = loop.call_soon_threadsafe

        def counting(*args: object, **kwargs: object) -> object:
            self.calls += getattr(args[0], "__module__", None) == "qwenkit.engine.handle"
            return original(*args, **kwargs)  # type: ignore[arg-type]

        loop.call_soon_threadsafe = counting  # type: ignore[method-assign]
