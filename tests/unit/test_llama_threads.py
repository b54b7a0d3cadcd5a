"""The thread tuner on scripted step times: a busy machine moves it to fewer threads only when they are
faster, a quiet one brings it back, and a quiet machine pays (almost) nothing."""

from __future__ import annotations

from qwenkit.engine.llama_threads import (
    FIRST_FEWER_AT,
    RETRY_MORE_EVERY,
    RETRY_MORE_FIRST,
    WINDOW,
    ThreadTuner,
)


class Machine:
    """Step seconds by thread count; ``busy`` swaps in the contended times."""

    def __init__(self, quiet: dict[int, float], busy: dict[int, float]) -> None:
        self.quiet, self.busy, self.is_busy = quiet, busy, False
        self.applied: list[int] = []

    def step(self, tuner: ThreadTuner, batch: int = 1) -> float:
        seconds = (self.busy if self.is_busy else self.quiet)[tuner.current]
        tuner.observe(batch, seconds)
        return seconds


def tuner_on(machine: Machine) -> ThreadTuner:
    return ThreadTuner(2, machine.applied.append)


QUIET = {2: 0.036, 1: 0.062}  # measured here: 28 and 16 tok/s
BUSY = {2: 0.200, 1: 0.080}  # 2 threads collapse when a core is taken


def test_a_quiet_machine_keeps_every_thread_and_tries_fewer_only_rarely() -> None:
    machine = Machine(QUIET, BUSY)
    tuner = tuner_on(machine)
    steps = 4000
    total = sum(machine.step(tuner) for _ in range(steps))
    assert tuner.current == 2
    assert machine.applied.count(1) <= 2  # the periodic tries, each reverted
    assert total < steps * QUIET[2] * 1.01  # they cost under 1 %


def test_a_busy_machine_moves_to_fewer_threads_within_a_few_windows() -> None:
    machine = Machine(QUIET, BUSY)
    tuner = tuner_on(machine)
    for _ in range(50):
        machine.step(tuner)
    machine.is_busy = True
    for _ in range(3 * WINDOW):
        machine.step(tuner)
    assert tuner.current == 1 and machine.applied == [1]


def test_fewer_threads_are_not_kept_when_they_are_not_faster() -> None:
    machine = Machine(QUIET, {2: 0.100, 1: 0.105})  # slowed, but 1 thread is no better
    tuner = tuner_on(machine)
    for _ in range(50):
        machine.step(tuner)
    machine.is_busy = True
    for _ in range(RETRY_MORE_EVERY):
        machine.step(tuner)
    assert tuner.current == 2
    assert machine.applied == [1, 2]  # one trial, reverted, and no second one right after it


def test_the_quiet_machine_gets_every_thread_back() -> None:
    machine = Machine(QUIET, BUSY)
    tuner = tuner_on(machine)
    machine.is_busy = True
    for _ in range(FIRST_FEWER_AT + 2 * WINDOW):  # busy from the start: found by the first periodic try
        machine.step(tuner)
    assert tuner.current == 1
    machine.is_busy = False
    for _ in range(RETRY_MORE_EVERY + 2 * WINDOW):
        machine.step(tuner)
    assert tuner.current == 2


def test_a_trial_is_abandoned_when_the_batch_size_changes() -> None:
    machine = Machine(QUIET, BUSY)
    tuner = tuner_on(machine)
    for _ in range(20):
        machine.step(tuner, batch=4)
    machine.is_busy = True
    for _ in range(WINDOW + 2):  # the slowed window starts a trial on 1 thread
        machine.step(tuner, batch=4)
    assert tuner.current == 1
    machine.step(tuner, batch=5)  # another batch size is no comparison
    assert tuner.current == 2


def test_a_move_to_fewer_threads_on_a_passing_disturbance_is_short() -> None:
    machine = Machine(QUIET, BUSY)
    tuner = tuner_on(machine)
    for _ in range(5 * WINDOW):
        machine.step(tuner)
    machine.is_busy = True
    for _ in range(WINDOW):  # one disturbed window on 2 threads
        machine.step(tuner)
    machine.is_busy = False  # gone before 1 thread is tried, which then looks faster
    for _ in range(WINDOW):
        machine.step(tuner)
    assert tuner.current == 1
    for _ in range(RETRY_MORE_FIRST + 2 * WINDOW):
        machine.step(tuner)
    assert tuner.current == 2 and machine.applied == [1, 2]
