"""Fewer llama.cpp threads while the machine is busy, all of them again once it is quiet.

llama.cpp's workers wait for each other at every operation of a step, so when another process takes one
of the cores a step on all of them waits for the slowest worker: on 2 cores at load 4-6, 2 threads
decoded at 0.7 tok/s where 1 thread gave 29. No fixed thread count is right for both a quiet and a busy
machine, so the engine watches its own decode steps. When the current count runs far slower than its
own best at the same batch size, it tries half as many threads for a few steps and keeps whichever was
faster; from fewer threads it tries more again now and then. Only when the user did not choose
``--threads``. Prefill steps are not measured (their size varies); decode steps are timed by the caller.

Since the workers are pinned one per core (``cpu_placement``), 2 threads stay faster than 1 on 2 busy
cores (measured with 2 and 4 competing processes), so on such a machine the tuner's trials of fewer
threads end where they began; it still matters where nothing is pinned (other thread counts, other
systems).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from statistics import median

log = logging.getLogger(__name__)

WINDOW = 6  # decode steps of one batch size per measurement
SLOWDOWN = 1.6  # a count is slowed when a window's median exceeds its best window by this factor
GAIN_FEWER = 1.25  # fewer threads are kept only when this much faster than the slowed count
RETRY_MORE_FIRST = 48  # decode steps on fewer threads before the first try of more: a wrong move is short
RETRY_MORE_EVERY = 240  # the most steps between tries of more (doubling from the first); and after any trial
FIRST_FEWER_AT = 480  # without a slowdown, the first try of fewer: the machine may be busy from the start
RETRY_FEWER_EVERY = 2400  # later tries of fewer without a slowdown (each costs a few slower steps)


@dataclass
class _Trial:
    previous: int  # the thread count to return to
    previous_median: float  # its last window, at ``batch`` tokens
    batch: int


@dataclass
class ThreadTuner:
    """Chooses the thread count of the next decode step from the times of the last ones.

    ``apply`` sets a count on the model (``llama_set_n_threads``). ``observe`` takes every decode step's
    batch size and wall time."""

    most: int
    apply: Callable[[int], None]
    current: int = field(init=False)
    _best: dict[tuple[int, int], float] = field(default_factory=dict, init=False)
    _window: list[float] = field(default_factory=list, init=False)
    _window_key: tuple[int, int] = field(default=(0, 0), init=False)
    _trial: _Trial | None = field(default=None, init=False)
    _tried: bool = field(default=False, init=False)
    _steps: int = field(default=0, init=False)  # decode steps observed
    _last_trial: int = field(default=0, init=False)  # the step at which the last trial ended
    _more_after: int = field(default=RETRY_MORE_FIRST, init=False)  # steps on fewer before trying more

    def __post_init__(self) -> None:
        self.current = self.most

    def observe(self, batch: int, seconds: float) -> None:
        self._steps += 1
        key = (self.current, batch)
        if key != self._window_key:
            self._window_key, self._window = key, []
            if self._trial is not None and batch != self._trial.batch:  # not comparable: go back
                self._end_trial(None)
                return
        self._window.append(seconds)
        if len(self._window) < WINDOW:
            return
        now = median(self._window)
        self._window = []
        best = self._best.get(key)
        self._best[key] = now if best is None else min(best, now)
        if self._trial is not None:
            self._end_trial(now)
        elif self.current > 1 and self._fewer_is_due(now, best):
            self._begin(max(1, self.current // 2), now, batch)
        elif self.current < self.most and self._since_trial() >= self._more_after:
            self._begin(min(self.most, self.current * 2), now, batch)

    def _since_trial(self) -> int:
        return self._steps - self._last_trial

    def _fewer_is_due(self, now: float, best: float | None) -> bool:
        if self._tried and self._since_trial() < RETRY_MORE_EVERY:
            return False  # a trial just ended: do not spend every other window on trials
        if best is not None and now > SLOWDOWN * best:  # against its own best at this batch size
            return True
        return self._since_trial() >= (RETRY_FEWER_EVERY if self._tried else FIRST_FEWER_AT)

    def _begin(self, threads: int, previous_median: float, batch: int) -> None:
        self._trial, self._tried = _Trial(self.current, previous_median, batch), True
        self._switch(threads)

    def _end_trial(self, now: float | None) -> None:
        """Keep the tried count if its window (``now``; None: abandoned) beat the one before it: by
        GAIN_FEWER for fewer threads, by anything for more (all threads are the normal state)."""
        trial = self._trial
        assert trial is not None
        self._trial = None
        self._last_trial = self._steps
        more = self.current > trial.previous
        keep = now is not None and now * (1.0 if more else GAIN_FEWER) < trial.previous_median
        if not more and keep:
            self._more_after = RETRY_MORE_FIRST  # a new move to fewer: check it again soon
        elif more and not keep:
            self._more_after = min(RETRY_MORE_EVERY, 2 * self._more_after)
        if keep:
            log.info(
                "decode steps of %d tokens take %.0f ms on %d threads against %.0f ms on %d: keeping %d",
                trial.batch, (now or 0.0) * 1000, self.current, trial.previous_median * 1000, trial.previous,
                self.current,
            )  # fmt: skip
        else:
            self._switch(trial.previous)

    def _switch(self, threads: int) -> None:
        self.current = threads
        self._window_key, self._window = (0, 0), []
        self.apply(threads)
