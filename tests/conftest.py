"""Shared fixtures: a fake-backed app for fast tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from codespark.config import Settings
from codespark.engine.engine import Engine
from codespark.engine.fake import FakeBackend
from codespark.engine.loader import Engines
from codespark.server.app import create_app


@pytest.fixture
def fake() -> FakeBackend:
    return FakeBackend(replies={"add(": "a + b", "capital": "Paris"}, default="hello world")


@pytest.fixture
def client(fake: FakeBackend, tmp_path: object) -> Iterator[TestClient]:
    engine = Engine(fake)
    engines = Engines(routes={"spark": engine, "codex": engine}, aliases={"fake": "spark"})
    settings = Settings(max_tokens_limit=512)
    with TestClient(create_app(settings, engines), base_url="http://localhost") as c:
        yield c
