"""Property-based API fuzzing: schemathesis generates valid and invalid requests for every operation in
the server's own /openapi.json, sends them over real HTTP, and checks each answer against the schema.

Acceptance: at least 1,000 cases in total, no response >= 500, and every response conforms to what the
schema declares (status code, content type, headers, body). Generation endpoints get ``max_tokens``
capped (an absent or large value becomes ``MAX_TOKENS``) so that the run stays short on a small CPU.
Both backends serve tiny random weights (llama.cpp a GGUF converted from the tiny Qwen3): the contract
is the server's, and a real model would only spend minutes prefilling fuzzed prompts.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from _backends import TINY_SERVED, load_served
from _server_harness import LiveServer, live_server
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import CHECKS
from schemathesis.core.result import Ok

from qwenkit.engine.llm import LLM

MAX_TOKENS = 2
MAX_CHOICES = 2
GENERATING = frozenset({"/v1/chat/completions", "/v1/completions"})
TOKEN_FIELDS = ("max_tokens", "max_completion_tokens")
# Cases per operation and mode (generation is the slow part, so the token endpoints get more):
# 2 x (2 x 100) + 2 x (2 x 150) + 120 = 1,120; /health, /ready and /v1/models take no input, so they
# have one valid case each.
EXAMPLES = {"/v1/chat/completions": 100, "/v1/completions": 100, "/tokenize": 150, "/detokenize": 150}
DEFAULT_EXAMPLES = 120
MIN_TOTAL_CASES = 1000
MIN_POSITIVE_ACCEPTED = 0.9  # measured: 478 to 495 of 505-506 (the rest: UNSTATED_RULE_REFUSALS)
# Rules OpenAPI cannot state, because they relate two fields or a field and the model: a prompt longer
# than the context, a token limit over what the context leaves, tool_choice naming a tool not given;
# enable_thinking true with a response_format or a forced tool_choice on a Qwen3 template (either
# one forbids thinking there);
# or because the field is itself a language: response_format's JSON schema is any object in OpenAPI,
# and one the grammar converter cannot compile (``{"x": 1}``, ``{"not": {}}``) is refused with a 400.
# A schema-valid case refused by one of them is a correct refusal.
UNSTATED_RULE_REFUSALS = frozenset(
    {
        ("messages", "context_length_exceeded"),
        ("prompt", "context_length_exceeded"),
        ("max_tokens", None),
        ("max_completion_tokens", None),
        ("tool_choice.function.name", None),
        ("enable_thinking", None),
        ("response_format.json_schema.schema", None),
    }
)
CHECK_NAMES = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
)


@pytest.fixture(scope="module", params=TINY_SERVED)
def tiny_llm(request: pytest.FixtureRequest) -> Iterator[LLM]:
    llm = load_served(request, request.param, gguf="tiny_qwen3_gguf")
    yield llm
    llm.close()


@pytest.fixture(scope="module")
def server(tiny_llm: LLM) -> Iterator[LiveServer]:
    # A deep queue and no queue timeout: 503s here would only mean the fuzzer outran two slots.
    with live_server(tiny_llm, max_queue=256, queue_timeout=0) as srv:
        yield srv


def cap_generation(path: str, body: Any) -> None:
    """Keep generation short: a missing/null or large token limit becomes MAX_TOKENS, a large ``n``
    MAX_CHOICES. Invalid values (0, negative, wrong type) are left alone: negative cases stay negative."""
    if path not in GENERATING or not isinstance(body, dict):
        return
    choices = body.get("n")
    if isinstance(choices, int) and not isinstance(choices, bool) and choices > MAX_CHOICES:
        body["n"] = MAX_CHOICES
    given_any = False
    for field in TOKEN_FIELDS:
        value = body.get(field)
        if isinstance(value, int) and not isinstance(value, bool):
            given_any = True
            if value > MAX_TOKENS:
                body[field] = MAX_TOKENS
        elif field in body and value is not None:
            given_any = True  # an invalid type: the request must be refused before generating
    if not given_any:
        body["max_tokens"] = MAX_TOKENS


def refusal_kind(response: Any) -> tuple[int, str | None, str | None]:
    """(status, error.param, error.code) of a refused request, from the server's error body."""
    try:
        error = response.json()["error"]
        return response.status_code, error.get("param"), error.get("code")
    except (ValueError, KeyError, TypeError):
        return response.status_code, None, None


def _fuzz_operation(
    operation: Any, mode: GenerationMode, base_url: str, counts: Counter[int], refused: Counter[tuple]
) -> None:
    checks = [CHECKS.get_one(name) for name in CHECK_NAMES]

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES.get(operation.path, DEFAULT_EXAMPLES),
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any) -> None:
        cap_generation(operation.path, case.body)
        response = case.call(base_url=base_url, timeout=120)
        counts[response.status_code] += 1
        if mode is GenerationMode.POSITIVE:
            refused[refusal_kind(response) if response.status_code >= 400 else ()] += 1
        case.validate_response(response, checks=checks)

    run()


def _modes(operation: Any) -> tuple[GenerationMode, ...]:
    """Invalid cases need a body: a free-form string path parameter (the model id) has no invalid value."""
    if operation.body:
        return (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    return (GenerationMode.POSITIVE,)


@pytest.mark.slow
def test_every_operation_conforms_to_its_schema(server: LiveServer) -> None:
    schema = schemathesis.openapi.from_url(f"{server.base_url}/openapi.json")
    operations = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), f"the schema has an unusable operation: {result.err()}"
        operations.append(result.ok())
    paths = {op.path for op in operations}
    assert GENERATING | {"/health", "/v1/models", "/tokenize", "/detokenize"} <= paths
    counts: Counter[int] = Counter()
    refused: Counter[tuple] = Counter()  # () for an accepted positive case
    for operation in operations:
        for mode in _modes(operation):
            _fuzz_operation(operation, mode, server.base_url, counts, refused)
    total = sum(counts.values())
    assert total >= MIN_TOTAL_CASES, f"only {total} cases ran: {dict(counts)}"
    assert not [status for status in counts if status >= 500], dict(counts)
    assert counts[200] > 0 and sum(n for s, n in counts.items() if 400 <= s < 500) > 0, dict(counts)
    # The schema states the limits validation enforces, so what it calls valid is accepted unless a
    # rule it cannot state refuses it; and such cases stay a minority, so acceptance is what gets exercised.
    unexplained = {
        kind: n
        for kind, n in refused.items()
        if kind and (kind[0] != 400 or kind[1:] not in UNSTATED_RULE_REFUSALS)
    }
    assert not unexplained, f"schema-valid requests refused by no unstated rule: {dict(refused)}"
    assert refused[()] >= MIN_POSITIVE_ACCEPTED * sum(refused.values()), dict(refused)
