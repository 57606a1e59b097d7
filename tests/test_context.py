"""Repo context: the index (git-aware walk, parse errors, incremental refresh), cross-file resolution,
BM25, the repo map, and the HTTP paths (infill, Tabby segments, debug data, chat repo map)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from codespark.config import Settings
from codespark.context.index import RepoIndex
from codespark.context.parse import parse
from codespark.context.repomap import rank_files, repo_map
from codespark.context.service import RepoContext
from codespark.engine.engine import Engine
from codespark.engine.fake import FakeBackend
from codespark.engine.loader import Engines
from codespark.server.app import create_app
from tests.repo_fixture import cursor, make_repo


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "repo")


def test_index_respects_gitignore_skips_binaries_and_counts_parse_errors(repo: Path, tmp_path: Path) -> None:
    index = RepoIndex.open(repo, tmp_path / "cache")
    report = index.refresh()
    files = {row[0] for row in index.conn.execute("SELECT path FROM files")}
    assert "build/generated.py" not in files and "assets/blob.py" not in files
    assert {"shop/orders.py", "web/app.ts", "svc/main.go", "svc/Main.java", "svc/lib.rs"} <= files
    assert report.skipped == 1 and report.with_errors >= 1
    names = {row[0] for row in index.conn.execute("SELECT name FROM symbols WHERE path = 'shop/broken.py'")}
    assert "fine" in names  # what parses of a broken file is still indexed


def test_refresh_is_incremental(repo: Path, tmp_path: Path) -> None:
    index = RepoIndex.open(repo, tmp_path / "cache")
    first = index.refresh()
    again = index.refresh()
    assert again.parsed == 0 and again.unchanged == first.files
    os.utime(repo / "shop/pricing.py")  # touched, same content: re-hashed, not re-parsed
    assert index.refresh().parsed == 0
    (repo / "shop/pricing.py").write_text("def total_price(items: list[int]) -> float:\n    return 0.0\n")
    (repo / "web/api.ts").unlink()
    changed = index.refresh()
    assert changed.parsed == 1 and changed.removed == 1
    signature = index.conn.execute("SELECT signature FROM symbols WHERE name = 'total_price'").fetchone()[0]
    assert signature == "def total_price(items: list[int]) -> float:"


def test_other_languages_have_definitions_and_imports() -> None:
    ts = parse(
        b"import { send } from './api';\nexport class App { start(port: number) { send(port) } }\n", "typescript"
    )
    assert [(s.name, s.kind) for s in ts.symbols] == [("App", "class"), ("start", "method")]
    assert ts.imports[0].module == "./api"
    go = parse(b'package m\nimport "fmt"\nfunc Serve(addr string) error { return nil }\n', "go")
    assert go.symbols[0].signature == "func Serve(addr string) error" and go.imports[0].module == "fmt"
    rust = parse(b"use std::io;\n/// Adds.\npub fn add(a: i32) -> i32 { a }\n", "rust")
    assert rust.symbols[0].doc == "Adds." and rust.imports[0].module == "std::io"
    java = parse(b"import java.util.List;\nclass Main { void run(List<String> a) {} }\n", "java")
    assert [s.name for s in java.symbols] == ["Main", "run"] and java.imports[0].module == "java.util.List"


def test_cross_file_definitions_through_a_reexport(repo: Path, tmp_path: Path) -> None:
    ctx = RepoContext(repo, tmp_path / "cache")
    ctx.refresh()
    prefix, suffix = cursor(repo)
    pieces = ctx.for_completion(str(repo / "shop/orders.py"), prefix, suffix, 1000, None, "full")
    by_reason = {p.reason: p for p in pieces}
    client = by_reason["definition of Client"]
    assert client.path == "shop/net/client.py"
    assert "def send(self, path: str, payload: dict, *, retries: int = 3) -> Response: ..." in client.text
    assert by_reason["definition of total_price"].path == "shop/pricing.py"
    # Near the cursor beats far away: a small budget keeps the best definition only.
    # Definitions get half of the budget, similar code the rest.
    best = ctx.for_completion(str(repo / "shop/orders.py"), prefix, suffix, 2 * client.tokens, None, "full")
    assert [p.reason for p in best if p.reason.startswith("definition")] == ["definition of Client"]
    similar = ctx.for_completion(str(repo / "shop/orders.py"), prefix, suffix, 1000, None, "similar")
    assert similar and all(p.reason.startswith("similar code") for p in similar)
    assert all(p.path != "shop/orders.py" for p in pieces + similar)


def test_repo_map_ranks_the_files_others_import(repo: Path, tmp_path: Path) -> None:
    ctx = RepoContext(repo, tmp_path / "cache")
    ctx.refresh()
    ranked = [path for path, _ in rank_files(ctx.index)]
    assert ranked.index("shop/net/client.py") < ranked.index("shop/orders.py")
    text = repo_map(ctx.index, 200)
    assert "shop/net/client.py:\n  class Response:\n  class Client:" in text


@pytest.fixture
def served(repo: Path, tmp_path: Path) -> Iterator[tuple[TestClient, FakeBackend]]:
    fake = FakeBackend(default="send(")
    engine = Engine(fake)
    engines = Engines(routes={"spark": engine, "codex": engine}, aliases={})
    settings = Settings(repo_dir=repo, cache_dir=tmp_path / "cache")
    with TestClient(create_app(settings, engines), base_url="http://localhost") as client:
        assert client.app.state.codespark.repo.ready.wait(30)  # type: ignore[attr-defined]
        yield client, fake


def test_infill_prompt_carries_the_definition_and_debug_shows_it(served: tuple[TestClient, FakeBackend]) -> None:
    client, fake = served
    prefix = "from shop.net import Client\n\n\ndef go() -> None:\n    c = Client('x')\n    c."
    r = client.post(
        "/infill",
        json={"input_prefix": prefix, "input_suffix": "\n", "filename": "shop/new.py", "debug": True},
    )
    assert r.status_code == 200
    assert "<|file_sep|>shop/net/client.py\nclass Client:" in fake.prompts[-1]
    snippets = r.json()["debug_data"]["snippets"]
    assert any(s["reason"] == "definition of Client" and s["filepath"] == "shop/net/client.py" for s in snippets)


def test_tabby_segments_work_as_they_are(served: tuple[TestClient, FakeBackend]) -> None:
    client, fake = served
    body = {
        "language": "python",
        "segments": {
            "prefix": "from shop.pricing import total_price\n\nx = ",
            "suffix": "\n",
            "filepath": "shop/report.py",
            "declarations": [{"filepath": "shop/extra.py", "body": "def tabby_declared(): ..."}],
            "relevant_snippets_from_changed_files": [{"filepath": "a.py", "body": "changed_snippet = 1", "score": 0.5}],
        },
        "debug_options": {"return_snippets": True},
    }
    r = client.post("/v1/completions", json=body)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["choices"][0]["text"] == "send(" and out["id"].startswith("cmpl-")
    prompt = fake.prompts[-1]
    assert "tabby_declared" in prompt and "changed_snippet" in prompt and "def total_price" in prompt
    reasons = {s["reason"] for s in out["debug_data"]["snippets"]}
    assert {"sent by the client", "definition of total_price"} <= reasons


def test_chat_with_a_repo_map(served: tuple[TestClient, FakeBackend]) -> None:
    client, fake = served
    r = client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi"}], "repo": "repo"})
    assert r.status_code == 200
    assert "Map of the repository" in fake.prompts[-1] and "class Client:" in fake.prompts[-1]
    bad = client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "x"}], "repo": "other"})
    assert bad.status_code == 400 and "no index for the repo" in bad.json()["error"]["message"]


def test_cli_index_and_context(repo: Path, tmp_path: Path) -> None:
    env = {**os.environ, "CODESPARK_CACHE_DIR": str(tmp_path / "cache")}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "codespark", *args], capture_output=True, text=True, env=env)

    first = run("index", str(repo))
    assert first.returncode == 0, first.stderr
    assert "1 skipped" in first.stderr and "with parse errors" in first.stderr
    started = time.perf_counter()
    again = run("index", str(repo))
    assert "0 parsed" in again.stderr and time.perf_counter() - started < 30
    shown = run("context", str(repo / "shop/orders.py"), "--line", "8", "--repo", str(repo))
    assert shown.returncode == 0, shown.stderr
    assert "definition of Client" in shown.stdout and "def send(self, path: str" in shown.stdout
