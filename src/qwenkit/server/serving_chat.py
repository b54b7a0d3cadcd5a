"""POST /v1/chat/completions: OpenAI's chat API over ``LLM.start_chat``, streamed or whole."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request

from qwenkit.chat.events import ContentDelta, Done, Event, ReasoningDelta, ToolCall
from qwenkit.chat.template import TemplateFamily
from qwenkit.engine.chat_run import ChatResult
from qwenkit.engine.params import ChatParams, NamedToolChoice, ToolChoice, ToolChoiceMode, stop_strings
from qwenkit.engine.sampling import SamplingOptions
from qwenkit.errors import UsageError
from qwenkit.server.logs import messages_text
from qwenkit.server.protocol_chat import (
    ChatChoice,
    ChatChunkChoice,
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChatDelta,
    ChatMessageOut,
    FunctionCall,
    FunctionCallDelta,
    ToolCallDelta,
    ToolCallOut,
)
from qwenkit.server.protocol_common import ErrorResponse
from qwenkit.server.serving_common import (
    GuardedStream,
    RequestRun,
    adapter_of,
    chat_logprobs,
    check_model,
    choice_seed,
    completion_id,
    encode_request,
    errors_as_events,
    now,
    refuse_template,
    server_state,
    usage_info,
)
from qwenkit.server.sse import DONE, sse_data
from qwenkit.server.structured import Constraint, plan_constraint

router = APIRouter()
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse} for code in (400, 401, 404, 413, 429, 500, 503, 504)
}


def _thinking(
    req: ChatCompletionRequest, constraint: Constraint, template_family: TemplateFamily | None
) -> bool | None:
    kwargs = req.chat_template_kwargs or {}
    enable = kwargs.get("enable_thinking")
    if enable is not None and not isinstance(enable, bool):
        raise UsageError(
            "chat_template_kwargs.enable_thinking must be a boolean", param="chat_template_kwargs"
        )
    if req.enable_thinking is not None:
        enable = req.enable_thinking
    if constraint.forbids_thinking and template_family is TemplateFamily.QWEN3:
        if enable is True:
            raise UsageError(
                "enable_thinking cannot be true with response_format or a forced tool_choice",
                param="enable_thinking",
            )
        return False
    return enable


def _tool_choice(req: ChatCompletionRequest) -> ToolChoice:
    """OpenAI's default is ``auto`` whenever tools are given."""
    choice = req.tool_choice
    if choice is None:
        return ToolChoiceMode.AUTO
    if isinstance(choice, str):
        return ToolChoiceMode(choice)
    return NamedToolChoice(choice.function.name)


def chat_params(
    req: ChatCompletionRequest, constraint: Constraint, template_family: TemplateFamily | None
) -> ChatParams:
    if req.top_logprobs and not req.logprobs:
        raise UsageError("top_logprobs needs logprobs set to true", param="top_logprobs")
    max_tokens = req.max_completion_tokens if req.max_completion_tokens is not None else req.max_tokens
    return ChatParams(
        sampling=SamplingOptions.of(req),
        max_tokens=max_tokens,
        stop=stop_strings(req.stop),
        ignore_eos=req.ignore_eos,
        enable_thinking=_thinking(req, constraint, template_family),
        thinking_budget=req.thinking_budget,
        tools=constraint.tools,
        tool_choice=_tool_choice(req) if constraint.tools else ToolChoiceMode.NONE,
        logprobs=req.logprobs,
        top_logprobs=req.top_logprobs or 0,
        grammar=constraint.grammar,
        continue_final_message=req.continue_final_message,
    )


def _message(result: ChatResult) -> ChatMessageOut:
    calls = [
        ToolCallOut(id=c.id, function=FunctionCall(name=c.name, arguments=c.arguments))
        for c in result.tool_calls
    ]
    reasoning = result.reasoning or None
    content = result.content if result.content or not calls else None
    return ChatMessageOut(
        content=content, reasoning_content=reasoning, reasoning=reasoning, tool_calls=calls or None
    )


def chat_completion(cid: str, model: str, results: list[ChatResult]) -> ChatCompletion:
    choices = [
        ChatChoice(
            index=i, message=_message(r), finish_reason=r.finish_reason, logprobs=chat_logprobs(r.logprobs)
        )
        for i, r in enumerate(results)
    ]
    return ChatCompletion(id=cid, created=now(), model=model, choices=choices, usage=usage_info(results))


