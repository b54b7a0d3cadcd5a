"""The streamed chat chunks written directly for text deltas are byte for byte what the protocol's
pydantic models serialise to (the models stay the schema; the direct path only skips building them)."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from qwenkit.chat.events import ContentDelta, ReasoningDelta
from qwenkit.server.protocol_chat import ChatCompletionChunk
from qwenkit.server.serving_chat import TEXT_FIELDS, ChunkWriter, event_delta

# Any text a UTF-8 decoder can produce (its errors="replace" never yields a lone surrogate).
TEXT = st.text(alphabet=st.characters(exclude_categories=("Cs",)))
AWKWARD = ['"', "\\", "\n\r\t\b\f", "\x00\x01\x1f\x7f", "é 中 😀", "\u2028\u2029", "</script>", ""]


def _both(writer: ChunkWriter, index: int, event: ContentDelta | ReasoningDelta) -> tuple[str, str]:
    delta = event_delta(event)
    assert delta is not None
    return writer.text(index, TEXT_FIELDS[type(event)], event.text), writer.delta(index, delta)


@given(text=TEXT, index=st.integers(min_value=0, max_value=127), reasoning=st.booleans())
def test_a_text_chunk_is_the_models_serialisation(text: str, index: int, reasoning: bool) -> None:
    writer = ChunkWriter("chatcmpl-0123456789abcdef", "qwen3-0.6b")
    event = ReasoningDelta(text) if reasoning else ContentDelta(text)
    direct, via_models = _both(writer, index, event)
    assert direct == via_models


def test_awkward_text_ids_and_model_names_serialise_the_same() -> None:
    writer = ChunkWriter('chatcmpl-"quoted"\\', "qwén/ model\n")
    for text in AWKWARD:
        for event in (ContentDelta(text), ReasoningDelta(text)):
            direct, via_models = _both(writer, 2, event)
            assert direct == via_models
            assert direct.startswith("data: ") and direct.endswith("\n\n")
            chunk = ChatCompletionChunk.model_validate(json.loads(direct[len("data: ") :]))
            assert chunk.id == writer.cid and chunk.model == writer.model
            assert chunk.choices[0].index == 2
            fields = TEXT_FIELDS[type(event)]
            assert [getattr(chunk.choices[0].delta, field) for field in fields] == [text] * len(fields)


def test_every_text_event_type_has_its_fields() -> None:
    for event_type, fields in TEXT_FIELDS.items():
        delta = event_delta(event_type("x"))
        assert delta is not None
        assert set(delta.model_dump(exclude_none=True)) == set(fields)
