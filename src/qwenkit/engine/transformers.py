"""The transformers backend: the reference implementation, GPUs, bitsandbytes and LoRA adapters.

One engine thread decodes every running sequence with one forward per step. New sequences are
prefilled alone, then their KV joins a shared, left-padded ``DynamicCache``: each row carries an
attention mask over its own columns and its own position ids, so a sequence computes the same
attention whether it runs alone or next to others. Finished rows are dropped from the batch and
columns no row uses any more are trimmed from the left.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qwenkit.chat.tokenizer import Tokenizer
from qwenkit.engine.handle import QueuedHandle
from qwenkit.engine.scheduler import Scheduler
from qwenkit.engine.torch_sampling import SequenceSampler
from qwenkit.engine.transformers_loading import (
    ModelSource,
    apply_adapters,
    cache_kwarg,
    import_torch,
    load_model,
    load_tokenizer,
    quantization_config,
    resolve_device,
    resolve_dtype,
)
from qwenkit.engine.types import BackendOptions, FinishReason, SamplingParams, TokenEvent, check_logit_bias
from qwenkit.errors import ContextLengthError, QwenkitError, UsageError

if TYPE_CHECKING:
    import torch


@dataclass
class _Request:
    handle: QueuedHandle
    prompt: list[int]
    params: SamplingParams


@dataclass
class _Running:
    slot: int
    request: _Request
    sampler: SequenceSampler
    stop_ids: frozenset[int]
    kv_len: int  # tokens of this sequence in the KV cache
    produced: int = 0
    pending: deque[int] = field(default_factory=deque)  # emitted, to be fed one per step


def _left_pad(t: torch.Tensor, length: int, dim: int) -> torch.Tensor:
    import torch

    missing = length - t.shape[dim]
    if missing <= 0:
        return t
    shape = list(t.shape)
    shape[dim] = missing
    return torch.cat([torch.zeros(shape, dtype=t.dtype, device=t.device), t], dim=dim)


class _Batch:
    """The running sequences; row i of the cache and of ``mask`` belongs to ``rows[i]``."""

    def __init__(self) -> None:
        self.rows: list[_Running] = []
        self.cache: Any = None
        self.mask: torch.Tensor | None = None

    def add(self, seq: _Running, cache: Any) -> None:
        import torch

        mask = torch.ones((1, seq.kv_len), dtype=torch.long, device=cache.layers[0].keys.device)
        if not self.rows:
            self.rows, self.cache, self.mask = [seq], cache, mask
            return
        assert self.mask is not None
        width = max(self.mask.shape[1], seq.kv_len)
        for mine, new in zip(self.cache.layers, cache.layers, strict=True):
            mine.keys = torch.cat([_left_pad(mine.keys, width, 2), _left_pad(new.keys, width, 2)])
            mine.values = torch.cat([_left_pad(mine.values, width, 2), _left_pad(new.values, width, 2)])
        self.mask = torch.cat([_left_pad(self.mask, width, 1), _left_pad(mask, width, 1)])
        self.rows.append(seq)

    def keep(self, indices: list[int]) -> None:
        """Keep only these rows, then drop leading columns that every remaining row masks out."""
        import torch

        if len(indices) == len(self.rows):
            return
        self.rows = [self.rows[i] for i in indices]
        if not self.rows:
            self.cache = self.mask = None
            return
        assert self.mask is not None
        index = torch.tensor(indices, device=self.mask.device)
        self.mask = self.mask[index]
        start = int(self.mask.shape[1] - max(r.kv_len for r in self.rows))
        self.mask = self.mask[:, start:]
        for layer in self.cache.layers:
            layer.keys = layer.keys[index, :, start:]
            layer.values = layer.values[index, :, start:]


def _engine_error(exc: Exception) -> QwenkitError:
    """What a consumer sees when a forward pass fails (out of memory, say): a QwenkitError."""
    if isinstance(exc, QwenkitError):
        return exc
    error = QwenkitError(f"the transformers engine failed: {type(exc).__name__}: {exc}")
    error.__cause__ = exc
    return error


class TransformersBackend:
    """A transformers model behind the Backend protocol (see the module docstring for the design)."""

    name = "transformers"

    def __init__(self, model: Any, tokenizer: Tokenizer, device: str, options: BackendOptions) -> None:
        self.tokenizer = tokenizer
        self.device = device
        self.model = model
        config = model.config
        trained = getattr(config, "max_position_embeddings", None) or options.context
        self.context_length = min(options.context, trained)
        specials = tokenizer.special_tokens.values()
        self._vocab = min(max(tokenizer.vocab_size, max(specials, default=0) + 1), config.vocab_size)
        self._cache_kw = cache_kwarg(model)
        self._scheduler: Scheduler[_Request] = Scheduler(
            options.parallel, options.max_queue, lambda r: r.handle.cancelled
        )
        self._batch = _Batch()
        self._wake = threading.Event()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="qwenkit-transformers", daemon=True)
        self._thread.start()

    @classmethod
    def load(cls, path_or_dir: str | Path, options: BackendOptions | None = None) -> TransformersBackend:
        options = options or BackendOptions()
        torch = import_torch()
        device = resolve_device(options.device, torch)
        dtype = resolve_dtype(options.dtype, device, torch)
        quant = quantization_config(options.quantization, device, torch)
        source = ModelSource.locate(path_or_dir)
        if quant is not None and source.gguf_file is not None:
            raise UsageError("a GGUF is already quantized: drop quantization, or load a safetensors model")
        if options.threads is not None:
            torch.set_num_threads(options.threads)
        tokenizer = load_tokenizer(source)
        model = load_model(source, device, dtype, quant)
        model = apply_adapters(model, options.adapters, quantized=quant is not None)
        model.eval()
        return cls(model, tokenizer, device, options)

    # ----- caller side ---------------------------------------------------------------------

    def submit(self, prompt_ids: Sequence[int], params: SamplingParams) -> QueuedHandle:
        if self._closed:
            raise UsageError("the backend is closed")
        if params.grammar is not None:
            raise UsageError("grammar-constrained sampling needs the llama.cpp backend", param="grammar")
        ids = [int(i) for i in prompt_ids]
        if not ids:
            raise UsageError("the prompt is empty", param="prompt")
        if any(not 0 <= i < self._vocab for i in ids):
            raise UsageError("the prompt holds token ids outside the vocabulary", param="prompt")
        check_logit_bias(params.logit_bias, self._vocab)
        if len(ids) >= self.context_length:
            raise ContextLengthError(
                f"the prompt has {len(ids)} tokens; the context holds {self.context_length}, "
                "which leaves no room for an answer",
                param="messages",
            )
        handle = QueuedHandle(vocab_size=self._vocab, on_cancel=self._wake.set)
        handle.timings.prompt_tokens = len(ids)
        self._scheduler.submit(_Request(handle, ids, params))
        self._wake.set()
        return handle

    def close(self) -> None:
        """Stop the engine; generations still running or waiting end as CANCELLED."""
        if self._closed:
            return
        self._closed = True
        self._wake.set()
        self._thread.join()
        for request in self._scheduler.drain():
            request.handle.finish(FinishReason.CANCELLED)

    def __enter__(self) -> TransformersBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----- engine thread -------------------------------------------------------------------

    def _run(self) -> None:
        while not self._closed:
            self._wake.clear()
            try:
                self._drop_cancelled()
                for slot, request in self._scheduler.admit(lambda _request, free: free[0]):
                    self._start(slot, request)
                if self._batch.rows:
                    self._decode_step()
                elif not self._scheduler.n_waiting:
                    self._wake.wait()
            except Exception as exc:  # a failed step must not kill the engine: fail who was in it
                for seq in self._batch.rows:
                    self._end(seq, None, _engine_error(exc))
                self._batch = _Batch()

    def _end(self, seq: _Running, reason: FinishReason | None, error: BaseException | None = None) -> None:
        if error is not None:
            seq.request.handle.fail(error)
        elif reason is not None:
            seq.request.handle.finish(reason)
        self._scheduler.release(seq.slot)

    def _drop_cancelled(self) -> None:
        rows = self._batch.rows
        if any(r.request.handle.cancelled for r in rows):
            for r in rows:
                if r.request.handle.cancelled:
                    self._end(r, None)
            self._batch.keep([i for i, r in enumerate(rows) if not r.request.handle.cancelled])

    def _start(self, slot: int, request: _Request) -> None:
        """Prefill one new sequence alone, pick its first token, and join it to the batch."""
        import torch
        from transformers import DynamicCache

        request.handle.timings.started = time.perf_counter()
        params = request.params
        stops = params.stop_token_ids | (frozenset() if params.ignore_eos else self.tokenizer.eos_token_ids)
        sampler = SequenceSampler(params, request.prompt, self._vocab, self.model.device)
        seq = _Running(slot, request, sampler, stops, kv_len=len(request.prompt))
        cache = DynamicCache()
        try:
            ids = torch.tensor([request.prompt], dtype=torch.long, device=self.model.device)
            with torch.inference_mode():
                out = self.model(input_ids=ids, use_cache=True, logits_to_keep=1, **{self._cache_kw: cache})
            running = self._advance(seq, out.logits[0, -1])
        except Exception as exc:
            self._end(seq, None, _engine_error(exc))
            return
        if running:
            self._batch.add(seq, cache)

    def _decode_step(self) -> None:
        import torch

        batch, device = self._batch, self.model.device
        assert batch.mask is not None
        ids = torch.tensor([[r.pending.popleft()] for r in batch.rows], dtype=torch.long, device=device)
        positions = torch.tensor([[r.kv_len] for r in batch.rows], dtype=torch.long, device=device)
        mask = torch.cat([batch.mask, torch.ones_like(batch.mask[:, :1])], dim=1)
        with torch.inference_mode():
            out = self.model(
                input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True,
                **{self._cache_kw: batch.cache},
            )  # fmt: skip
        batch.mask = mask
        keep = []
        for i, seq in enumerate(batch.rows):
            seq.kv_len += 1
            if self._advance(seq, out.logits[i, -1]):
                keep.append(i)
        batch.keep(keep)

    def _advance(self, seq: _Running, logits: torch.Tensor) -> bool:
        """Queue the sequence's next token(s); False once it has finished.

        Injected tokens are emitted at once and replace this step's choice; they are then fed one
        per step, so they enter the KV cache exactly as sampled tokens do.
        """
        handle = seq.request.handle
        if handle.cancelled:
            self._end(seq, None)
            return False
        if handle.has_injected:
            for token in handle.take_injected():
                seq.sampler.accept(token)
                if not self._emit(seq, TokenEvent(token, forced=True)):
                    return False
            return True
        if seq.pending:  # still feeding forced tokens: this step's logits are not used
            return True
        sample = seq.sampler(logits)
        if sample.token_id in seq.stop_ids:
            self._end(seq, FinishReason.STOP)
            return False
        seq.sampler.accept(sample.token_id)
        return self._emit(seq, TokenEvent(sample.token_id, sample.logprob, sample.top_logprobs))

    def _emit(self, seq: _Running, event: TokenEvent) -> bool:
        """Push one output token; False if that ended the sequence (max_tokens or a full context)."""
        seq.request.handle.push(event)
        seq.produced += 1
        seq.pending.append(event.token_id)
        total = len(seq.request.prompt) + seq.produced
        if seq.produced >= seq.request.params.max_tokens or total >= self.context_length:
            self._end(seq, FinishReason.LENGTH)
            return False
        return True