def event_delta(event: Event) -> ChatDelta | None:
    if isinstance(event, ContentDelta):
        return ChatDelta(content=event.text)
    if isinstance(event, ReasoningDelta):
        return ChatDelta(reasoning_content=event.text, reasoning=event.text)
    if isinstance(event, ToolCall):
        fn = FunctionCallDelta(name=event.name, arguments=event.arguments)
        return ChatDelta(
            tool_calls=[ToolCallDelta(index=event.index, id=event.id, type="function", function=fn)]
        )
    return None


# The delta fields a text event fills, by event type: the chunks written for nearly every token.
TEXT_FIELDS: dict[type[Event], tuple[str, ...]] = {
    ContentDelta: ("content",),
    ReasoningDelta: ("reasoning_content", "reasoning"),
}


class ChunkWriter:
    """Serialises one request's chunks; every chunk shares the id, creation time and model."""

    def __init__(self, cid: str, model: str) -> None:
        self.cid, self.model, self.created = cid, model, now()
        empty = self.chunk([])  # 'data: {..."choices":[]}\n\n': the part every chunk starts with
        self._head = empty[: empty.rindex("[]}")] + "["

    def text(self, index: int, fields: tuple[str, ...], text: str) -> str:
        """A text delta (see TEXT_FIELDS) written directly: the same bytes as ``delta`` gives (tested),
        without building and serialising three pydantic models for every streamed token."""
        value = json.dumps(text, ensure_ascii=False)
        delta = ",".join(f'"{field}":{value}' for field in fields)
        return f'{self._head}{{"index":{index},"delta":{{{delta}}}}}]}}\n\n'

    def chunk(self, choices: list[ChatChunkChoice], usage: Any = None) -> str:
        body = ChatCompletionChunk(
            id=self.cid, created=self.created, model=self.model, choices=choices, usage=usage
        )
        return sse_data(body.model_dump_json(exclude_none=True))

    def delta(self, index: int, delta: ChatDelta, finish: str | None = None, logprobs: Any = None) -> str:
        return self.chunk(
            [ChatChunkChoice(index=index, delta=delta, finish_reason=finish, logprobs=logprobs)]
        )


async def _stream_body(
    run: RequestRun, writer: ChunkWriter, req: ChatCompletionRequest
) -> AsyncIterator[str]:
    for i in range(len(run.streams)):
        yield writer.delta(i, ChatDelta(role="assistant", content=""))
    finishes: dict[int, str] = {}
    async for index, event in run.events(watch_client=False):
        if isinstance(event, Done):
            finishes[index] = event.finish_reason
            continue
        if isinstance(event, ContentDelta | ReasoningDelta):
            yield writer.text(index, TEXT_FIELDS[type(event)], event.text)
            continue
        delta = event_delta(event)
        if delta is not None:
            yield writer.delta(index, delta)
    results = await run.finish_results()
    for i, result in enumerate(results):
        logprobs = chat_logprobs(result.logprobs)
        yield writer.delta(i, ChatDelta(), finishes.get(i, result.finish_reason), logprobs)
    if req.stream_options is not None and req.stream_options.include_usage:
        yield writer.chunk([], usage_info(results))
    yield DONE


@router.post(
    "/v1/chat/completions",
    response_model=ChatCompletion,
    responses={**ERRORS, 200: {"content": {"text/event-stream": {}}}},
)
async def create_chat_completion(body: ChatCompletionRequest, request: Request) -> Any:
    state = server_state(request)
    refuse_template(body, body.chat_template_kwargs)
    model = check_model(state, body.model)
    llm = state.llm
    constraint = plan_constraint(body, llm.backend)
    params = dataclasses.replace(
        chat_params(body, constraint, llm.facts.template_family), adapter=adapter_of(state, model)
    )
    encoded = await encode_request(llm, body.messages, params)  # once for all choices, before admission
    prompt_tokens = len(encoded.ids)
    room = max(0, llm.context_length - prompt_tokens)
    reserved = body.n * min(room, params.max_tokens or room)
    ticket = await state.admit(request, prompt_tokens, reserved, sequences=body.n)
    run = RequestRun(request, state, ticket, "chat")
    run.prompt_text = messages_text(body.messages)

    def make(i: int) -> Any:
        seeded = params.with_seed(choice_seed(body.seed, i))
        return llm.start_chat(body.messages, seeded, encoded=encoded)

    run.start(make, body.n)
    cid = completion_id("chatcmpl")
    if body.stream:
        events = _stream_body(run, ChunkWriter(cid, model), body)
        return GuardedStream(errors_as_events(run, events), run.close)
    return chat_completion(cid, model, await run.collect())
