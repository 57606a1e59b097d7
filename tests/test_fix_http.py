"""``POST /v1/fix`` on the fake backend: configured workspaces only, SSE events, clear errors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from codespark.config import Settings, WorkspaceSettings
from codespark.engine.engine import Engine
from codespark.engine.fake import FakeBackend
from codespark.engine.loader import Engines
from codespark.server.app import create_app
from tests.fix_repos import FIXED_ADD, make_repo, tree_state


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "app")


@pytest.fixture
def http(repo: Path, tmp_path: Path) -> Iterator[TestClient]:
    backend = FakeBackend(replies={"Fix the function `add`": FIXED_ADD}, default="no idea")
    engine = Engine(backend)
    engines = Engines(routes={"spark": engine, "codex": engine}, aliases={})
    settings = Settings(
        cache_dir=tmp_path / "cache",
        workspaces=[WorkspaceSettings(name="app", path=repo), WorkspaceSettings(name="open", path=repo,
                                                                                 allow_apply=True)],
    )  # fmt: skip
    with TestClient(create_app(settings, engines), base_url="http://localhost") as client:
        yield client


def _events(text: str) -> list[dict[str, object]]:
    out = []
    for block in text.split("\n\n"):
        data = [line[6:] for line in block.splitlines() if line.startswith("data: ")]
        if data and data[0] != "[DONE]":
            out.append(json.loads(data[0]))
    return out


def test_fix_streams_events_and_leaves_the_tree_alone(http: TestClient, repo: Path) -> None:
    before = tree_state(repo)
    response = http.post("/v1/fix", json={"workspace": "app", "candidates": 2, "mutants": 0})  # the model's path
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
    assert "event: started" in response.text and response.text.rstrip().endswith("data: [DONE]")
    events = _events(response.text)
    assert [e["event"] for e in events][:3] == ["started", "baseline", "round"]
    # By default the single-token repairs come first, and `a - b` is one token from right.
    first = _events(http.post("/v1/fix", json={"workspace": "app", "candidates": 2}).text)
    assert [e["event"] for e in first][:3] == ["started", "baseline", "mutation"] and first[2]["unit"] == "add"
    final = events[-1]
    assert final["event"] == "finished" and final["status"] == "fixed" and "+    return a + b" in str(final["diff"])
    assert tree_state(repo) == before


def test_apply_only_where_the_workspace_allows_it(http: TestClient, repo: Path) -> None:
    refused = http.post("/v1/fix", json={"workspace": "app", "apply": True})
    assert refused.status_code == 403 and "allow_apply" in refused.json()["error"]["message"]
    done = http.post("/v1/fix", json={"workspace": "open", "apply": True, "stream": False, "candidates": 1})
    assert done.status_code == 200 and done.json()["status"] == "fixed"
    assert done.json()["applied"]["changed"] == ["calc/ops.py"]
    assert "return a + b" in (repo / "calc" / "ops.py").read_text()


def test_unknown_workspace_and_bad_input_are_4xx(http: TestClient, tmp_path: Path) -> None:
    missing = http.post("/v1/fix", json={"workspace": "/etc"})
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "workspace_not_found"
    bad = http.post("/v1/fix", json={"workspace": "app", "rounds": 0})
    assert bad.status_code == 400 and bad.json()["error"]["type"] == "invalid_request_error"
    assert http.post("/v1/fix", json={"workspace": "app", "mutants": -1}).status_code == 400
    engine = http.post("/v1/fix", json={"workspace": "app", "engine": "gpt-9"})
    assert engine.status_code == 400 and "auto, codex, spark, upstream" in engine.json()["error"]["message"]


def test_clients_cannot_choose_the_command(http: TestClient, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    response = http.post("/v1/fix", json={"workspace": "app", "stream": False, "candidates": 1,
                                          "test_cmd": f"touch {marker}", "path": "/"})  # fmt: skip
    assert response.status_code == 200 and response.json()["status"] == "fixed" and not marker.exists()


def test_workspaces_are_listed_without_paths(http: TestClient, repo: Path) -> None:
    listed = http.get("/v1/fix/workspaces").json()["data"]
    assert [w["name"] for w in listed] == ["app", "open"] and str(repo) not in json.dumps(listed)
