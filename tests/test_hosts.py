"""The DNS-rebinding and cross-site guard: which Host and Origin headers the server answers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from codespark.config import Settings
from codespark.engine.engine import Engine
from codespark.engine.fake import FakeBackend
from codespark.engine.loader import Engines
from codespark.guard.auth import hash_key
from codespark.guard.hosts import HostPolicy, host_name, is_loopback
from codespark.server.app import create_app


def _client(**settings: Any) -> TestClient:
    engine = Engine(FakeBackend(default="ok"))
    engines = Engines(routes={"spark": engine, "codex": engine}, aliases={})
    return TestClient(create_app(Settings(**settings), engines), base_url="http://localhost")


@pytest.fixture
def loopback() -> Iterator[TestClient]:
    with _client() as client:
        yield client


@pytest.mark.parametrize("path", ["/v1/models", "/health", "/metrics"])
@pytest.mark.parametrize("host", ["attacker.example", "attacker.example:8080", "127.0.0.1.nip.io", "localhost.evil"])
def test_rebinding_host_names_are_refused_on_every_path(loopback: TestClient, path: str, host: str) -> None:
    r = loopback.get(path, headers={"Host": host})
    assert r.status_code == 403
    error = r.json()["error"]
    assert error["code"] == "forbidden" and "allowed_hosts" in error["message"]


def test_rebinding_cannot_reach_the_sql_assistant_or_completions(loopback: TestClient) -> None:
    for path, body in (("/v1/sql", {"question": "x"}), ("/infill", {"input_prefix": "x"})):
        assert loopback.post(path, json=body, headers={"Host": "attacker.example"}).status_code == 403


@pytest.mark.parametrize("host", ["localhost", "localhost:8080", "127.0.0.1", "127.0.0.1:9", "[::1]", "[::1]:8080"])
def test_loopback_names_with_any_port_are_served(loopback: TestClient, host: str) -> None:
    assert loopback.get("/v1/models", headers={"Host": host}).status_code == 200


def test_allowed_hosts_adds_names() -> None:
    with _client(allowed_hosts=["devbox.internal", "*.corp.example"]) as client:
        for host in ("devbox.internal:8080", "a.corp.example", "x.y.corp.example"):
            assert client.get("/v1/models", headers={"Host": host}).status_code == 200
        assert client.get("/v1/models", headers={"Host": "corp.example.evil"}).status_code == 403


@pytest.mark.parametrize("origin", ["https://attacker.example", "null", "http://127.0.0.1.attacker.example"])
def test_cross_site_pages_are_refused(loopback: TestClient, origin: str) -> None:
    r = loopback.post("/v1/completions", json={"prompt": "x", "max_tokens": 1}, headers={"Origin": origin})
    assert r.status_code == 403 and "cors_origins" in r.json()["error"]["message"]


def test_no_cors_headers_unless_configured(loopback: TestClient) -> None:
    r = loopback.get("/v1/models", headers={"Origin": "http://localhost:3000"})
    assert r.status_code == 200  # a page on this machine may call; without cors_origins it cannot read the answer
    assert not [h for h in r.headers if h.lower().startswith("access-control-")]
    preflight = loopback.options(
        "/v1/chat/completions",
        headers={"Origin": "http://localhost:3000", "Access-Control-Request-Method": "POST"},
    )
    assert "access-control-allow-origin" not in preflight.headers


def test_configured_origins_get_cors_headers_and_preflights() -> None:
    with _client(cors_origins=["https://app.example.com"]) as client:
        r = client.get("/v1/models", headers={"Origin": "https://app.example.com"})
        assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "https://app.example.com"
        preflight = client.options(
            "/v1/chat/completions",
            headers={
                "Origin": "https://app.example.com",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, content-type",
            },
        )
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == "https://app.example.com"
        assert client.get("/v1/models", headers={"Origin": "https://other.example.com"}).status_code == 403


def test_non_loopback_bind_serves_any_host_but_needs_keys() -> None:
    key = "csk-test"
    with _client(host="0.0.0.0", api_keys=[hash_key(key)]) as client:
        assert client.get("/v1/models", headers={"Host": "10.1.2.3:8080"}).status_code == 401
        authed = client.get("/v1/models", headers={"Host": "10.1.2.3:8080", "Authorization": f"Bearer {key}"})
        assert authed.status_code == 200
    with _client(host="0.0.0.0", api_keys=[hash_key(key)], allowed_hosts=["gpu-box"]) as client:
        headers = {"Authorization": f"Bearer {key}"}
        assert client.get("/v1/models", headers={**headers, "Host": "gpu-box:8080"}).status_code == 200
        assert client.get("/v1/models", headers={**headers, "Host": "attacker.example"}).status_code == 403


def test_policy_parsing() -> None:
    assert host_name("[::1]:8080") == "::1" and host_name("LocalHost.:80") == "localhost" and host_name("::1") == "::1"
    assert is_loopback("127.0.0.2") and is_loopback("[::1]") and not is_loopback("0.0.0.0")
    policy = HostPolicy.for_bind("127.0.0.1", [], [])
    assert policy.host_refusal(None) is not None and policy.host_refusal("") is not None
    assert policy.origin_refusal(None) is None and policy.origin_refusal("http://[::1]:5173") is None
