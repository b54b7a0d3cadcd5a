"""The streamed completion chunks written directly for text are byte for byte what the protocol's
pydantic models serialise to (the models stay the schema; the direct path only skips building them)."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from qwenkit.server.protocol_completions import Completion
from qwenkit.server.serving_completions import CompletionChunkWriter

# Any text a UTF-8 decoder can produce (its errors="replace" never yields a lone surrogate).
TEXT = st.text(alphabet=st.characters(exclude_categories=("Cs",)))
AWKWARD = ['"', "\\", "\n\r\t\b\f", "\x00\x01\x1f\x7f", "é 中 😀", "\u2028\u2029", "</script>", ""]


@given(text=TEXT, index=st.integers(min_value=0, max_value=127))
def test_a_text_chunk_is_the_models_serialisation(text: str, index: int) -> None:
    writer = CompletionChunkWriter("cmpl-0123456789abcdef", "qwen2.5-coder-0.5b-instruct")
    assert writer.text(index, text) == writer.chunk(index, text)


def test_awkward_text_ids_and_model_names_serialise_the_same() -> None:
    writer = CompletionChunkWriter('cmpl-"quoted"\\', "qwén/ model\n")
    for text in AWKWARD:
        direct = writer.text(3, text)
        assert direct == writer.chunk(3, text)
        assert direct.startswith("data: ") and direct.endswith("\n\n")
        chunk = Completion.model_validate(json.loads(direct[len("data: ") :]))
        assert (chunk.id, chunk.model, chunk.object) == (writer.cid, writer.model, "text_completion")
        assert [(c.index, c.text, c.finish_reason) for c in chunk.choices] == [(3, text, None)]


def test_the_finishing_chunk_names_its_reason() -> None:
    writer = CompletionChunkWriter("cmpl-x", "m")
    body = json.loads(writer.chunk(0, "", "length")[len("data: ") :])
    assert body["choices"] == [{"index": 0, "text": "", "finish_reason": "length"}]
