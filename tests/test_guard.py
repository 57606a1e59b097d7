"""The privacy guard: detectors, reversible redaction, never-send, log redaction, keys and rate limits."""

from __future__ import annotations

import logging
import sysconfig
from pathlib import Path

import pytest
from benchmarks import secret_corpus as corpus

from codespark.engine.fake import FakeBackend
from codespark.engine.session import SessionCache
from codespark.errors import ConfigError
from codespark.guard.auth import KeyChecker, RateLimiter, check_exposure, hash_key, new_key
from codespark.guard.detectors import luhn_valid, scan
from codespark.guard.ignore import NeverSend
from codespark.guard.redactor import Redactor
from codespark.guard.retention import RedactingFilter

PLANTED = corpus.generate(per_format=20, seed=7)


@pytest.mark.parametrize("fmt", corpus.formats())
def test_every_planted_value_of_every_format_is_redacted(fmt: str) -> None:
    for planted in (p for p in PLANTED if p.fmt == fmt):
        redactor = Redactor()
        out = redactor.redact(planted.text)
        assert planted.value not in out, planted.text
        assert redactor.restore(out) == planted.text


@pytest.mark.parametrize(
    "module",
    ["functools.py", "shutil.py", "typing.py", "zipfile.py", "urllib/parse.py", "ipaddress.py", "configparser.py"],
)
def test_real_code_is_left_alone(module: str) -> None:
    text = (Path(sysconfig.get_paths()["stdlib"]) / module).read_text()
    assert [(f.kind, text[f.start : f.end]) for f in scan(text)] == []


def test_near_misses_are_not_redacted() -> None:
    text = (
        "version = '3.11.2.1'\n"
        "card = '4111 1111 1111 1112'\n"  # fails the Luhn check
        "token_type = 'bearer'\n"
        "password = getpass.getpass()\n"
        "api_key = os.environ['API_KEY']\n"
        "ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789'\n"
        "host = '127.0.0.1'  # and 192.0.2.10, a documentation address\n"
        "mail = 'someone@example.com'\n"
        'SENSITIVE_HEADERS = {"authorization", "proxy-authorization"}\n'  # header names, not a credential
        "auth = request.headers.get('Authorization')\n"
    )
    assert scan(text) == []
    assert not luhn_valid("4111111111111112") and luhn_valid("4111111111111111")


def test_same_value_same_placeholder_and_kinds_named_only_for_pii() -> None:
    redactor = Redactor()
    key = "ghp_" + "a1B2" * 9
    out = redactor.redact(f"a = '{key}'\nb = '{key}'\nmail = 'li.wu@acme-corp.io'\n")
    assert out == "a = '<SECRET_1>'\nb = '<SECRET_1>'\nmail = '<EMAIL_1>'\n"
    assert redactor.count == 2 and redactor.kinds() == {"SECRET": 1, "EMAIL": 1}


def test_placeholders_never_reuse_text_the_user_wrote() -> None:
    redactor = Redactor()
    out = redactor.redact("literal <SECRET_1> here, and ghp_" + "x9Y8" * 9)
    assert out.startswith("literal <SECRET_1> here, and <SECRET_2>")
    assert redactor.restore(out).count("<SECRET_1>") == 1


def test_stream_restorer_restores_placeholders_split_anywhere() -> None:
    original = "key sk_live_" + "Ab3" * 8 + " and sk_live_" + "Zy9" * 8 + " end <SECRET is not one"
    redactor = Redactor()
    redacted = redactor.redact(original)
    assert "<SECRET_2>" in redacted
    for size in (1, 2, 3, 5, 7):
        restorer = redactor.stream()
        pieces = [restorer.feed(redacted[i : i + size]) for i in range(0, len(redacted), size)]
        assert "".join(pieces) + restorer.flush() == original
        assert not any("<SECRET_" in p and ">" in p for p in pieces)


def test_never_send_globs_and_codesparkignore(tmp_path: Path) -> None:
    (tmp_path / ".codesparkignore").write_text("# comment\nsecrets/\n*.sqlite\n")
    never = NeverSend.load([".env", "*.pem"], tmp_path)
    assert [never.blocks(f) for f in (".env", "app/.env", "certs/server.pem", "secrets/a.txt", "db.sqlite")] == [
        True
    ] * 5
    assert not never.blocks("src/app.py") and not never.blocks("docs/env.md")


def test_log_lines_are_redacted_before_any_handler_writes_them() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "connecting with %s", ("ghp_" + "Q1w2" * 9,), None)
    assert RedactingFilter().filter(record)
    assert record.getMessage() == "connecting with <GITHUB_TOKEN>"


def test_api_keys_are_checked_against_hashes() -> None:
    key = new_key()
    checker = KeyChecker([hash_key(new_key()), hash_key(key)])
    assert checker.identify(key) == hash_key(key)
    assert checker.identify("csk-wrong") is None and checker.identify(None) is None


def test_rate_limiter_refills_over_time() -> None:
    now = [0.0]
    limiter = RateLimiter(2, clock=lambda: now[0])
    assert limiter.acquire("k") == 0 and limiter.acquire("k") == 0
    wait = limiter.acquire("k")
    assert wait == pytest.approx(30.0)
    assert limiter.acquire("other") == 0
    now[0] = 30.0
    assert limiter.acquire("k") == 0


def test_binding_beyond_loopback_needs_a_key() -> None:
    check_exposure("127.0.0.1", [])
    check_exposure("localhost", [])
    check_exposure("0.0.0.0", [hash_key("k")])
    with pytest.raises(ConfigError, match="codespark keys new"):
        check_exposure("0.0.0.0", [])


def test_idle_sessions_are_dropped_from_ram_after_the_ttl() -> None:
    now = [0.0]
    backend = FakeBackend()
    cache = SessionCache(backend, budget_bytes=10**9, clock=lambda: now[0])
    cache.activate("a")
    backend.restore(backend.snapshot().__class__([1, 2, 3], None, 3))
    cache.activate("b")  # parks a
    now[0] = 100.0
    cache.activate("b")
    assert cache.expire(50.0) == 1 and cache.sessions() == ["b"] and cache.parked_bytes == 0
    now[0] = 200.0
    assert cache.expire(50.0) == 1 and cache.live is None and backend.snapshot().tokens == []
