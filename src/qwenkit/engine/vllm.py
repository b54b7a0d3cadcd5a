"""The vLLM backend: vLLM's async engine (``AsyncLLM``, V1) in-process, behind qwenkit's ``Backend``.

qwenkit keeps the chat layer: it renders the prompt (injection-safe), hands vLLM token ids and reads
token ids back into its own parser, stop strings and thinking budget. vLLM does what it is best at:
paged KV, continuous batching, prefix caching, tensor / pipeline / data parallelism, LoRA per request
and structured output. vLLM's loop runs on one thread of ours; each generation is a task on it that
turns vLLM's outputs into ``TokenEvent``s on a ``QueuedHandle``, as the other backends' engine does.

Injected tokens (Qwen's early-stop text when the thinking budget is spent) cannot enter a running
vLLM request: the request is aborted and continued as a new one whose prompt is everything so far
plus the injected tokens; prefix caching makes that restart cost one short prefill.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qwenkit.chat.tokenizer import Tokenizer
from qwenkit.engine.handle import QueuedHandle
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
from qwenkit.engine.vllm_settings import CheckpointShape, VllmSettings
from qwenkit.engine.vllm_setup import engine_args, environment, lora_requests, worker_environment
from qwenkit.errors import ModelFormatError, OverloadedError, QwenkitError, UsageError

_FINISH = {"stop": FinishReason.STOP, "length": FinishReason.LENGTH, "abort": FinishReason.CANCELLED}


def vllm_sampling(params: SamplingParams, stop_ids: frozenset[int], max_tokens: int) -> Any:
    """qwenkit's sampling parameters as vLLM's. qwenkit decides stops (``ignore_eos``: vLLM must not
    add the generation config's end tokens) and reads token ids only (no detokenizing)."""
    from vllm.sampling_params import RequestOutputKind, StructuredOutputsParams
    from vllm.sampling_params import SamplingParams as VllmSamplingParams

    return VllmSamplingParams(
        n=1,
        temperature=params.temperature,
        top_p=params.top_p,
        top_k=params.top_k,  # 0: off, as in vLLM
        min_p=params.min_p,
        presence_penalty=params.presence_penalty,
        frequency_penalty=params.frequency_penalty,
        repetition_penalty=params.repetition_penalty,
        seed=params.seed,
        max_tokens=max_tokens,
        stop_token_ids=sorted(stop_ids),
        ignore_eos=True,
        logprobs=max(params.top_logprobs, 1) if params.logprobs else None,
        logit_bias=dict(params.logit_bias) or None,
        structured_outputs=StructuredOutputsParams(grammar=params.grammar) if params.grammar else None,
        output_kind=RequestOutputKind.DELTA,
        detokenize=False,
        skip_special_tokens=False,
    )


def token_event(token: int, logprobs: dict[int, Any] | None, top: int) -> TokenEvent:
    if not logprobs:
        return TokenEvent(token)
    chosen = logprobs.get(token)
    ranked = sorted(logprobs.items(), key=lambda kv: kv[1].rank or 0)[:top]
    return TokenEvent(
        token,
        logprob=float(chosen.logprob) if chosen is not None else None,
        top_logprobs=tuple((tid, float(lp.logprob)) for tid, lp in ranked),
    )


@dataclass
class _Generation:
    """One qwenkit generation: possibly several vLLM requests when tokens were injected."""

    prompt: list[int]
    params: SamplingParams
    handle: QueuedHandle
    stop_ids: frozenset[int]
    lora: Any  # vllm LoRARequest or None
    task: asyncio.Task[None] | None = None
    generated: int = 0


class VllmBackend:
    """A model served by vLLM (see the module docstring). Thread-safe ``submit``; one loop thread."""

    kind = BackendKind.VLLM
    capabilities = Capability.GRAMMAR | Capability.LOGPROBS | Capability.PREFIX_CACHE | Capability.ADAPTERS

    @classmethod
    def load(cls, path: str | Path, options: BackendOptions | None = None) -> VllmBackend:
        from qwenkit.chat.hf_tokenizer import HFTokenizer

        options = options or BackendOptions()
        model_dir = Path(path).expanduser()
        if not (model_dir / "config.json").is_file():
            raise ModelFormatError(
                f"the vllm backend serves a safetensors model directory (config.json and weights), "
                f"and {path} is not one"
            )
        if options.adapters:
            raise UsageError(
                "the vllm backend serves adapters by name (qwenkit serve --lora name=path); it does not "
                "merge them",
                param="adapters",
            )
        shape = CheckpointShape.read(model_dir)
        settings = options.vllm or VllmSettings()
        tokenizer = HFTokenizer.from_dir(model_dir)
        return cls(
            engine_args(model_dir, options, settings, shape, tokenizer.vocab_size),
            tokenizer,
            options,
            lora_requests(options.lora),
            worker_environment(settings),
        )

    def __init__(
        self, args: Any, tokenizer: Tokenizer, options: BackendOptions, loras: dict[str, Any],
        workers_env: dict[str, str] | None = None,
    ) -> None:
        self.tokenizer = tokenizer
        self.context_length = int(args.max_model_len)
        self._vocab_size = tokenizer.vocab_size
        self._loras = loras
        self._limit = options.parallel + options.max_queue
        self._live: dict[str, _Generation] = {}
        self._ids = itertools.count()
        self._closed = False
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="qwenkit-vllm", daemon=True)
        self._thread.start()
        try:
            with environment(workers_env or {}):
                self._engine = asyncio.run_coroutine_threadsafe(self._start(args), self._loop).result()
        except BaseException:
            self._stop_loop()
            raise

    async def _start(self, args: Any) -> Any:
        from vllm.v1.engine.async_llm import AsyncLLM

        try:
            return AsyncLLM.from_engine_args(args)
        except (ValueError, RuntimeError) as exc:  # vLLM's own checks, after ours
            raise QwenkitError(f"vLLM could not start: {exc}") from exc

    # ----- caller side -----------------------------------------------------------------------

    def submit(
        self, prompt_ids: Sequence[int], params: SamplingParams, images: Sequence[Any] = ()
    ) -> QueuedHandle:
        """Start one generation; bad input raises here, never later."""
        if self._closed:
            raise UsageError("this backend has been closed")
        if images:  # this backend declares no Capability.IMAGES: the chat layer refuses images first
            raise UsageError("the vLLM backend does not take images here", param="messages")
        prompt = check_prompt(prompt_ids, self._vocab_size, self.context_length)
        check_logit_bias(params.logit_bias, self._vocab_size)
        lora = None
        if params.adapter is not None:
            lora = self._loras.get(params.adapter)
            if lora is None:
                raise UsageError(f"no adapter named {params.adapter!r} is served", param="model")
        if len(self._live) >= self._limit:
            raise OverloadedError(f"server busy: {len(self._live)} generations running or waiting")
        request_id = f"qk-{next(self._ids)}"
        handle = QueuedHandle(
            vocab_size=self._vocab_size,
            on_cancel=lambda: self._call_soon(self._cancel, request_id),
            reasoning_budget=params.reasoning_budget,
        )
        handle.timings.prompt_tokens = len(prompt)
        eos = frozenset() if params.ignore_eos else self.tokenizer.eos_token_ids
        gen = _Generation(prompt, params, handle, params.stop_token_ids | eos, lora)
        self._live[request_id] = gen
        self._loop.call_soon_threadsafe(self._begin, request_id, gen)
        return handle

    def _call_soon(self, callback: Any, *args: Any) -> None:
        """Run ``callback`` on vLLM's loop thread (a no-op once the loop is gone)."""
        if not self._loop.is_closed():
            self._loop.call_soon_threadsafe(callback, *args)

    def running(self) -> int:
        """Generations not yet finished (vLLM's own counters say how many of them it holds)."""
        return len(self._live)

    def close(self) -> None:
        """Abort every open generation (CANCELLED) and shut vLLM down."""
        if self._closed:
            return
        self._closed = True
        for gen in list(self._live.values()):
            gen.handle.cancel()
        try:
            asyncio.run_coroutine_threadsafe(self._drain(), self._loop).result(timeout=60)
        finally:
            self._stop_loop()
            self._engine = None

    def _stop_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)

    def __enter__(self) -> VllmBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----- loop side ---------------------------------------------------------------------------

    async def _drain(self) -> None:
        """Wait for the cancelled generations, then stop vLLM from its own loop (its output task lives
        here: cancelling it from another thread would race with the engine's death)."""
        tasks = [g.task for g in self._live.values() if g.task is not None]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self._engine.shutdown()

    def _begin(self, request_id: str, gen: _Generation) -> None:
        gen.task = self._loop.create_task(self._run(request_id, gen))

    def _cancel(self, request_id: str) -> None:
        gen = self._live.get(request_id)
        if gen is not None and gen.task is not None:
            gen.task.cancel()

    async def _run(self, request_id: str, gen: _Generation) -> None:
        """Drive one generation to its end, whatever ends it."""
        try:
            reason = await self._generate(request_id, gen)
            gen.handle.finish(reason)
        except asyncio.CancelledError:
            gen.handle.finish(FinishReason.CANCELLED)
        except Exception as exc:  # only this generation fails
            error = exc if isinstance(exc, QwenkitError) else QwenkitError(f"the vllm engine failed: {exc}")
            error.__cause__ = exc
            gen.handle.fail(error)
        finally:
            self._live.pop(request_id, None)

    async def _generate(self, request_id: str, gen: _Generation) -> FinishReason:
        """vLLM requests until the generation ends; a new one after each injection."""
        tokens = list(gen.prompt)
        for part in itertools.count():
            vllm_id = f"{request_id}-{part}"
            reason = await self._request(vllm_id, gen, tokens)
            if reason is not None:
                return reason
            for token in gen.handle.take_injected():  # continue with the injected tokens as if sampled
                if self._emit(gen, tokens, TokenEvent(token, forced=True)):
                    return FinishReason.LENGTH
        raise AssertionError("unreachable")

    async def _request(self, vllm_id: str, gen: _Generation, tokens: list[int]) -> FinishReason | None:
        """One vLLM request over ``tokens``; None when it was cut short for injected tokens (at once
        after the token that queued them: the ones vLLM made past it are dropped, never pushed)."""
        from vllm.inputs import TokensPrompt

        if gen.handle.has_injected:  # a zero thinking budget queues the early stop before any token
            return None
        sampling = vllm_sampling(gen.params, gen.stop_ids, gen.params.max_tokens - gen.generated)
        top = gen.params.top_logprobs
        stream = self._engine.generate(
            TokensPrompt(prompt_token_ids=list(tokens)), sampling, vllm_id, lora_request=gen.lora
        )
        try:
            async for output in stream:
                if not gen.handle.timings.started:
                    gen.handle.timings.started = time.perf_counter()
                    gen.handle.timings.cached_prompt_tokens = int(output.num_cached_tokens or 0)
                completion = output.outputs[0]
                logprobs = completion.logprobs or [None] * len(completion.token_ids)
                for token, row in zip(completion.token_ids, logprobs, strict=True):
                    if token in gen.stop_ids:
                        return FinishReason.STOP
                    if self._emit(gen, tokens, token_event(token, row, top)):
                        return FinishReason.LENGTH
                    if gen.handle.has_injected:
                        return None
                if completion.finish_reason is not None:
                    return _FINISH.get(completion.finish_reason, FinishReason.STOP)
            return FinishReason.STOP
        finally:
            await stream.aclose()  # vLLM aborts a request whose stream closes before it finished

    def _emit(self, gen: _Generation, tokens: list[int], event: TokenEvent) -> bool:
        """Push one token; True if that reached max_tokens or filled the context."""
        gen.handle.push(event)
        gen.generated += 1
        tokens.append(event.token_id)
        return gen.generated >= gen.params.max_tokens or len(tokens) >= self.context_length
