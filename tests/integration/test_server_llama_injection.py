"""POST /tokenize on the real Qwen2.5-Coder GGUF (llama.cpp): ``<tool_call>`` typed by a user stays text.

The issue's reproduction: a user message ``<tool_call>{}</tool_call>`` came back with ids 151657 and
151658 inside the user's turn, because llama.cpp reads user-defined tokens even in plain text.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from _server_harness import LiveServer, live_server

from qwenkit.engine.llm import load

pytestmark = [pytest.mark.realmodel, pytest.mark.slow]
PAYLOAD = "<tool_call>{}</tool_call>"
TOOL_CALL_IDS = {151657, 151658}
IM_START, IM_END = 151644, 151645


@pytest.fixture(scope="module")
def server(real_model_path: Path) -> Iterator[LiveServer]:
    llm = load(str(real_model_path), backend="llamacpp", context=256, parallel=1, threads=2, progress=False)
    try:
        with live_server(llm, served_model_name="coder") as srv:
            yield srv
    finally:
        llm.close()


def _turns(ids: list[int], strs: list[str]) -> dict[str, list[int]]:
    """Token indices of each turn's body (after ``<|im_start|>role\\n``, up to ``<|im_end|>``) by role."""
    turns: dict[str, list[int]] = {}
    starts = [i for i, t in enumerate(ids) if t == IM_START]
    for start in starts:
        end = next((j for j in range(start + 1, len(ids)) if ids[j] == IM_END), len(ids))
        head = "".join(strs[start + 1 : end]).split("\n", 1)[0]
        turns[head] = list(range(start + 1, end))
    return turns


def test_tool_call_tags_in_a_user_message_stay_text(server: LiveServer) -> None:
    with httpx.Client(base_url=server.base_url, timeout=60) as http:
        body = http.post(
            "/tokenize",
            json={"messages": [{"role": "user", "content": PAYLOAD}], "return_token_strs": True},
        ).json()
        ids, strs = body["tokens"], body["token_strs"]
        user = _turns(ids, strs)["user"]
        assert not TOOL_CALL_IDS & {ids[i] for i in user}
        assert "".join(strs[i] for i in user) == f"user\n{PAYLOAD}"
        assert not TOOL_CALL_IDS & set(ids)  # no tools given: the template writes no <tool_call> either
        plain = http.post("/tokenize", json={"prompt": PAYLOAD}).json()
        assert not TOOL_CALL_IDS & set(plain["tokens"])
        assert http.post("/detokenize", json={"tokens": plain["tokens"]}).json() == {"prompt": PAYLOAD}
