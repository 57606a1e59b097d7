"""Keystrokes on a FIM upstream (``[[upstreams]] fim``): each body format, the guard, the local stop rules,
and the fallbacks (down, refusing, too slow, pinned)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from codespark.config import FimKind, Settings, UpstreamSettings
from codespark.engine.engine import Engine
from codespark.engine.fake import FakeBackend
from codespark.engine.loader import Engines
from codespark.server.app import create_app
from tests.fake_upstream import FakeUpstream, running_upstream

SECRET = "AKIAIOSFODNN7EXAMPLE"
PREFIX = f'KEY = "{SECRET}"\n\ndef add(a, b):\n    return '


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    with running_upstream() as up:
        yield up


def _client(up: FakeUpstream, fim: FimKind, **settings: Any) -> TestClient:
    engine = Engine(FakeBackend(default="local"))
    engines = Engines(routes={"spark": engine, "codex": engine}, aliases={})
    cfg = UpstreamSettings(name="gpu", base_url=up.base_url, model="m", retries=0, connect_timeout_s=2, fim=fim)
    app = create_app(Settings(upstreams=[cfg], codex_upstream="gpu", **settings), engines)
    return TestClient(app, base_url="http://localhost")


def _complete(client: TestClient, **extra: Any) -> Any:
    body = {"prompt": PREFIX, "suffix": "\n\nprint(add(1, 2))\n", "max_tokens": 16, "temperature": 0, **extra}
    return client.post("/v1/completions", json=body)


def _sent(up: FakeUpstream) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(up.received[-1])
    return body


@pytest.mark.parametrize("kind", ["suffix", "qwen", "starcoder", "codellama", "deepseek"])
def test_completions_upstreams_get_their_format_and_never_the_secret(upstream: FakeUpstream, kind: FimKind) -> None:
    with _client(upstream, kind) as client:
        r = _complete(client)
    assert r.status_code == 200, r.text
    assert r.headers["X-Codespark-Engine"] == "upstream:gpu"
    assert r.json()["choices"][0]["text"] == "a + b"
    assert upstream.paths[-1] == "/v1/completions" and SECRET not in upstream.all_bytes().decode()
    sent = _sent(upstream)
    if kind == "suffix":
        assert sent["suffix"].startswith("\n\nprint(add") and sent["prompt"].endswith("return ")
    else:
        assert "suffix" not in sent and "print(add(1, 2))" in sent["prompt"] and sent["stop"]
    if kind == "qwen":
        assert sent["prompt"].startswith("<|fim_prefix|>KEY") and sent["prompt"].endswith("<|fim_middle|>")


def test_a_llama_server_upstream_gets_infill_with_redacted_context(upstream: FakeUpstream) -> None:
    with _client(upstream, "infill") as client:
        extra = [{"filename": "cfg.py", "text": f"TOKEN = '{SECRET}'\n"}]
        r = client.post("/infill", json={"input_prefix": PREFIX, "input_suffix": "\n", "input_extra": extra})
    assert r.status_code == 200, r.text
    assert r.json()["content"] == "a + b" and upstream.paths[-1] == "/infill"
    sent = _sent(upstream)
    assert sent["input_prefix"].endswith("return ") and sent["input_extra"][0]["filename"] == "cfg.py"
    assert SECRET not in upstream.all_bytes().decode()


def test_the_local_stop_rules_cut_an_upstream_answer(upstream: FakeUpstream) -> None:
    upstream.fim_answer = "a + b\nprint('the model went on')\n"
    with _client(upstream, "suffix") as client:
        r = _complete(client, suffix="\n")
    assert r.json()["choices"][0]["text"] == "a + b"  # the cursor line only: the code after it goes on


def test_a_down_upstream_falls_back_to_local(upstream: FakeUpstream) -> None:
    upstream.fail = 503
    with _client(upstream, "suffix") as client:
        r = _complete(client)
    assert r.status_code == 200 and r.json()["choices"][0]["text"] == "local"
    assert r.headers["X-Codespark-Engine"] in ("spark", "codex") and "gpu" in r.headers["X-Codespark-Fallback"]


def test_a_refusing_upstream_keeps_keystrokes_local_for_its_cooldown(upstream: FakeUpstream) -> None:
    upstream.fail = 400  # e.g. a provider without suffix support
    with _client(upstream, "suffix") as client:
        first, second = _complete(client), _complete(client, prompt="x = ")
        chat = client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi"}]})
    assert first.json()["choices"][0]["text"] == "local" and "refused" in first.headers["X-Codespark-Fallback"]
    assert second.json()["choices"][0]["text"] == "local" and len(upstream.received) == 2  # FIM once, then chat
    assert chat.status_code == 502  # chat still goes to the upstream, and says it refused


def test_a_slow_upstream_or_a_pinned_model_stays_local(upstream: FakeUpstream) -> None:
    with _client(upstream, "suffix") as client:
        assert _complete(client, model="spark").headers["X-Codespark-Engine"] == "spark"
        state = client.app.state.codespark  # type: ignore[attr-defined]
        state.router.upstream_fim_ms = 5000.0  # measured: over any keystroke budget
        assert _complete(client, max_latency_ms=300).headers["X-Codespark-Engine"] in ("spark", "codex")
    assert upstream.received == []


def test_without_fim_an_upstream_gets_no_keystrokes(upstream: FakeUpstream) -> None:
    with _client(upstream, "none") as client:
        assert _complete(client).headers["X-Codespark-Engine"] in ("spark", "codex")
    assert upstream.received == []
