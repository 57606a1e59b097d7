"""Schemathesis against the server's own OpenAPI schema, every route, over real HTTP (uvicorn on
loopback) with the fake backend.

Target: no response >= 500, whatever the body, and the server alive after.  The long run
(>= 1,000 cases against a real server with the real models) is ``make bench-hardening``; this
one is the fast guard in CI.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from benchmarks.sql_dev.build import build_sqlite

from codespark.config import DatabaseSettings, Settings
from codespark.engine.engine import Engine
from codespark.engine.fake import FakeBackend
from codespark.engine.loader import Engines
from codespark.server.app import create_app
from tests.helpers import uvicorn_thread


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    engine = Engine(FakeBackend(default="SELECT COUNT(*) FROM orders```"))
    shop = build_sqlite("shop", tmp_path_factory.mktemp("fuzz") / "shop.db")
    settings = Settings(max_tokens_limit=64, databases=[DatabaseSettings(name="shop", url=f"sqlite:///{shop}")])
    app = create_app(settings, Engines(routes={"spark": engine, "codex": engine}, aliases={"fake": "spark"}))
    with uvicorn_thread(app) as base:
        yield base
        assert httpx.get(base + "/health").status_code == 200  # alive after everything


def test_no_input_gets_a_server_error(base_url: str) -> None:
    # The schemathesis CLI (its pytest plugin does not load under pytest 9): every operation of the
    # schema, its examples and generated bodies, checked for responses >= 500.  (Its "coverage" phase
    # is left out: in 4.32.5 it fails inside schemathesis itself, an AST recursion error, on our schema.)
    cli = Path(sys.executable).with_name("schemathesis")
    proc = subprocess.run(
        [str(cli), "run", base_url + "/openapi.json", "--checks", "not_a_server_error", "--max-examples", "150",
         "--phases", "examples,fuzzing", "--workers", "2", "--suppress-health-check", "all",
         "--request-timeout", "30", "--seed", "7"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    cases = re.search(r"(\d+) generated, (\d+) passed", proc.stdout)
    assert cases is not None and int(cases.group(1)) >= 300 and cases.group(1) == cases.group(2), proc.stdout
