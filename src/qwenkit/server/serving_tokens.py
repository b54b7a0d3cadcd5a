"""POST /tokenize and /detokenize in vLLM's shapes.

/tokenize with ``messages`` goes through the same injection-safe ``encode_chat`` as generation, so the
count it reports is the count a chat request would use; with ``prompt`` it is plain text encoding.
"""

from __future__ import annotations

import anyio.to_thread
from fastapi import APIRouter, Request

from qwenkit.chat.encode import encode_chat
from qwenkit.chat.messages import normalize_messages
from qwenkit.chat.tokenizer import Tokenizer
from qwenkit.errors import UsageError
from qwenkit.server.protocol_chat import TokenizeRequest
from qwenkit.server.protocol_common import DetokenizeRequest, DetokenizeResponse, TokenizeResponse
from qwenkit.server.serving_chat import ERRORS
from qwenkit.server.serving_common import check_model, server_state

router = APIRouter()


def _token_strs(tokenizer: Tokenizer, ids: list[int]) -> list[str]:
    return [tokenizer.token_bytes(t).decode("utf-8", errors="replace") for t in ids]


@router.post("/tokenize", response_model=TokenizeResponse, responses=ERRORS)
async def tokenize(body: TokenizeRequest, request: Request) -> TokenizeResponse:
    state = server_state(request)
    check_model(state, body.model)
    llm = state.llm
    if (body.prompt is None) == (body.messages is None):
        raise UsageError("give exactly one of 'prompt' or 'messages'", param="prompt")
    image_tokens: list[int] | None = None
    if body.messages is not None:
        messages = normalize_messages(body.messages)
        if any(m.images for m in messages):  # decoding and resizing stay off the event loop
            prepared = await anyio.to_thread.run_sync(llm.prepare_images, messages)
            image_tokens = [image.tokens for image in prepared]
        encoded = encode_chat(
            messages,
            llm.tokenizer,
            tools=None if body.tools is None else [t.model_dump(exclude_none=True) for t in body.tools],
            enable_thinking=body.enable_thinking,
            add_generation_prompt=body.add_generation_prompt,
            continue_final_message=body.continue_final_message,
            template=llm.template,  # the template the model was loaded with
            image_tokens=image_tokens or None,
            images_unavailable=llm.images_unavailable,
        )
        ids = list(encoded.ids)
    else:
        ids = llm.tokenizer.encode_text(body.prompt or "")
    strs = _token_strs(llm.tokenizer, ids) if body.return_token_strs else None
    return TokenizeResponse(
        count=len(ids), max_model_len=llm.context_length, tokens=ids, token_strs=strs,
        image_tokens=image_tokens,
    )


@router.post("/detokenize", response_model=DetokenizeResponse, responses=ERRORS)
async def detokenize(body: DetokenizeRequest, request: Request) -> DetokenizeResponse:
    state = server_state(request)
    check_model(state, body.model)
    tokenizer = state.llm.tokenizer
    size = tokenizer.vocab_size
    bad = next((i for i, t in enumerate(body.tokens) if not 0 <= t < size), None)
    if bad is not None:
        raise UsageError(
            f"tokens[{bad}] = {body.tokens[bad]} is not a token id (the vocabulary has {size})",
            param=f"tokens[{bad}]",
        )
    return DetokenizeResponse(prompt=tokenizer.decode(body.tokens))
