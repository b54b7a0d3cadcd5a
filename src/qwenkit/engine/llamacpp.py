"""The llama.cpp backend: continuous batching over one context, on llama-cpp-python's low-level API.

One engine thread owns the context. Each step (schedule, run, postprocess) frees cancelled slots,
admits waiting requests into free slots (reusing the longest cached prompt prefix), decodes one
token for every running sequence plus a bounded prefill chunk for new ones in a single
``llama_decode``, then samples each sequence with its own sampler. Sequences join and leave between
steps without disturbing the others.

The KV cache is unified (one cell pool shared by ``parallel`` sequences, ``context`` cells each):
batches may then mix any sequence ids in one pass over the weights, and copying a cached prefix to
another sequence is a metadata update, not a buffer copy.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from qwenkit.engine.handle import QueuedHandle
from qwenkit.engine.llama_lib import llama_lib
from qwenkit.engine.llama_sampling import SequenceSampler, check_grammar, logits_row, token_logprobs
from qwenkit.engine.llama_tokenizer import LlamaTokenizer
from qwenkit.engine.prefix import Placement, SlotView, place
from qwenkit.engine.scheduler import Scheduler
from qwenkit.engine.types import (
    BackendOptions,
    FinishReason,
    SamplingParams,
    TokenEvent,
    check_logit_bias,
)
from qwenkit.errors import (
    ContextLengthError,
    ModelFormatError,
    ModelNotFoundError,
    QwenkitError,
    UsageError,
)

N_BATCH = 512  # tokens per llama_decode
PREFILL_CHUNK_WHILE_DECODING = 128  # prompt tokens per step while other streams wait for theirs


@dataclass
class _Request:
    prompt: list[int]
    params: SamplingParams
    handle: QueuedHandle
    stop_ids: frozenset[int]
    placement: Placement = field(default_factory=lambda: Placement(0, 0))


@dataclass
class _Slot:
    seq_id: int
    kv_tokens: list[int] = field(default_factory=list)  # tokens whose KV this sequence holds, by position
    request: _Request | None = None
    sampler: SequenceSampler | None = None
    prefilled: int = 0  # prompt tokens already in the KV
    pending: list[int] = field(default_factory=list)  # tokens to decode next: the last prompt token,
    # then each sampled (already emitted) one
    generated: int = 0
    last_used: float = 0.0


@dataclass(frozen=True)
class EngineStats:
    n_slots: int
    running: int
    waiting: int
    steps: int


@dataclass
class _Planned:
    slot: _Slot
    tokens: list[int]
    logits_index: int | None  # batch position whose logits pick the next token
    prefill: bool = False


def default_threads() -> int:
    return psutil.cpu_count(logical=False) or psutil.cpu_count() or 1


class LlamaCppBackend:
    """A GGUF model serving ``options.parallel`` sequences at once on the CPU (or llama.cpp's GPU)."""

    name = "llama.cpp"

    def __init__(self, model: Any, ctx: Any, options: BackendOptions) -> None:
        lib = llama_lib()
        self._lib = lib
        self._model = model
        self._ctx = ctx
        self._mem = lib.llama_get_memory(ctx)
        self.options = options
        self.context_length = options.context
        self.tokenizer = LlamaTokenizer(model)
        self._vocab = lib.llama_model_get_vocab(model)
        self._n_vocab = self.tokenizer.vocab_size
        self._batch = lib.llama_batch_init(N_BATCH, 0, 1)
        self._slots = [_Slot(seq_id=i) for i in range(options.parallel)]
        self._scheduler: Scheduler[_Request] = Scheduler(
            options.parallel, options.max_queue, lambda r: r.handle.cancelled
        )
        self._cond = threading.Condition()
        self._stopping = False
        self._closed = False
        self._steps = 0
        self._thread = threading.Thread(target=self._loop, name="qwenkit-llamacpp", daemon=True)
        self._thread.start()

    @classmethod
    def load(cls, path: str | Path, options: BackendOptions | None = None) -> LlamaCppBackend:
        options = options or BackendOptions()
        lib = llama_lib()
        path = Path(path)
        if not path.is_file():
            raise ModelNotFoundError(f"no model file at {path}")
        mparams = lib.llama_model_default_params()
        model = lib.llama_model_load_from_file(str(path).encode(), mparams)
        if not model:
            raise ModelFormatError(f"llama.cpp could not load {path}: not a valid GGUF model")
        threads = options.threads or default_threads()
        cparams = lib.llama_context_default_params()
        cparams.n_ctx = options.context * options.parallel
        cparams.n_batch = N_BATCH
        cparams.n_ubatch = N_BATCH
        cparams.n_seq_max = options.parallel
        cparams.n_threads = threads
        cparams.n_threads_batch = threads
        cparams.kv_unified = True
        cparams.no_perf = True
        ctx = lib.llama_init_from_model(model, cparams)
        if not ctx:
            lib.llama_model_free(model)
            raise QwenkitError(
                f"llama.cpp could not create a context of {cparams.n_ctx} tokens",
                hint="lower --context or --parallel (the KV cache may not fit in memory)",
            )
        return cls(model, ctx, options)

    # ----- public API ----------------------------------------------------------------------

    def submit(self, prompt_ids: Sequence[int], params: SamplingParams) -> QueuedHandle:
        if self._closed:
            raise UsageError("this backend has been closed")
        prompt = [int(t) for t in prompt_ids]
        if not prompt:
            raise UsageError("the prompt is empty", param="prompt")
        bad = [t for t in prompt if not 0 <= t < self._n_vocab]
        if bad:
            raise UsageError(f"prompt token id {bad[0]} is outside the vocabulary", param="prompt")
        if len(prompt) >= self.context_length:
            raise ContextLengthError(
                f"the prompt has {len(prompt)} tokens; the context holds {self.context_length} "
                "including the answer",
                param="messages",
                hint="shorten the conversation or load the model with a larger --context",
            )
        if params.grammar is not None:
            check_grammar(params.grammar, self._vocab)
        check_logit_bias(params.logit_bias, self._n_vocab)
        eos = frozenset() if params.ignore_eos else self.tokenizer.eos_token_ids
        stop_ids = params.stop_token_ids | eos
        handle = QueuedHandle(vocab_size=self._n_vocab, on_cancel=self._wake)
        handle.timings.prompt_tokens = len(prompt)
        self._scheduler.submit(_Request(prompt, params, handle, stop_ids))
        self._wake()
        return handle

    def stats(self) -> EngineStats:
        running = self._scheduler.running()
        return EngineStats(len(self._slots), len(running), self._scheduler.n_waiting, self._steps)

    def close(self) -> None:
        """Stop the engine, end every open generation as CANCELLED, and free llama.cpp's memory."""
        if self._closed:
            return
        self._closed = True
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._thread.join()
        for request in self._scheduler.drain():
            request.handle.finish(FinishReason.CANCELLED)
        for slot in self._slots:
            if slot.sampler is not None:
                slot.sampler.free()
                slot.sampler = None
        lib = self._lib
        lib.llama_batch_free(self._batch)
        lib.llama_free(self._ctx)
        self.tokenizer.detach()
        lib.llama_model_free(self._model)

    def __enter__(self) -> LlamaCppBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----- engine thread -------------------------------------------------------------------

    def _wake(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._stopping and self._scheduler.idle:
                    self._cond.wait()
                if self._stopping:
                    return
            try:
                worked = self._step()
            except Exception as exc:  # a failed step must not kill the engine: fail its sequences
                worked = True
                for slot in self._slots:
                    if slot.request is not None:
                        self._end(slot, error=exc)
            if not worked:  # only possible in a race with cancel(): give it a moment, do not spin
                with self._cond:
                    self._cond.wait(0.005)

    def _step(self) -> bool:
        """One engine step; False if there was nothing to decode."""
        self._steps += 1
        for slot in self._slots:
            if slot.request is not None and slot.request.handle.cancelled:
                self._end(slot, FinishReason.CANCELLED)
        # One at a time: each choice must see the slots as the previous admission left them.
        while admitted := self._scheduler.admit(self._choose_slot, limit=1):
            index, request = admitted[0]
            try:
                self._start(self._slots[index], request)
            except Exception as exc:  # only this request fails; the running ones go on
                self._end(self._slots[index], error=exc)
        plan = self._build_batch()
        if not plan:
            return False
        status = self._lib.llama_decode(self._ctx, self._batch)
        if status != 0:
            raise QwenkitError(f"llama_decode failed with status {status}")
        for item in plan:
            item.slot.kv_tokens.extend(item.tokens)
            if item.prefill:
                item.slot.prefilled += len(item.tokens)
            if item.logits_index is not None:
                self._next_token(item.slot, item.logits_index)
        return True

    # ----- schedule ------------------------------------------------------------------------

    def _choose_slot(self, request: _Request, free: Sequence[int]) -> int:
        views = [SlotView(s.kv_tokens, s.last_used, s.seq_id in free) for s in self._slots]
        request.placement = place(request.prompt, views)
        return request.placement.slot

    def _start(self, slot: _Slot, request: _Request) -> None:
        slot.request = request
        lib, seq, reuse, donor = self._lib, slot.seq_id, request.placement.reuse, request.placement.copy_from
        if donor is not None:
            lib.llama_memory_seq_rm(self._mem, seq, -1, -1)
            lib.llama_memory_seq_cp(self._mem, donor, seq, 0, reuse)
        elif not lib.llama_memory_seq_rm(self._mem, seq, reuse, -1):
            lib.llama_memory_seq_rm(self._mem, seq, -1, -1)
            reuse = 0
        slot.kv_tokens = request.prompt[:reuse]
        # The last prompt token is decoded on its own, like a sampled token, never inside a long
        # prefill batch: llama.cpp's kernels round differently for large batches, and this keeps the
        # first token's logits the same whether the rest of the prompt came from cache or not.
        slot.request, slot.prefilled, slot.pending, slot.generated = request, reuse, request.prompt[-1:], 0
        slot.sampler = SequenceSampler(request.params, self._vocab, self._n_vocab, request.prompt)
        slot.last_used = time.perf_counter()
        timings = request.handle.timings
        timings.started = slot.last_used
        timings.cached_prompt_tokens = reuse

    def _build_batch(self) -> list[_Planned]:
        plan: list[_Planned] = []
        batch, n = self._batch, 0
        running = [s for s in self._slots if s.request is not None]
        decoding = [s for s in running if s.prefilled >= len(s.request.prompt) - 1]  # type: ignore[union-attr]
        prefilling = [s for s in running if s.prefilled < len(s.request.prompt) - 1]  # type: ignore[union-attr]
        for slot in decoding:
            self._take_forced(slot)
            tokens = slot.pending[: N_BATCH - n]
            if not tokens:
                continue
            slot.pending = slot.pending[len(tokens) :]
            last = n + len(tokens) - 1
            n = self._fill(batch, n, slot, tokens, logits_last=not slot.pending)
            plan.append(_Planned(slot, tokens, last if not slot.pending else None))
        budget = N_BATCH - n if not plan else min(PREFILL_CHUNK_WHILE_DECODING, N_BATCH - n)
        for slot in prefilling:
            if budget <= 0:
                break
            body = slot.request.prompt[:-1]  # type: ignore[union-attr]
            tokens = body[slot.prefilled : slot.prefilled + budget]
            n = self._fill(batch, n, slot, tokens, logits_last=False)
            plan.append(_Planned(slot, tokens, None, prefill=True))
            budget -= len(tokens)
        batch.n_tokens = n
        return plan

    def _fill(self, batch: Any, n: int, slot: _Slot, tokens: list[int], *, logits_last: bool) -> int:
        pos = len(slot.kv_tokens)
        for j, tid in enumerate(tokens):
            batch.token[n + j] = tid
            batch.pos[n + j] = pos + j
            batch.n_seq_id[n + j] = 1
            batch.seq_id[n + j][0] = slot.seq_id
            batch.logits[n + j] = 0
        if logits_last:
            batch.logits[n + len(tokens) - 1] = 1
        return n + len(tokens)

    def _take_forced(self, slot: _Slot) -> None:
        """Emit injected tokens and queue them for decoding, as if they had been sampled."""
        request, sampler = slot.request, slot.sampler
        assert request is not None and sampler is not None  # only called for running slots
        if not request.handle.has_injected:
            return
        for tid in request.handle.take_injected():
            if not sampler.accept_forced(tid):
                self._end(slot, error=UsageError(f"injected token {tid} is not allowed by the grammar"))
                return
            if self._emit(slot, TokenEvent(tid, forced=True)):
                return

    # ----- postprocess ---------------------------------------------------------------------

    def _next_token(self, slot: _Slot, index: int) -> None:
        request, sampler = slot.request, slot.sampler
        if request is None or sampler is None:
            return
        if request.handle.has_injected:  # forced tokens replace this step's choice
            return
        token = sampler.sample(self._ctx, index)
        if token in request.stop_ids:
            self._end(slot, FinishReason.STOP)
            return
        event = TokenEvent(token)
        if request.params.logprobs or request.params.top_logprobs:
            row = logits_row(self._ctx, index, self._n_vocab)
            logprob, top = token_logprobs(row, token, request.params.top_logprobs)
            event = TokenEvent(token, logprob, top)
        self._emit(slot, event)

    def _emit(self, slot: _Slot, event: TokenEvent) -> bool:
        """Push one output token; True if that ended the sequence (max_tokens or a full context)."""
        request = slot.request
        assert request is not None
        request.handle.push(event)
        slot.generated += 1
        slot.pending.append(event.token_id)
        if slot.generated >= request.params.max_tokens or len(slot.kv_tokens) + len(slot.pending) > (
            self.context_length
        ):
            self._end(slot, FinishReason.LENGTH)
            return True
        return False

    def _end(
        self, slot: _Slot, reason: FinishReason | None = None, error: BaseException | None = None
    ) -> None:
        """Free the slot. A finished sequence keeps its KV for prefix reuse; a cancelled or failed
        one is cleared, since its cache may be partial."""
        request = slot.request
        if request is None:
            return
        request.handle.timings.finished_step = self._steps
        if error is not None:
            request.handle.fail(error)
        elif reason is not None:
            request.handle.finish(reason)
        if reason is not FinishReason.STOP and reason is not FinishReason.LENGTH:
            self._lib.llama_memory_seq_rm(self._mem, slot.seq_id, -1, -1)
            slot.kv_tokens = []
        if slot.sampler is not None:
            slot.sampler.free()
        slot.request, slot.sampler, slot.pending = None, None, []
        slot.last_used = time.perf_counter()
        self._scheduler.release(slot.seq_id)
