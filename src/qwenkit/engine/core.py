"""The engine core: one request lifecycle for every backend.

``EngineCore`` is the ``Backend`` that ``LLM`` and the server use. It validates what is submitted,
queues it (bounded: ``OverloadedError`` past ``max_queue``), and runs one engine thread whose step is
three lines, as in nano-vllm: schedule (drop cancelled sequences, admit waiting ones into free slots),
run (one forward pass of the ``ModelRunner``), postprocess (sample or force each due token, apply the
stop and length rules, emit). What differs between backends lives behind ``ModelRunner``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence as Seq
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from qwenkit.engine.handle import QueuedHandle, Wakeups
from qwenkit.engine.runner import LoadableRunner, ModelRunner
from qwenkit.engine.scheduler import Scheduler
from qwenkit.engine.sequence import Sequence
from qwenkit.engine.types import (
    BackendKind,
    BackendOptions,
    Capability,
    FinishReason,
    SamplingParams,
    TokenEvent,
    check_logit_bias,
    check_prompt,
)
from qwenkit.errors import QwenkitError, UsageError

if TYPE_CHECKING:
    from typing_extensions import Self

    from qwenkit.media import PreparedImage, VisionGrid


@dataclass(frozen=True)
class EngineStats:
    n_slots: int
    running: int
    waiting: int
    steps: int


def engine_error(exc: BaseException) -> BaseException:
    """What a consumer sees when a step fails (out of memory, say): a QwenkitError, cause attached."""
    if isinstance(exc, QwenkitError):
        return exc
    error = QwenkitError(f"the engine failed: {type(exc).__name__}: {exc}")
    error.__cause__ = exc
    return error


class EngineCore:
    """A ``ModelRunner`` behind the ``Backend`` protocol: many generations at once, one thread.

    A backend is a subclass naming its runner (``runner_type``); ``load`` does the rest.
    """

    runner_type: ClassVar[type[LoadableRunner]]

    @classmethod
    def load(cls, path: str | Path, options: BackendOptions | None = None) -> Self:
        options = options or BackendOptions()
        return cls(cls.runner_type.load(path, options), max_queue=options.max_queue)

    def __init__(self, runner: ModelRunner, *, max_queue: int = 64) -> None:
        self.runner = runner
        self.kind: BackendKind = runner.kind
        self.capabilities: Capability = runner.capabilities
        self.tokenizer = runner.tokenizer
        self.context_length = runner.context_length
        self._scheduler: Scheduler[Sequence] = Scheduler(
            runner.n_slots, max_queue, lambda seq: seq.handle.cancelled
        )
        self._cond = threading.Condition()
        self._stopping = False
        self._closed = False
        self._steps = 0
        self._wakeups = Wakeups()  # the step's consumers, woken once its tokens are all pushed
        self._warmed = threading.Event()
        self._warm_up_error: BaseException | None = None
        self._thread = threading.Thread(target=self._loop, name=f"qwenkit-{self.kind.value}", daemon=True)
        self._thread.start()
        self._warmed.wait()
        if self._warm_up_error is not None:
            self.close()
            raise self._warm_up_error

    # ----- caller side -----------------------------------------------------------------------

    def submit(
        self, prompt_ids: Seq[int], params: SamplingParams, images: Seq[PreparedImage] = ()
    ) -> QueuedHandle:
        """Queue one generation; its handle yields TokenEvents. Bad input raises here, never later."""
        if self._closed:
            raise UsageError("this backend has been closed")
        prompt = check_prompt(prompt_ids, self.runner.vocab_size, self.context_length)
        if images and Capability.IMAGES not in self.capabilities:
            raise UsageError(f"the {self.kind.display} backend does not take images here", param="messages")
        if params.grammar is not None and Capability.GRAMMAR not in self.capabilities:
            raise UsageError(
                f"grammar-constrained sampling is not supported by the {self.kind.display} backend",
                param="grammar",
            )
        check_logit_bias(params.logit_bias, self.runner.vocab_size)
        if params.adapter is not None and Capability.ADAPTERS not in self.capabilities:
            raise UsageError(
                f"adapter {params.adapter!r} asked for, but this {self.kind.display} backend serves none",
                param="model",
            )
        self.runner.validate(params)
        eos = frozenset() if params.ignore_eos else self.tokenizer.eos_token_ids
        handle = QueuedHandle(
            vocab_size=self.runner.vocab_size, on_cancel=self._wake, reasoning_budget=params.reasoning_budget
        )
        handle.timings.prompt_tokens = len(prompt)
        stop_ids = params.stop_token_ids | eos
        self._scheduler.submit(Sequence(prompt, params, handle, stop_ids, images=tuple(images)))
        self._wake()
        return handle

    @property
    def images_unavailable(self) -> str:
        """Why this model reads no images here, said when a prompt brings one."""
        reason: str | None = getattr(self.runner, "images_unavailable", None)
        return reason or f"the {self.kind.display} backend does not take images"

    @property
    def vision_grid(self) -> VisionGrid | None:
        """How the model's vision tower tiles images (None: it reads no images)."""
        grid: VisionGrid | None = getattr(self.runner, "vision_grid", None)
        return grid

    def stats(self) -> EngineStats:
        running = len(self._scheduler.running())
        return EngineStats(self.runner.n_slots, running, self._scheduler.n_waiting, self._steps)

    def close(self) -> None:
        """Stop the engine, end every open generation as CANCELLED, and free the model."""
        if self._closed:
            return
        self._closed = True
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._thread.join()
        for seq in self._scheduler.drain():
            seq.handle.finish(FinishReason.CANCELLED)
            if seq.slot >= 0:
                self.runner.release(seq, keep_cache=False)
        self.runner.close()

    def __enter__(self) -> EngineCore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----- engine thread -----------------------------------------------------------------------

    def _wake(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def _loop(self) -> None:
        try:
            self.runner.warm_up()  # on this thread: every model call happens here
        except BaseException as exc:  # reported by __init__, which closes the engine
            self._warm_up_error = exc
        finally:
            self._warmed.set()
        while True:
            with self._cond:
                while not self._stopping and self._scheduler.idle:
                    self._cond.wait()
                if self._stopping:
                    return
            try:
                worked = self._step()
            except Exception as exc:  # a broken step must not kill the engine: fail who was in it
                worked = True
                for seq in list(self._scheduler.running().values()):
                    self._end(seq, error=engine_error(exc))
            if not worked:  # only in a race with cancel(): give it a moment, do not spin
                with self._cond:
                    self._cond.wait(0.005)

    def _step(self) -> bool:
        """One engine step; False if there was nothing to run."""
        self._steps += 1
        running = self._schedule()
        if not running:
            return False
        try:
            for seq in self.runner.run(running):
                try:
                    self._postprocess(seq)
                except Exception as exc:  # only this sequence fails
                    self._end(seq, error=engine_error(exc))
        finally:
            self._wakeups.flush()
        return True

    # ----- schedule ------------------------------------------------------------------------------

    def _schedule(self) -> list[Sequence]:
        """Free cancelled sequences, admit waiting ones (one at a time: each placement sees the slots
        as the previous one left them), and return what runs this step."""
        for seq in self._scheduler.running().values():
            if seq.handle.cancelled:
                self._end(seq, FinishReason.CANCELLED)
        while admitted := self._scheduler.admit(self._place, limit=1):
            slot, seq = admitted[0]
            seq.slot = slot
            try:
                self.runner.start(seq)
            except Exception as exc:  # only this sequence fails; the running ones go on
                self._end(seq, error=engine_error(exc))
                continue
            seq.handle.timings.started = time.perf_counter()
            seq.handle.timings.cached_prompt_tokens = seq.cached
        return list(self._scheduler.running().values())

    def _place(self, seq: Sequence, free: Seq[int]) -> int:
        return self.runner.place(seq, list(free))

    # ----- postprocess ----------------------------------------------------------------------------

    def _postprocess(self, seq: Sequence) -> None:
        handle = seq.handle
        if seq.error is not None:
            self._end(seq, error=engine_error(seq.error))
        elif handle.cancelled:
            self._end(seq, FinishReason.CANCELLED)
        elif handle.has_injected:  # forced tokens replace this step's choice
            self._force(seq)
        else:
            event = self.runner.sample(seq)
            if event.token_id in seq.stop_ids:
                self._end(seq, FinishReason.STOP)
            else:
                self._emit(seq, event)

    def _force(self, seq: Sequence) -> None:
        """Emit injected tokens and queue them for feeding, as if they had been sampled."""
        for token in seq.handle.take_injected():
            if not self.runner.accept_forced(seq, token):
                self._end(seq, error=UsageError(f"injected token {token} is not allowed by the grammar"))
                return
            if self._emit(seq, TokenEvent(token, forced=True)):
                return

    def _emit(self, seq: Sequence, event: TokenEvent) -> bool:
        """Push one output token; True if that ended the sequence (max_tokens, or the context is full)."""
        seq.handle.push(event, self._wakeups)
        seq.generated += 1
        seq.pending.append(event.token_id)
        if seq.generated >= seq.params.max_tokens or seq.total >= self.context_length:
            self._end(seq, FinishReason.LENGTH)
            return True
        return False

    def _end(
        self, seq: Sequence, reason: FinishReason | None = None, error: BaseException | None = None
    ) -> None:
        """Finish the sequence and free its slot. A finished or cancelled sequence keeps its KV for
        prefix reuse (a stop string, a client that left or stopped the answer: its next turn starts
        from the same tokens); only a failed one is cleared, since a failed step leaves the cache in
        an unknown state."""
        if self._scheduler.running().get(seq.slot) is not seq:
            return  # already ended (only the engine thread ends sequences)
        self._scheduler.release(seq.slot)
        seq.handle.timings.finished_step = self._steps
        if error is not None:
            seq.handle.fail(error)
        elif reason is not None:
            seq.handle.finish(reason)
        self.runner.release(seq, keep_cache=error is None)
