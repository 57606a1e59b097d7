"""Upstream providers through the guard, against a real fake-upstream server on loopback,
and the access controls (keys, rate limit, body size) on the HTTP layer."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from benchmarks import secret_corpus as corpus
from benchmarks.harness import silent_server
from fastapi.testclient import TestClient

from codespark.config import Settings, UpstreamSettings
from codespark.engine.engine import Engine
from codespark.engine.fake import FakeBackend
from codespark.engine.loader import Engines
from codespark.engine.upstream import Upstream
from codespark.errors import UpstreamUnavailable
from codespark.guard.auth import hash_key
from codespark.server.app import create_app
from tests.fake_upstream import FakeUpstream, running_upstream
from tests.helpers import free_port, sse_payloads

SECRETS = corpus.generate(per_format=2, seed=11)
PROMPT = "Review this config, keep every value as it is:\n" + "".join(p.text for p in SECRETS)


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    with running_upstream() as up:
        yield up


def _client(base_url: str, **settings: object) -> TestClient:
    engine = Engine(FakeBackend(default="local answer"))
    engines = Engines(routes={"spark": engine, "codex": engine}, aliases={})
    cfg = UpstreamSettings(name="gpu", base_url=base_url, model="qwen-7b", retries=1, connect_timeout_s=2)
    app = create_app(Settings(upstreams=[cfg], codex_upstream="gpu", **settings), engines)  # type: ignore[arg-type]
    return TestClient(app, base_url="http://localhost")


def _chat(client: TestClient, content: str, **extra: object) -> dict[str, Any]:
    r = client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": content}], **extra})
    assert r.status_code == 200, r.text
    return {"body": r.json() if not extra.get("stream") else r.text, "headers": r.headers}


def test_no_secret_reaches_the_upstream_and_the_answer_is_restored(upstream: FakeUpstream) -> None:
    with _client(upstream.base_url) as client:
        out = _chat(client, PROMPT)
        metrics = client.get("/metrics").text
    sent = upstream.all_bytes().decode()
    leaked = [p.fmt for p in SECRETS if p.value in sent or json.dumps(p.value)[1:-1] in sent]
    assert leaked == []
    assert "<SECRET_1>" in sent and json.loads(upstream.received[0])["model"] == "qwen-7b"
    body = out["body"]
    assert isinstance(body, dict)
    assert body["choices"][0]["message"]["content"] == PROMPT  # the echo, with every value restored
    assert body["model"] == "upstream:gpu" and out["headers"]["x-codespark-engine"] == "upstream:gpu"
    assert body["usage"]["prompt_tokens"] == 11
    assert 'codespark_redactions_total{kind="SECRET"}' in metrics


def test_streaming_restores_placeholders_split_across_chunks(upstream: FakeUpstream) -> None:
    with _client(upstream.base_url) as client:
        out = _chat(client, PROMPT, stream=True)
    text = out["body"]
    assert isinstance(text, str)
    payloads = sse_payloads(text)
    assert payloads[-1] == "[DONE]"
    pieces = [
        p["choices"][0]["delta"].get("content", "") for p in payloads[:-1] if isinstance(p, dict) and p["choices"]
    ]
    assert "".join(pieces) == PROMPT
    assert not any("<SECRET_" in p for p in pieces)


def test_never_send_files_are_dropped_from_context_sent_upstream(upstream: FakeUpstream) -> None:
    env_value = "hunter2-but-longer"
    context = [
        {"filename": "app/.env", "text": f"LOCAL_ONLY_MARKER={env_value}\n"},
        {"filename": "app/settings.py", "text": "TIMEOUT = 30  # settings marker\n"},
    ]
    with _client(upstream.base_url) as client:
        _chat(client, "what is TIMEOUT?", context=context)
    sent = upstream.all_bytes().decode()
    assert "LOCAL_ONLY_MARKER" not in sent and env_value not in sent
    assert "settings marker" in sent and "app/settings.py" in sent


def test_falls_back_to_local_when_the_upstream_is_down() -> None:
    dead = f"http://127.0.0.1:{free_port()}/v1"
    with _client(dead) as client:
        first = _chat(client, "hello")
        second = _chat(client, "hello again")
        metrics = client.get("/metrics").text
    for out in (first, second):
        body = out["body"]
        assert isinstance(body, dict)
        assert body["choices"][0]["message"]["content"] == "local answer"
        assert out["headers"]["x-codespark-engine"] == "codex"
        assert "gpu" in out["headers"]["x-codespark-fallback"]
    assert "ConnectError" in first["headers"]["x-codespark-fallback"]
    assert "is down" in second["headers"]["x-codespark-fallback"]  # cooldown: not even tried
    assert 'codespark_upstream_fallbacks_total{upstream="gpu"} 1.0' in metrics


def test_an_upstream_refusal_is_a_clear_502(upstream: FakeUpstream) -> None:
    upstream.fail = 400
    with _client(upstream.base_url) as client:
        r = client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 502
    assert r.json()["error"]["type"] == "upstream_error" and "upstream says no" in r.json()["error"]["message"]


def test_retryable_upstream_errors_are_retried_then_fall_back(upstream: FakeUpstream) -> None:
    upstream.fail = 503
    with _client(upstream.base_url) as client:
        out = _chat(client, "hi")
    assert len(upstream.received) == 2  # retries=1
    assert "HTTP 503" in out["headers"]["x-codespark-fallback"]


# --------------------------------------------------------------------------- access control

KEY = "csk-test-key-0123456789"


@pytest.fixture
def guarded() -> Iterator[TestClient]:
    engine = Engine(FakeBackend(default="ok"))
    engines = Engines(routes={"spark": engine}, aliases={})
    settings = Settings(api_keys=[hash_key(KEY)], rate_limit_per_minute=3, max_request_bytes=2048)
    with TestClient(create_app(settings, engines), base_url="http://localhost") as client:
        yield client


def _complete(client: TestClient, key: str | None, prompt: str = "x") -> int:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return client.post("/v1/completions", json={"prompt": prompt, "max_tokens": 2}, headers=headers).status_code


def test_api_keys_are_required_except_for_health(guarded: TestClient) -> None:
    r = guarded.post("/v1/completions", json={"prompt": "x"})
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
    assert r.headers["www-authenticate"] == "Bearer"
    assert _complete(guarded, "csk-wrong") == 401
    assert _complete(guarded, KEY) == 200
    assert guarded.get("/health").status_code == 200
    assert guarded.get("/v1/models").status_code == 401


def test_rate_limit_answers_429_with_retry_after(guarded: TestClient) -> None:
    assert [_complete(guarded, KEY) for _ in range(3)] == [200, 200, 200]
    r = guarded.post("/v1/completions", json={"prompt": "x"}, headers={"Authorization": f"Bearer {KEY}"})
    assert r.status_code == 429 and r.json()["error"]["code"] == "rate_limit_exceeded"
    assert 1 <= int(r.headers["retry-after"]) <= 20


def test_oversized_bodies_get_413_declared_or_chunked(guarded: TestClient) -> None:
    big = "x" * 4000
    assert _complete(guarded, KEY, big) == 413

    def chunks() -> Iterator[bytes]:
        yield b'{"prompt": "'
        for _ in range(10):
            yield b"y" * 400
        yield b'"}'

    r = guarded.post(
        "/v1/completions",
        content=chunks(),
        headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"},
    )
    assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large"


def test_an_upstream_that_accepts_and_never_answers_falls_back_within_the_header_timeout() -> None:
    with silent_server() as port:
        started = time.monotonic()
        with _client(f"http://127.0.0.1:{port}/v1") as client:
            out = _chat(client, "hello")
        elapsed = time.monotonic() - started
    body = out["body"]
    assert isinstance(body, dict) and body["choices"][0]["message"]["content"] == "local answer"
    assert "gpu" in out["headers"]["x-codespark-fallback"]
    assert elapsed < 2 * 2 * 2 + 5  # connect_timeout_s=2 for the headers, one retry, backoff; not timeout_s=120


def test_retries_back_off_on_the_sleep_seam_then_give_up_with_a_cooldown() -> None:
    """httpx's MockTransport for the provider and the ``sleep=`` seam for the backoff: no real waiting."""
    calls: list[httpx.Request] = []
    slept: list[float] = []

    def provider(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(503, json={"error": {"message": "warming up"}})

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    cfg = UpstreamSettings(name="gpu", base_url="http://gpu.invalid/v1", model="m", retries=3, cooldown_s=30)
    upstream = Upstream(cfg, transport=httpx.MockTransport(provider), sleep=sleep)

    async def main() -> None:
        with pytest.raises(UpstreamUnavailable, match="HTTP 503: warming up"):
            await upstream.start("chat/completions", {"messages": [{"role": "user", "content": "hi"}]})
        await upstream.aclose()

    asyncio.run(main())
    assert len(calls) == 4 and slept == [0.25, 0.5, 1.0]  # exponential backoff between the 4 tries
    assert not upstream.available and 29 < upstream.cooldown_left() <= 30
    assert json.loads(calls[0].content)["model"] == "m"
