"""API keys: loading from flags/env/file, constant-time matching, header parsing, redaction."""

from __future__ import annotations

import hmac
import logging
from pathlib import Path

import pytest

from qwenkit.errors import AuthenticationError, UsageError
from qwenkit.server import auth
from qwenkit.server.auth import ApiKey, KeyRing, RedactingFilter, load_api_keys, redact


def test_flag_env_and_file_keys_are_all_loaded_in_order(tmp_path: Path) -> None:
    key_file = tmp_path / "keys.txt"
    key_file.write_text("# team keys\n\nci:sk-ci-123\n   # indented comment\nsk-file-bare\n")
    ring = load_api_keys(["alice:sk-alice", "sk-flag-bare"], "bob:sk-bob, sk-env-bare", key_file)
    assert [(k.name, k.secret) for k in ring] == [
        ("alice", "sk-alice"),
        ("key-1", "sk-flag-bare"),
        ("bob", "sk-bob"),
        ("key-2", "sk-env-bare"),
        ("ci", "sk-ci-123"),
        ("key-3", "sk-file-bare"),
    ]
    assert ring.enabled and len(ring) == 6


def test_env_value_may_be_a_json_list_and_secrets_may_contain_colons() -> None:
    ring = load_api_keys([], '["svc:abc:def", "plain"]', None)
    assert [(k.name, k.secret) for k in ring] == [("svc", "abc:def"), ("key-1", "plain")]


def test_generated_names_skip_names_that_are_taken() -> None:
    ring = load_api_keys(["key-1:sk-explicit", "sk-bare"])
    assert ring.names == ("key-1", "key-2")


def test_no_keys_means_authentication_is_off() -> None:
    ring = load_api_keys([], None, None)
    assert not ring.enabled and ring.names == ()


@pytest.mark.parametrize(
    ("flags", "needle"),
    [
        (["a:sk-1", "a:sk-2"], "used twice"),
        (["a:sk-same", "b:sk-same"], "configured twice"),
        (["bad name:sk-1"], "name before ':'"),
        (["a:"], "empty"),
        (["a:sk\tx"], "printable ASCII"),
    ],
)
def test_bad_key_configuration_is_a_usage_error_without_the_secret(flags: list[str], needle: str) -> None:
    with pytest.raises(UsageError) as info:
        load_api_keys(flags)
    assert needle in info.value.message
    assert "sk-same" not in info.value.message and "sk-2" not in info.value.message


def test_key_file_errors_name_the_line_not_the_secret(tmp_path: Path) -> None:
    key_file = tmp_path / "keys.txt"
    key_file.write_text("ok:sk-good\nno good:sk-hidden-value\n")
    with pytest.raises(UsageError) as info:
        load_api_keys([], None, key_file)
    assert f"{key_file}:2" in info.value.message
    assert "sk-hidden-value" not in str(info.value)


def test_missing_key_file_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="cannot read API key file"):
        load_api_keys([], None, tmp_path / "absent.txt")


@pytest.fixture
def ring() -> KeyRing:
    return KeyRing([ApiKey("alice", "sk-alice-secret"), ApiKey("bob", "sk-bob-secret")])


def test_bearer_and_x_api_key_both_authenticate(ring: KeyRing) -> None:
    assert ring.authenticate("Bearer sk-alice-secret").name == "alice"
    assert ring.authenticate("bearer   sk-bob-secret  ").name == "bob"
    assert ring.authenticate(None, "sk-bob-secret").name == "bob"


@pytest.mark.parametrize(
    ("authorization", "x_api_key", "needle"),
    [
        (None, None, "missing API key"),
        ("", "  ", "missing API key"),
        ("Basic c2stYWxpY2U=", None, "malformed Authorization"),
        ("Bearer", None, "malformed Authorization"),
        ("Bearer sk-alice-secretX", None, "invalid API key"),
        ("Bearer sk-alice", None, "invalid API key"),
        (None, "sk-nobody", "invalid API key"),
    ],
)
def test_missing_malformed_or_unknown_keys_are_401(
    ring: KeyRing, authorization: str | None, x_api_key: str | None, needle: str
) -> None:
    with pytest.raises(AuthenticationError) as info:
        ring.authenticate(authorization, x_api_key)
    exc = info.value
    assert needle in exc.message
    assert exc.http_status == 401
    assert exc.to_openai()["error"]["type"] == "authentication_error"
    assert exc.to_openai()["error"]["code"] == "invalid_api_key"


def test_matching_compares_every_key_without_early_exit(
    ring: KeyRing, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[int, int]] = []
    real = hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        calls.append((len(a), len(b)))
        return real(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", counting)
    assert ring.match("sk-alice-secret") is not None  # the FIRST key matches...
    assert len(calls) == 2  # ...and the second is still compared
    calls.clear()
    assert ring.match("short") is None
    assert calls == [(32, 32), (32, 32)]  # fixed-length digests: length reveals nothing


def test_reprs_and_redaction_never_show_secrets(ring: KeyRing) -> None:
    assert "sk-alice-secret" not in repr(ring) and "alice" in repr(ring)
    assert "sk-alice-secret" not in repr(ApiKey("alice", "sk-alice-secret"))
    line = "headers: Authorization: Bearer sk-unknown-token x-api-key: sk-other; body mentions sk-bob-secret"
    cleaned = ring.redact(line)
    for secret in ("sk-unknown-token", "sk-other", "sk-bob-secret"):
        assert secret not in cleaned
    assert cleaned.count(auth.MASK) == 3
    assert redact("nothing to hide") == "nothing to hide"


def test_redacting_filter_cleans_messages_args_and_extras(ring: KeyRing) -> None:
    record = logging.LogRecord("t", logging.INFO, __file__, 1, "got %s", ("sk-alice-secret",), None)
    record.header = "Bearer sk-bob-secret"  # type: ignore[attr-defined]
    assert RedactingFilter(ring).filter(record) is True
    assert record.getMessage() == f"got {auth.MASK}"
    assert record.header == f"Bearer {auth.MASK}"  # type: ignore[attr-defined]


class _Request:
    def __init__(self, path: str, headers: dict[str, str]) -> None:
        self.url = type("U", (), {"path": path})()
        self.scope = {
            "type": "http",
            "path": path,
            "headers": [(k.encode(), v.encode()) for k, v in headers.items()],
        }


def test_the_app_redacts_api_keys_in_its_log_lines(capsys: pytest.CaptureFixture[str]) -> None:
    from qwenkit.server.app import create_app
    from qwenkit.server.logs import SERVER_LOGGERS, configure_logging
    from qwenkit.server.settings import ServerSettings

    loggers = [logging.getLogger(name) for name in SERVER_LOGGERS]
    saved = [(lg.handlers, lg.level, lg.propagate) for lg in loggers]
    try:
        configure_logging("info")
        create_app(ServerSettings(api_keys=["alice:sk-alice-log-secret"]))
        logging.getLogger("qwenkit.server").warning("got Bearer sk-alice-log-secret, sk-alice-log-secret")
        err = capsys.readouterr().err
        assert "got Bearer" in err and "sk-alice-log-secret" not in err
    finally:
        for lg, (handlers, level, propagate) in zip(loggers, saved, strict=True):
            lg.handlers, lg.propagate = handlers, propagate
            lg.setLevel(level)
