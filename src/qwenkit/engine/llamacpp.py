"""The llama.cpp backend: a ``ModelRunner`` over one llama.cpp context (llama-cpp-python's low-level API).

Each step decodes, in a single ``llama_decode``, the pending token(s) of every decoding sequence plus a
bounded prefill chunk for new ones (planned by ``llama_batch.py``); each sequence then samples with its
own native sampler chain, a new one from its prompt's last row in the step that prefills it (kept for
the same prompt's next request).
A new sequence continues in the slot that caches the longest prefix of its prompt when that slot's cache
is mostly its own past (a conversation's next turn), else takes an empty or the least recently used
slot and copies the longest cached prefix there, kept beside the busy slots (``prefix.py``); a finished
or cancelled sequence leaves its KV behind for the next one.

The KV cache keeps a stream of ``context`` cells per sequence (llama-server's default), so a decoding
token attends over its own sequence's cells only; batches still mix sequences in one pass over the
weights. A unified cell pool (``BackendOptions.kv_unified``) makes each token scan every sequence's
cells, which long prompts pay for; copying a cached prefix to another sequence is then a metadata
update instead of a buffer copy.

A vision model (a qwen2vl text GGUF with its mmproj) also takes images: ``llama_vision.py`` encodes
them on its own thread, and a step feeds a ready image's embeddings in a second ``llama_decode``
sharing the step's token budget (``llama_image_feed.py``). Positions are tracked per KV cell
(``llama_slots.py``), since with M-RoPE an image takes fewer positions than cells; the prefix cache
compares images by their pixels.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import psutil

from qwenkit.engine.core import EngineCore
from qwenkit.engine.cpu_placement import WorkerPlacement
from qwenkit.engine.llama_adapters import LlamaAdapters
from qwenkit.engine.llama_batch import N_BATCH, BatchPlanner, LlamaSequenceState, state_of
from qwenkit.engine.llama_image_feed import ImageFeeder, wait_for_images
from qwenkit.engine.llama_lib import llama_lib
from qwenkit.engine.llama_sampling import SequenceSampler, check_grammar, logits_row, token_logprobs
from qwenkit.engine.llama_slots import SlotCache
from qwenkit.engine.llama_threads import ThreadTuner
from qwenkit.engine.llama_tokenizer import LlamaTokenizer
from qwenkit.engine.llama_vision import (
    LlamaVision,
    check_runs,
    cut_before_image,
    find_mmproj,
    image_runs,
    keyed_prompt,
)
from qwenkit.engine.prefix import SlotView, place
from qwenkit.engine.sequence import Sequence
from qwenkit.engine.types import BackendKind, BackendOptions, Capability, SamplingParams, TokenEvent
from qwenkit.errors import ModelFormatError, ModelNotFoundError, QwenkitError, UsageError
from qwenkit.media import VisionGrid

# The default KV layout (BackendOptions.kv_unified): a stream per sequence. benchmarks/bench_engine_speed.py
# measured it 1.38x the unified pool at 8 streams x 2,000-token prompts (21.7 vs 15.7 tok/s) and level
# with it for short prompts at 1 to 16 streams (an earlier 20 % lead of the pool did not repeat).
KV_UNIFIED = False
WARM_UP_TOKENS = 32


def kv_unified(options: BackendOptions) -> bool:
    return KV_UNIFIED if options.kv_unified is None else options.kv_unified


def default_threads() -> int:
    return psutil.cpu_count(logical=False) or psutil.cpu_count() or 1


class LlamaCppRunner:
    """A GGUF model serving ``options.parallel`` sequences at once on the CPU (or llama.cpp's GPU)."""

    kind = BackendKind.LLAMACPP
    capabilities = Capability.GRAMMAR | Capability.LOGPROBS | Capability.PREFIX_CACHE

    def __init__(
        self, model: Any, ctx: Any, options: BackendOptions, adapters: LlamaAdapters | None = None,
        vision: LlamaVision | None = None,
    ) -> None:
        lib = llama_lib()
        self.adapters = adapters if adapters is not None else LlamaAdapters(lib, model, ())
        if self.adapters:
            self.capabilities = type(self).capabilities | Capability.ADAPTERS
        self.vision = vision
        self._images: ImageFeeder | None = None
        if vision is not None:
            self.capabilities = self.capabilities | Capability.IMAGES
            self._images = ImageFeeder(lib, ctx, vision.n_embd, N_BATCH)
        self._lib = lib
        self._model = model
        self._ctx = ctx
        self._mem = lib.llama_get_memory(ctx)
        self.kv_unified = kv_unified(options)
        self.context_length = options.context
        self.n_slots = options.parallel
        self.tokenizer = LlamaTokenizer(model)
        self.vocab_size = self.tokenizer.vocab_size
        self._vocab = lib.llama_model_get_vocab(model)
        self._batch = lib.llama_batch_init(N_BATCH, 0, 1)
        self._slots = [SlotCache() for _ in range(options.parallel)]
        self._planner = BatchPlanner(self._batch, self._slots)
        self._image_pad = self.tokenizer.special_tokens.get("<|image_pad|>", -1)
        # The user's --threads is kept as given; the default adapts to a busy machine.
        most = default_threads()
        self.threads: ThreadTuner | None = None
        if options.threads is None and most > 1:
            self.threads = ThreadTuner(most, lambda n: lib.llama_set_n_threads(ctx, n, n))
        self.placement = WorkerPlacement({})  # set by warm_up, once llama.cpp's workers exist

    @classmethod
    def load(cls, path: str | Path, options: BackendOptions) -> LlamaCppRunner:
        lib = llama_lib()
        path = Path(path)
        if not path.is_file():
            raise ModelNotFoundError(f"no model file at {path}")
        model = lib.llama_model_load_from_file(str(path).encode(), lib.llama_model_default_params())
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
        cparams.kv_unified = kv_unified(options)
        cparams.no_perf = True
        ctx = lib.llama_init_from_model(model, cparams)
        if not ctx:
            lib.llama_model_free(model)
            raise QwenkitError(
                f"llama.cpp could not create a context of {cparams.n_ctx} tokens",
                hint="lower --context (or, for qwenkit serve, --parallel): the KV cache may not fit",
            )
        vision: LlamaVision | None = None
        try:
            adapters = LlamaAdapters(lib, model, options.lora)
            mmproj = find_mmproj(path, options.mmproj)
            if mmproj is not None:
                n_embd = lib.llama_model_n_embd_inp(model)
                vision = LlamaVision.open(mmproj, model, n_embd, threads)
        except Exception:
            lib.llama_free(ctx)
            lib.llama_model_free(model)
            raise
        return cls(model, ctx, options, adapters, vision)

    @property
    def vision_grid(self) -> VisionGrid | None:
        return self.vision.grid if self.vision is not None else None

    @property
    def images_unavailable(self) -> str:
        return "no vision projector was loaded (mmproj-NAME beside the model, or the mmproj option)"

    def warm_up(self) -> None:
        """Run a prefill-sized batch and a single-token step once, then forget them: the first decode
        pays for paging the weights in and preparing the kernels, and a user's first request should not.

        Like every llama_decode, on the engine thread: llama.cpp's OpenMP workers belong to the thread
        that calls it, and a second calling thread leaves the first one's workers waiting beside its
        own (measured: one stream at 19 instead of 28 tok/s on 2 cores). The workers start here, so
        this is also where they get one core each (``cpu_placement``)."""
        lib, batch = self._lib, self._batch
        WorkerPlacement.name_engine_thread()
        token = min(self.tokenizer.eos_token_ids, default=0)
        for start, count in ((0, WARM_UP_TOKENS), (WARM_UP_TOKENS, 1)):
            for j in range(count):
                batch.token[j], batch.pos[j], batch.n_seq_id[j] = token, start + j, 1
                batch.seq_id[j][0], batch.logits[j] = 0, int(j == count - 1)
            batch.n_tokens = count
            if lib.llama_decode(self._ctx, batch) != 0:
                raise QwenkitError("llama.cpp could not run a first step on this model")
        lib.llama_memory_clear(self._mem, True)
        self.placement = WorkerPlacement.spread()

    # ----- before a sequence runs --------------------------------------------------------------

    def validate(self, params: SamplingParams) -> None:
        if params.grammar is not None:
            check_grammar(params.grammar, self._vocab)
        self.adapters.check(params.adapter)

    def place(self, seq: Sequence, free: list[int]) -> int:
        adapter = seq.params.adapter  # KV computed under another adapter is no prefix of this prompt
        views = [
            SlotView(s.kv_tokens if s.adapter == adapter else [], s.last_used, i in free, len(s.kv_tokens))
            for i, s in enumerate(self._slots)
        ]
        runs = image_runs(seq.prompt, self._image_pad, seq.images) if seq.images else []
        keys = keyed_prompt(seq.prompt, runs)
        placement = place(keys, views, together=not self.kv_unified)  # one stream each: see prefix.py
        reuse = cut_before_image(placement.reuse, runs)
        if reuse != placement.reuse:
            donor = placement.copy_from if reuse else None
            placement = dataclasses.replace(placement, reuse=reuse, copy_from=donor)
        seq.state = LlamaSequenceState(placement, keys, runs)
        return placement.slot

    def start(self, seq: Sequence) -> None:
        state = state_of(seq)
        lib, slot, reuse, donor = self._lib, seq.slot, state.placement.reuse, state.placement.copy_from
        if state.placement.park is not None:
            self._copy_slot(slot, state.placement.park)
        cache = self._slots[slot]
        source = self._slots[donor] if donor is not None else cache
        # Placement reuses at most all but the last prompt token; a slot that kept the logits after
        # the whole prompt serves all of it (SlotCache.rows): the same first token, no step. (The
        # adapter check matters for a one-token prompt, whose reuse of 0 compared nothing.)
        if reuse == len(state.keys) - 1 and source.adapter == seq.params.adapter:
            state.kept_row = source.row_for(state.keys)
            reuse += state.kept_row is not None
        after, rows = source.after[:reuse], source.rows
        cut = source.position_at(reuse)  # llama.cpp's ranges are positions, not cells
        if donor is not None:
            self._copy_slot(donor, slot, cut)
        elif not lib.llama_memory_seq_rm(self._mem, slot, cut, -1):
            lib.llama_memory_seq_rm(self._mem, slot, -1, -1)
            reuse, after, rows, state.kept_row = 0, [], {}, None
        cache.adapter = seq.params.adapter
        cache.keep(state.keys[:reuse], after, rows)
        cache.last_used = time.perf_counter()
        if seq.images:
            check_runs(seq.prompt, self._image_pad, state.runs, seq.images)
            self._encode_images(state, reuse)
        # The whole prompt is prefilled and the last chunk's last row chooses the first token, as
        # llama-server does: no step of its own for the last prompt token.
        seq.cached, state.prefilled, seq.pending = reuse, reuse, []
        state.sampler = SequenceSampler(seq.params, self._vocab, self.vocab_size, seq.prompt)

    def _copy_slot(self, source: int, target: int, cut: int = -1) -> None:
        """Make ``target`` hold ``source``'s KV before position ``cut`` (all of it for -1). Across streams
        llama.cpp copies buffers at the next decode, in the order asked, before the step computes."""
        lib = self._lib
        lib.llama_memory_seq_rm(self._mem, target, -1, -1)
        if self.kv_unified:  # the same cells gain a sequence id: no data moves
            lib.llama_memory_seq_cp(self._mem, source, target, 0, cut)
        else:  # another stream: llama.cpp copies the whole stream, the tail is then dropped
            lib.llama_memory_seq_cp(self._mem, source, target, -1, -1)
            if cut >= 0:
                lib.llama_memory_seq_rm(self._mem, target, cut, -1)
        if cut < 0:
            self._slots[target] = dataclasses.replace(
                self._slots[source], kv_tokens=list(self._slots[source].kv_tokens),
                after=list(self._slots[source].after), rows=dict(self._slots[source].rows),
            )

    def _encode_images(self, state: LlamaSequenceState, reuse: int) -> None:
        if self.vision is None:
            raise UsageError(f"this model reads no images: {self.images_unavailable}")
        for run in state.runs:
            if run.begin >= reuse:  # a cached image is not encoded again
                run.embedding = self.vision.encode(run.image, run.length)
            else:
                run.fed = run.length

    # ----- one step ------------------------------------------------------------------------------

    def run(self, seqs: list[Sequence]) -> list[Sequence]:
        seqs = self.adapters.group(seqs)
        step = self._planner.plan(seqs)
        plan, piece, failed = step.tokens, step.image, step.failed
        kept = [seq for seq in seqs if state_of(seq).kept_row is not None]  # due without a step
        if not plan and piece is None:
            if not failed and not kept:
                wait_for_images(run for seq in seqs for run in state_of(seq).runs)
            return failed + kept
        if self.adapters:
            self.adapters.apply(self._ctx, seqs[0].params.adapter)
        if piece is not None:  # first: a decode's logits last only until the next decode
            assert self._images is not None
            self._images.feed(piece.run, piece.seq.slot, self._slots[piece.seq.slot], piece.count)
            state_of(piece.seq).prefilled += piece.count
        if plan:
            began = time.perf_counter()
            status = self._lib.llama_decode(self._ctx, self._batch)
            if status != 0:
                raise QwenkitError(f"llama_decode failed with status {status}")
            if self.threads is not None and piece is None and not any(item.prefill for item in plan):
                self.threads.observe(self._batch.n_tokens, time.perf_counter() - began)
        due = failed + kept
        for item in plan:
            state, cache = state_of(item.seq), self._slots[item.seq.slot]
            cache.add_text(item.tokens, item.position)
            if item.prefill:
                state.prefilled += len(item.tokens)
            if state.logits_index >= 0:
                if item.prefill:  # the prompt's end: kept for a later request of the same prompt
                    cache.remember(logits_row(self._ctx, state.logits_index, self.vocab_size).copy())
                due.append(item.seq)
        return due

    def sample(self, seq: Sequence) -> TokenEvent:
        state = state_of(seq)
        assert state.sampler is not None
        row, state.kept_row = state.kept_row, None
        if row is None:
            token = state.sampler.sample(self._ctx, state.logits_index)
        else:
            token = state.sampler.sample_row(row)
        params = seq.params
        if not (params.logprobs or params.top_logprobs):
            return TokenEvent(token)
        if row is None:
            row = logits_row(self._ctx, state.logits_index, self.vocab_size)
        logprob, top = token_logprobs(row, token, params.top_logprobs)
        return TokenEvent(token, logprob, top)

    def accept_forced(self, seq: Sequence, token: int) -> bool:
        state = state_of(seq)
        state.kept_row = None  # forced tokens replace the choice it was kept for
        return state.sampler is None or state.sampler.accept_forced(token)

    # ----- after a sequence ----------------------------------------------------------------------

    def release(self, seq: Sequence, *, keep_cache: bool) -> None:
        cache = self._slots[seq.slot]
        if not keep_cache:
            self._lib.llama_memory_seq_rm(self._mem, seq.slot, -1, -1)
            cache.keep([], [])
        state = seq.state
        if isinstance(state, LlamaSequenceState):
            for run in state.runs:
                if run.embedding is not None:
                    run.embedding.cancel()  # a cancelled request's images are not encoded
            if state.sampler is not None:
                state.sampler.free()
                state.sampler = None
        cache.last_used = time.perf_counter()

    def close(self) -> None:
        lib = self._lib
        if self.vision is not None:
            self.vision.close()
        if self._images is not None:
            self._images.close()
        lib.llama_batch_free(self._batch)
        lib.llama_free(self._ctx)
        self.tokenizer.detach()
        lib.llama_model_free(self._model)


class LlamaCppBackend(EngineCore):
    """The engine core over a ``LlamaCppRunner``: what ``qwenkit.load(..., backend="llamacpp")`` gives."""

    runner: LlamaCppRunner
    runner_type = LlamaCppRunner
