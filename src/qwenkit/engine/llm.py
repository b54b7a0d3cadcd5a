"""The Python API: ``qwenkit.load(ref)`` and the ``LLM`` it returns.

A generation climbs a short ladder (as in mlx-lm): backend ``submit`` yields TokenEvents;
``ChatStream`` turns them into typed events through one ``ChatRun``; ``chat``/``achat`` collect a
stream into a ``ChatResult``. Sync and async differ only in how they wait for the next event.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

from qwenkit.catalog.schema import SamplingDefaults, ToolFormat, Variant
from qwenkit.chat.answered import CallKey, call_key, call_opening_ids, just_answered
from qwenkit.chat.builders import encode_fim
from qwenkit.chat.encode import EncodedPrompt, encode_chat
from qwenkit.chat.events import Done, Event, ToolCall
from qwenkit.chat.messages import Message, normalize_messages
from qwenkit.chat.template import TemplateFamily, classify_template, resolve_template
from qwenkit.chat.tokenizer import Tokenizer
from qwenkit.chat.tool_parsers import ToolParser, format_for_template, make_tool_parser
from qwenkit.chat.vision import NO_IMAGES
from qwenkit.engine.chat_run import ChatResult, ChatRun, ThinkingControl
from qwenkit.engine.image_prompt import ImagePrompt, ImageRules, prepare_message_images, with_images
from qwenkit.engine.params import (
    THINKING_EARLY_STOP,
    ChatParams,
    ToolChoiceMode,
    fallback_defaults,
    resolve_sampling,
)
from qwenkit.engine.reasoning_budget import ReasoningBudget
from qwenkit.engine.registry import check_options, choose_backend
from qwenkit.engine.types import Backend, BackendOptions, GenerationHandle, SamplingParams
from qwenkit.errors import ContextLengthError

if TYPE_CHECKING:
    from qwenkit.media import PreparedImage


@dataclass(frozen=True)
class ModelFacts:
    """What the API knows about the loaded model beyond its backend."""

    path: Path | None
    variant: Variant | None
    template_family: TemplateFamily | None


Restart: TypeAlias = Callable[[], tuple[GenerationHandle, ChatRun]]
REPEAT_WARNING = (
    "the model repeated a tool call whose result it already had; the turn was generated again as an answer"
)


class ChatStream:
    """One running chat generation. Iterate it (sync or async) for events; then ``result()``.

    With ``answered`` (the calls whose results end the conversation) and ``restart``, a generation
    that opens by repeating one of those calls is dropped before any of it reaches the caller, and
    the turn runs again from ``restart`` (an answer, without tools): see ``chat/answered.py``.
    """

    def __init__(
        self,
        handle: GenerationHandle,
        run: ChatRun,
        *,
        answered: frozenset[CallKey] = frozenset(),
        restart: Restart | None = None,
    ) -> None:
        self.handle = handle
        self._run = run
        self._finished = False
        self._answered = answered
        self._restart = restart if answered else None
        self._emitted = False
        self._dropped_tokens = 0

    def _on_token(self, event: Any) -> list[Event]:
        step = self._run.on_token(event)
        if step.inject and self.handle.inject(step.inject) is False:
            self._run.early_stop_refused()  # the engine's thinking was already over, or ending
        if step.stop:
            self.handle.cancel()
        return step.events

    def _finish(self) -> list[Event]:
        if self._finished:
            return []
        self._finished = True
        return self._run.finish(self.handle.finish_reason)

    def _restarted(self, events: list[Event]) -> bool:
        """True when ``events`` repeat an answered call before anything was emitted: the turn restarts."""
        if self._restart is not None and not self._emitted:
            repeats = [e for e in events if isinstance(e, ToolCall)]
            if repeats and all(call_key(e.name, e.arguments) in self._answered for e in repeats):
                self.handle.cancel()
                self._dropped_tokens = self._run.completion_tokens
                self.handle, self._run = self._restart()
                self._restart, self._finished = None, False
                return True
        self._emitted = self._emitted or any(not isinstance(e, Done) for e in events)
        return False

    def __iter__(self) -> Iterator[Event]:
        while True:
            for token in self.handle:
                events = self._on_token(token)
                if self._restarted(events):
                    break
                yield from events
            else:
                events = self._finish()
                if not self._restarted(events):
                    yield from events
                    return

    async def __aiter__(self) -> AsyncIterator[Event]:
        while True:
            restarted = False
            async for token in self.handle:
                events = self._on_token(token)
                if restarted := self._restarted(events):
                    break
                for event in events:
                    yield event
            if restarted:
                continue
            events = self._finish()
            if not self._restarted(events):
                for event in events:
                    yield event
                return

    def cancel(self) -> None:
        """Stop the generation unless it already ended; its slot is freed within one engine step."""
        if not self._finished:
            self.handle.cancel()

    def _result(self) -> ChatResult:
        result = self._run.result(self.handle.timings)
        if not self._dropped_tokens:
            return result
        usage = replace(result.usage, completion_tokens=result.usage.completion_tokens + self._dropped_tokens)
        return replace(result, usage=usage, warnings=(*result.warnings, REPEAT_WARNING))

    def result(self) -> ChatResult:
        for _ in self:  # drains whatever the caller did not read
            pass
        return self._result()

    async def aresult(self) -> ChatResult:
        async for _ in self:
            pass
        return self._result()


class LLM:
    """A loaded Qwen model: chat, stream, batch and raw completion over one backend."""

    def __init__(self, backend: Backend, facts: ModelFacts, *, template: str | None = None) -> None:
        self.backend = backend
        self.facts = facts
        self._template = template
        self.image_rules = ImageRules()  # a server replaces these: no local files, its fetch policy

    @property
    def tokenizer(self) -> Tokenizer:
        return self.backend.tokenizer

    @property
    def context_length(self) -> int:
        return self.backend.context_length

    @property
    def template(self) -> str | None:
        """The chat template this model was loaded with (None: the model's own)."""
        return self._template

    @property
    def tool_format(self) -> ToolFormat:
        """How this model writes tool calls: the catalog's word, else what its chat template teaches."""
        if self.facts.variant is not None:
            return self.facts.variant.tool_format
        return format_for_template(resolve_template(self._template, self.tokenizer))

    def tool_parser(self, params: ChatParams) -> ToolParser:
        """A fresh tool parser for one generation with these params."""
        return make_tool_parser(self.tool_format, params.offered_tools, json_answers=params.json_tool_answers)

    # ----- preparing a request --------------------------------------------------------------

    def _defaults(self, thinking: bool | None) -> SamplingDefaults:
        if self.facts.variant is not None:
            return self.facts.variant.sampling_for(thinking)
        return fallback_defaults(self.facts.template_family, thinking)

    def _early_stop_ids(self) -> tuple[int, ...]:
        close = self.tokenizer.special_tokens.get("</think>")
        if close is None:
            return ()
        encode = self.tokenizer.encode_text
        return (*encode(THINKING_EARLY_STOP), close, *encode("\n\n"))

    def _sampling(self, params: ChatParams, prompt_len: int, thinking: bool | None) -> SamplingParams:
        room = self.context_length - prompt_len
        if room < 1:
            raise ContextLengthError(
                f"the prompt has {prompt_len} tokens and the context holds {self.context_length}",
                param="messages",
            )
        return resolve_sampling(
            params, self._defaults(thinking), max_tokens_limit=room, stop_token_ids=frozenset()
        )

    def encode(self, messages: Sequence[Any], params: ChatParams) -> EncodedPrompt:
        enable = params.enable_thinking
        if params.thinking_budget == 0:
            enable = False  # a zero budget is Qwen's non-thinking mode
        msgs = normalize_messages(messages)
        prepared = self.prepare_images(msgs)
        encoded = encode_chat(
            msgs,
            self.tokenizer,
            tools=list(params.offered_tools) if params.offered_tools else None,
            enable_thinking=enable,
            continue_final_message=params.continue_final_message,
            template=self._template,
            image_tokens=[image.tokens for image in prepared] if prepared else None,
            images_unavailable=self.images_unavailable,
        )
        return with_images(encoded, prepared)

    @property
    def images_unavailable(self) -> str:
        """Why this model reads no images here (when it does not)."""
        return str(getattr(self.backend, "images_unavailable", NO_IMAGES))

    def prepare_images(self, messages: Sequence[Message]) -> tuple[PreparedImage, ...]:
        """The messages' images loaded and resized for this model (none when it reads no images:
        ``encode_chat`` then refuses the parts by name)."""
        grid = getattr(self.backend, "vision_grid", None)
        return prepare_message_images(messages, grid, self.image_rules) if grid is not None else ()

    def start_chat(
        self,
        messages: Sequence[Any],
        params: ChatParams | None = None,
        *,
        encoded: EncodedPrompt | None = None,
        **kwargs: Any,
    ) -> ChatStream:
        """Start one generation. ``encoded`` (from ``encode`` with the same messages and params) saves
        re-rendering the prompt when a caller already has it, e.g. the server for ``n`` choices."""
        params = params if params is not None else ChatParams.from_kwargs(**kwargs)
        handle, run = self._begin(messages, params, encoded)
        if not params.offered_tools or params.tool_choice is not ToolChoiceMode.AUTO:
            return ChatStream(handle, run)
        answered = just_answered(normalize_messages(messages))
        answer = self._answer(params)
        return ChatStream(handle, run, answered=answered, restart=lambda: self._begin(messages, answer))

    def _answer(self, params: ChatParams) -> ChatParams:
        """``params`` for a turn that must answer in words: no tools, no call openings."""
        bias = {**(params.sampling.logit_bias or {}), **call_opening_ids(self.tokenizer)}
        sampling = params.sampling.model_copy(update={"logit_bias": bias})
        return replace(params, sampling=sampling, tool_choice=ToolChoiceMode.NONE)

    def _begin(
        self, messages: Sequence[Any], params: ChatParams, encoded: EncodedPrompt | None = None
    ) -> tuple[GenerationHandle, ChatRun]:
        encoded = encoded if encoded is not None else self.encode(messages, params)
        sampling = self._sampling(params, len(encoded.ids), encoded.thinking)
        thinking = ThinkingControl(
            early_stop_ids=self._early_stop_ids() if encoded.thinking else (),
            budget=params.thinking_budget,
            loop_guard=params.thinking_loop_guard,
        )
        if thinking.early_stop_ids and (params.thinking_budget is not None or params.thinking_loop_guard):
            budget = ReasoningBudget(
                budget=params.thinking_budget,
                early_stop_ids=thinking.early_stop_ids,
                open_id=self.tokenizer.special_tokens.get("<think>"),
                close_id=self.tokenizer.special_tokens["</think>"],
                starts_in_reasoning=encoded.opens_reasoning,
            )
            sampling = replace(sampling, reasoning_budget=budget)
        warnings = tuple(encoded.warnings)
        wants_control = params.thinking_budget or params.thinking_loop_guard
        if wants_control and not thinking.early_stop_ids:
            warnings += ("thinking_budget and thinking_loop_guard are ignored: this prompt does not think",)
        run = ChatRun(
            self.tokenizer,
            prompt_tokens=len(encoded.ids),
            starts_in_reasoning=encoded.opens_reasoning,
            tool_parser=self.tool_parser(params),
            stops=params.stop,
            thinking=thinking,
            want_logprobs=params.logprobs,
            warnings=warnings,
        )
        if isinstance(encoded, ImagePrompt):
            return self.backend.submit(encoded.ids, sampling, encoded.prepared), run
        return self.backend.submit(encoded.ids, sampling), run

    # ----- the ladder's public rungs ----------------------------------------------------------

    def stream_chat(self, messages: Sequence[Any], **params: Any) -> Iterator[Event]:
        stream = self.start_chat(messages, **params)
        try:
            yield from stream
        finally:
            stream.cancel()  # a consumer that stops early frees the slot

    def chat(self, messages: Sequence[Any], **params: Any) -> ChatResult:
        return self.start_chat(messages, **params).result()

    async def astream_chat(self, messages: Sequence[Any], **params: Any) -> AsyncIterator[Event]:
        stream = self.start_chat(messages, **params)
        try:
            async for event in stream:
                yield event
        finally:
            stream.cancel()

    async def achat(self, messages: Sequence[Any], **params: Any) -> ChatResult:
        return await self.start_chat(messages, **params).aresult()

    def chat_batch(self, conversations: Sequence[Sequence[Any]], **params: Any) -> list[ChatResult]:
        """All conversations run at once (continuous batching); results in input order."""
        streams = [self.start_chat(c, **params) for c in conversations]
        return [s.result() for s in streams]

    def start_complete(
        self, prompt: str, suffix: str | None = None, params: ChatParams | None = None, **kwargs: Any
    ) -> ChatStream:
        """Raw completion as a stream; with ``suffix``, Qwen-Coder fill-in-the-middle.

        Prompt text stays plain text: special-token look-alikes in it are never control tokens.
        """
        params = params if params is not None else ChatParams.from_kwargs(**kwargs)
        tok = self.tokenizer
        fim = suffix is not None and bool(prompt or suffix)  # nothing on either side: a plain start
        ids = encode_fim(prompt, suffix, tok) if fim and suffix is not None else tok.encode_text(prompt)
        if not ids:
            ids = [min(tok.eos_token_ids)]  # an empty prompt: start from end-of-text, as a new document
        sampling = self._sampling(params, len(ids), None)
        run = ChatRun(
            tok,
            prompt_tokens=len(ids),
            starts_in_reasoning=False,
            stops=params.stop,
            want_logprobs=params.logprobs,
        )
        return ChatStream(self.backend.submit(ids, sampling), run)

    def complete(self, prompt: str, suffix: str | None = None, **params: Any) -> ChatResult:
        return self.start_complete(prompt, suffix, **params).result()

    def close(self) -> None:
        self.backend.close()

    def __enter__(self) -> LLM:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def load(
    ref: str | None = None,
    *,
    backend: str = "auto",
    context: int = 4096,
    threads: int | None = None,
    parallel: int = 4,
    template: str | None = None,
    progress: bool = True,
    **options: Any,
) -> LLM:
    """Resolve ``ref`` (default model when None), fetch it if needed, and load it on a backend."""
    from qwenkit.models import DEFAULT_MODEL, ensure_local, resolve

    local = ensure_local(resolve(ref or DEFAULT_MODEL), progress=progress)
    entry = choose_backend(backend, local.format)
    opts = BackendOptions(context=context, threads=threads, parallel=parallel, **options)
    check_options(entry, opts)
    loaded = entry.loader()(local.path, opts)
    return LLM(loaded, facts_for(loaded.tokenizer, local.path, local.variant), template=template)


def facts_for(tokenizer: Tokenizer, path: Path | None, variant: Variant | None) -> ModelFacts:
    family = classify_template(tokenizer.chat_template)
    if family is None and "<think>" in tokenizer.special_tokens:
        family = TemplateFamily.QWEN3
    return ModelFacts(path=path, variant=variant, template_family=family)


__all__ = ["LLM", "ChatStream", "ModelFacts", "load"]
