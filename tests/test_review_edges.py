"""The review's edges: ``POST /v1/review`` on the fake backend, posting to a GitHub API served on loopback
(the one comment is edited in place), ``codespark ci init`` validated against the vendored workflow
schemas, and ``codespark tests`` keeping only the tests that pass."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient

from codespark.config import Settings
from codespark.engine.engine import Engine
from codespark.engine.fake import FakeBackend
from codespark.engine.loader import Engines
from codespark.review import ci, github, report
from codespark.review.findings import Finding
from codespark.review.run import ReviewResult
from codespark.server.app import create_app
from codespark.services.testgen import WriteTestsRequest, WriteTestsService
from tests.helpers import uvicorn_thread
from tests.review_repos import BASE, PR, Scripted, git, pr_repo

DIFF = """diff --git a/app.py b/app.py
--- a/app.py
+++ b/app.py
@@ -1,3 +1,6 @@
 import subprocess
+
+def run(cmd):
+    return subprocess.call(cmd, shell=True)
 def keep():
     return 1
"""


@pytest.fixture
def http(tmp_path: Path) -> Iterator[TestClient]:
    claim = '{"findings": [{"line": 3, "category": "security", "severity": "high", "reason": "runs a shell"}]}'
    backend = FakeBackend(replies={"The change to `run`": claim}, default='{"findings": []}')
    engine = Engine(backend)
    engines = Engines(routes={"spark": engine, "codex": engine}, aliases={})
    with TestClient(create_app(Settings(cache_dir=tmp_path / "cache"), engines), base_url="http://localhost") as c:
        yield c


def test_http_review_returns_findings(http: TestClient) -> None:
    new = "import subprocess\n\ndef run(cmd):\n    return subprocess.call(cmd, shell=True)\ndef keep():\n    return 1\n"
    response = http.post("/v1/review", json={"diff": DIFF, "files": {"app.py": new}})
    assert response.status_code == 200, response.text
    data = response.json()
    rules = {(f["rule_id"], f["start"], f["shown"]) for f in data["findings"]}
    assert ("bandit/B602", 4, True) in rules
    assert ("codespark/security", 3, False) in rules  # the model's claim: returned, hidden
    # Without file contents the diff's own lines are reviewed.
    sketch = http.post("/v1/review", json={"diff": DIFF, "model": False}).json()
    assert any(f["rule_id"] == "bandit/B602" for f in sketch["findings"])


OUTSIDE = DIFF.replace("a/app.py", "a/../../etc/app.py").replace("b/app.py", "b/../../etc/app.py")


@pytest.mark.parametrize(
    "body",
    [{"diff": "this is not a diff\n"}, {"diff": DIFF, "files": {"../etc/passwd": "x"}}, {"diff": DIFF, "threshold": 2},
     {"files": {}}, {"diff": "", "files": {"": ""}}, {"diff": DIFF, "files": {"a/": "x"}}, {"diff": OUTSIDE}],
)  # fmt: skip
def test_http_review_rejects_bad_input_with_a_4xx(http: TestClient, body: dict[str, Any]) -> None:
    response = http.post("/v1/review", json=body)
    assert 400 <= response.status_code < 500, response.text
    assert "message" in response.json()["error"]


def _fake_github(store: dict[str, Any]) -> FastAPI:
    app = FastAPI()
    comments: list[dict[str, Any]] = store.setdefault("comments", [])

    @app.get("/repos/{owner}/{repo}/issues/{number}/comments")
    async def listed(owner: str, repo: str, number: int, request: Request) -> list[dict[str, Any]]:
        store["auth"] = request.headers.get("authorization")
        return comments

    @app.post("/repos/{owner}/{repo}/issues/{number}/comments", status_code=201)
    async def post(owner: str, repo: str, number: int, request: Request) -> dict[str, Any]:
        body = await request.json()
        comment = {"id": len(comments) + 1, "body": body["body"], "html_url": f"/c/{len(comments) + 1}"}
        comments.append(comment)
        return comment

    @app.patch("/repos/{owner}/{repo}/issues/comments/{cid}")
    async def patch(owner: str, repo: str, cid: int, request: Request) -> dict[str, Any]:
        body = await request.json()
        comment = next(c for c in comments if c["id"] == cid)
        comment["body"] = body["body"]
        store["patched"] = store.get("patched", 0) + 1
        return comment

    @app.post("/repos/{owner}/{repo}/pulls/{number}/reviews")
    async def review(owner: str, repo: str, number: int, request: Request) -> dict[str, Any]:
        store["review"] = await request.json()
        return {"id": 7}

    return app


def _result(findings: list[Finding]) -> ReviewResult:
    return ReviewResult("abc123", findings, [], 10, 1, 1, 1.0)


def test_github_comment_is_edited_in_place(tmp_path: Path) -> None:
    store: dict[str, Any] = {}
    finding = Finding("a.py", 3, 4, "bandit/B602", "security", "high", 0.9, "shell", "bandit", fingerprint="f" * 32)
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"pull_request": {"number": 12}}))
    with uvicorn_thread(_fake_github(store)) as url:
        env = {"GITHUB_TOKEN": "t0ken", "GITHUB_REPOSITORY": "o/r", "GITHUB_API_URL": url,
               "GITHUB_EVENT_PATH": str(event)}  # fmt: skip
        target = github.Target.from_env(env)
        assert target.number == 12
        github.upsert_comment(target, report.markdown(_result([finding])))
        github.upsert_comment(target, report.markdown(_result([finding])))  # the same: nothing to do
        github.upsert_comment(target, report.markdown(_result([])))  # a re-run with no findings: edited
        assert github.post_review_comments(target, [finding], "deadbeef") == 1
    assert len(store["comments"]) == 1 and store.get("patched") == 1
    assert "No findings" in store["comments"][0]["body"] and store["auth"] == "Bearer t0ken"
    comment = store["review"]["comments"][0]
    assert store["review"]["event"] == "COMMENT" and (comment["start_line"], comment["line"]) == (3, 4)


def test_github_needs_its_environment() -> None:
    with pytest.raises(Exception, match="GITHUB_TOKEN"):
        github.Target.from_env({})


def _validate(schema: str, path: Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "check_jsonschema", "--builtin-schema", schema, str(path)]
    return subprocess.run(command, capture_output=True, text=True)


def test_ci_init_writes_valid_workflows(tmp_path: Path) -> None:
    gh = ci.init(tmp_path, "github")
    done = _validate("vendor.github-workflows", gh.path)
    assert done.returncode == 0, done.stdout + done.stderr
    workflow = yaml.safe_load(gh.path.read_text())
    assert workflow["permissions"] == {"contents": "read", "pull-requests": "write", "security-events": "write"}
    steps = workflow["jobs"]["review"]["steps"]
    review = next(s for s in steps if s.get("name") == "Review (shadow mode)")
    assert review["continue-on-error"] is True and "--format github" in review["run"]
    assert any(s.get("uses", "").startswith("github/codeql-action/upload-sarif") for s in steps)
    assert any(s.get("uses", "").startswith("actions/cache") for s in steps)
    with pytest.raises(Exception, match="exists"):
        ci.init(tmp_path, "github")
    gl = ci.init(tmp_path, "gitlab")
    done = _validate("vendor.gitlab-ci", gl.path)
    assert done.returncode == 0, done.stdout + done.stderr
    job = yaml.safe_load(gl.path.read_text())["codespark-review"]
    assert job["allow_failure"] is True and job["artifacts"]["reports"]["codequality"] == "gl-code-quality-report.json"
    # An existing .gitlab-ci.yml is kept: the job goes beside it, to include.
    assert ci.init(tmp_path, "gitlab", force=False).path == tmp_path / ".gitlab" / "codespark-review.yml"


TESTS_ANSWER = """```python
from shapes import clamp


def test_inside():
    assert clamp(5, 0, 10) == 5


def test_above():
    assert clamp(15, 0, 10) == 10


def test_wrong_call():
    assert clamp(1) == 1
```"""


class _TestWriter(Scripted):
    async def ask(self, messages: Any, max_tokens: int, schema: dict[str, Any] | None = None) -> str:
        return TESTS_ANSWER


def test_codespark_tests_keeps_only_passing_tests(tmp_path: Path) -> None:
    root = pr_repo(tmp_path / "repo")  # clamp has the seeded bug: test_above fails on it
    service = WriteTestsService(_TestWriter(), tmp_path / "cache")
    result = asyncio.run(service.run(WriteTestsRequest(root, ("shapes.py::clamp",))))
    [tests] = result.functions
    assert [c.name for c in tests.kept] == ["test_inside"]
    assert [c.name for c, _ in tests.failing] == ["test_above"] and "assert 0 == 10" in tests.failing[0][1]
    assert tests.broken == 1 and tests.coverage_after is not None and tests.coverage_after > 0
    [(rel, text)] = result.files.items()
    assert rel == "tests/test_shapes_codespark.py" and "test_above" not in text
    assert not (root / rel).exists() and git(root, "status", "--porcelain") == ""  # nothing written
    written = asyncio.run(service.run(WriteTestsRequest(root, ("shapes.py::clamp",), write=True)))
    assert written.written == [rel] and (root / rel).read_text() == text
    assert BASE and PR  # the repo's content is in tests/review_repos.py
