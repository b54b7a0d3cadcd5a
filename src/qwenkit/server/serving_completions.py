"""POST /v1/completions: raw text completion; with ``suffix``, Qwen-Coder fill-in-the-middle.

Prompt text is always encoded as plain text (``encode_text``/``encode_fim``): special-token strings
inside a prompt stay text, so a completion request cannot forge chat or FIM markup either.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request

from qwenkit.chat.events import ContentDelta, Done, ReasoningDelta
from qwenkit.engine.chat_run import ChatResult, TokenLogprob
from qwenkit.engine.llm import LLM, ChatStream
from qwenkit.engine.params import ChatParams, stop_strings
from qwenkit.engine.sampling import SamplingOptions
from qwenkit.engine.types import check_logit_bias
from qwenkit.server.protocol_common import UsageInfo
from qwenkit.server.protocol_completions import (
    DEFAULT_COMPLETION_TOKENS,
    Completion,
    CompletionChoice,
    CompletionLogprobs,
    CompletionRequest,
)
from qwenkit.server.serving_chat import ERRORS
from qwenkit.server.serving_common import (
    GuardedStream,
    RequestRun,
    adapter_of,
    check_model,
    choice_seed,
    completion_id,
    errors_as_events,
    now,
    refuse_template,
    server_state,
    usage_info,
)
from qwenkit.server.sse import DONE, sse_data

router = APIRouter()


def start_completion(llm: LLM, prompt: str, suffix: str | None, params: ChatParams) -> ChatStream:
    """``LLM.complete`` as a stream, so the server can drive, time out and cancel it."""
    return llm.start_complete(prompt, suffix, params)


def _logprobs(entries: tuple[TokenLogprob, ...] | None, offset: int) -> CompletionLogprobs | None:
    if entries is None:
        return None
    offsets, pos = [], offset
    for e in entries:
        offsets.append(pos)
        pos += len(e.token)
    return CompletionLogprobs(
        tokens=[e.token for e in entries],
        token_logprobs=[e.logprob for e in entries],
        top_logprobs=[dict(e.top) for e in entries],
        text_offset=offsets,
    )


def _text(result: ChatResult) -> str:
    return result.reasoning + result.content  # raw completion: everything the model wrote


def _echoed(prompts: list[str], req: CompletionRequest, choice: int) -> str:
    """The prompt that choice ``choice`` starts with when ``echo`` is set ("" otherwise)."""
    return prompts[choice // req.n] if req.echo else ""


def _completion(
    cid: str, model: str, results: list[ChatResult], prompts: list[str], req: CompletionRequest
) -> Completion:
    choices = []
    for i, result in enumerate(results):
        prefix = _echoed(prompts, req, i)
        text = prefix + _text(result)
        lp = _logprobs(result.logprobs, len(prefix))
        choices.append(CompletionChoice(index=i, text=text, finish_reason=result.finish_reason, logprobs=lp))
    return Completion(
        id=cid, created=now(), model=model, choices=choices, usage=completion_usage(results, req.n)
    )


def completion_usage(results: list[ChatResult], n: int) -> UsageInfo:
    """Every prompt counts once, however many choices it has."""
    usage = usage_info(results)
    usage.prompt_tokens = sum(r.usage.prompt_tokens for r in results[::n])
    usage.total_tokens = usage.prompt_tokens + usage.completion_tokens
    return usage


class CompletionChunkWriter:
    """Serialises one streamed completion's chunks; every chunk shares the id, creation time and model."""

    def __init__(self, cid: str, model: str) -> None:
        self.cid, self.model, self.created = cid, model, now()
        empty = self.completion([])  # 'data: {..."choices":[]}\n\n': the part every chunk starts with
        self._head = empty[: empty.rindex("[]}")] + "["

    def text(self, index: int, text: str) -> str:
        """A text chunk, nearly every streamed token's, written directly: the same bytes as ``chunk``
        gives (tested), without building and serialising two pydantic models per token."""
        value = json.dumps(text, ensure_ascii=False)
        return f'{self._head}{{"index":{index},"text":{value}}}]}}\n\n'

    def chunk(
        self, index: int, text: str, finish: str | None = None, logprobs: CompletionLogprobs | None = None
    ) -> str:
        choice = CompletionChoice(index=index, text=text, finish_reason=finish, logprobs=logprobs)
        return self.completion([choice])

    def completion(self, choices: list[CompletionChoice], usage: UsageInfo | None = None) -> str:
        body = Completion(id=self.cid, created=self.created, model=self.model, choices=choices, usage=usage)
        return sse_data(body.model_dump_json(exclude_none=True))


async def _stream_body(
    run: RequestRun, writer: CompletionChunkWriter, req: CompletionRequest, prompts: list[str]
) -> AsyncIterator[str]:
    if req.echo:
        for i in range(len(run.streams)):
            yield writer.chunk(i, _echoed(prompts, req, i))
    async for index, event in run.events(watch_client=False):
        if isinstance(event, (ContentDelta, ReasoningDelta)) and event.text:
            yield writer.text(index, event.text)
        elif isinstance(event, Done):
            # As in a streamed chat: a choice's logprobs ride on its finishing chunk, whole (streamed
            # text pieces are not tokens: a stop string or a split character holds text back).
            result = await run.streams[index].aresult()  # already finished: no waiting
            logprobs = _logprobs(result.logprobs, len(_echoed(prompts, req, index)))
            yield writer.chunk(index, "", event.finish_reason, logprobs)
    results = await run.finish_results()
    if req.stream_options is not None and req.stream_options.include_usage:
        yield writer.completion([], completion_usage(results, req.n))
    yield DONE


@router.post(
    "/v1/completions",
    response_model=Completion,
    responses={**ERRORS, 200: {"content": {"text/event-stream": {}}}},
)
async def create_completion(body: CompletionRequest, request: Request) -> Any:
    state = server_state(request)
    refuse_template(body)
    model = check_model(state, body.model)
    prompts = [body.prompt] if isinstance(body.prompt, str) else list(body.prompt)
    want_lp = body.logprobs is not None
    max_tokens = body.max_tokens if body.max_tokens is not None else DEFAULT_COMPLETION_TOKENS
    params = ChatParams(
        sampling=SamplingOptions.of(body),
        max_tokens=max_tokens,
        stop=stop_strings(body.stop),
        ignore_eos=body.ignore_eos,
        logprobs=want_lp,
        top_logprobs=body.logprobs or 0,
        adapter=adapter_of(state, model),
    )
    check_logit_bias(params.sampling.bias_pairs(), state.llm.tokenizer.vocab_size)
    prompt_tokens = sum(len(state.llm.tokenizer.encode_text(p)) for p in prompts)
    room = max(0, state.llm.context_length - prompt_tokens)
    sequences = len(prompts) * body.n
    ticket = await state.admit(request, prompt_tokens, sequences * min(room, max_tokens), sequences=sequences)
    run = RequestRun(request, state, ticket, "completions")
    run.prompt_text = "\n".join(prompts) + ("" if body.suffix is None else f"\n[suffix]{body.suffix}")

    def make(i: int) -> ChatStream:
        seeded = params.with_seed(choice_seed(body.seed, i % body.n))
        return start_completion(state.llm, prompts[i // body.n], body.suffix, seeded)

    run.start(make, len(prompts) * body.n)
    cid = completion_id("cmpl")
    if body.stream:
        events = _stream_body(run, CompletionChunkWriter(cid, model), body, prompts)
        return GuardedStream(errors_as_events(run, events), run.close)
    return _completion(cid, model, await run.collect(), prompts, body)
