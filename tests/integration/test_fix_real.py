"""``codespark fix`` and ``POST /v1/fix`` on the real codex model, real git repos and real pytest runs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.fix_repos import git, make_repo, tree_state
from tests.integration.conftest import launch, stop

pytestmark = pytest.mark.integration

PARITY = {
    "mathx/__init__.py": "",
    "mathx/parity.py": 'def is_even(n):\n    """True when n is even."""\n    return n % 2 == 1\n',
    "tests/test_parity.py": (
        "from mathx.parity import is_even\n\n\ndef test_even():\n    assert is_even(4)\n\n\n"
        "def test_odd():\n    assert not is_even(7)\n"
    ),
}


def codespark(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "codespark", *args], capture_output=True, text=True, timeout=900,
                          cwd=cwd)  # fmt: skip


def test_cli_fixes_a_bug_and_applies_it_keeping_uncommitted_work(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "repo", PARITY)
    (root / "NOTES.md").write_text("work in progress\n")
    (root / "mathx" / "__init__.py").write_text("# uncommitted edit\n")
    proc = codespark("fix", str(root), "--apply", "--rounds", "2", "--candidates", "3", "--mutants", "0")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "applied" in proc.stderr and "codespark/fix-" in proc.stderr
    assert (root / "NOTES.md").read_text() == "work in progress\n"
    assert (root / "mathx" / "__init__.py").read_text() == "# uncommitted edit\n"
    assert subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=root).returncode == 0
    assert git(root, "status", "--porcelain").splitlines() == [" M mathx/__init__.py", " M mathx/parity.py",
                                                               "?? NOTES.md"]  # fmt: skip


def test_cli_json_events_on_a_folder_that_is_not_a_repo(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "plain", PARITY, commit=False)
    before = tree_state(root)
    proc = codespark("fix", str(root), "--json", "--candidates", "3")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    assert events[0]["event"] == "started" and events[0]["runner"] == "pytest" and events[0]["branch"] is None
    # `== 1` for `== 0`: one token, found by the single-token repairs before the model is asked.
    mutation = next(e for e in events if e["event"] == "mutation")
    assert mutation["unit"] == "is_even" and mutation["fixed"] and not any(e["event"] == "candidate" for e in events)
    assert events[-1]["event"] == "finished" and events[-1]["status"] == "fixed"
    assert "mathx/parity.py" in events[-1]["changed"]
    assert tree_state(root) == before  # no --apply: untouched


def test_cli_usage_errors_exit_2(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    proc = codespark("fix", str(tmp_path / "empty"), "--engine", "codex")
    assert proc.returncode == 2 and "--test-cmd" in proc.stderr
    assert codespark("fix", str(tmp_path), "--engine", "gpt").returncode == 2


def test_http_fix_streams_sse_from_a_real_server(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "repo", PARITY)
    before = tree_state(root)
    workspaces = json.dumps([{"name": "parity", "path": str(root)}])
    server = launch({"CODESPARK_WORKSPACES": workspaces, "CODESPARK_SPARK_MODEL": "none"}, tmp_path / "server.log")
    try:
        events = []
        with httpx.stream("POST", server.base + "/v1/fix", json={"workspace": "parity", "candidates": 3, "mutants": 0},
                          timeout=600) as response:  # fmt: skip
            assert response.status_code == 200
            for line in response.iter_lines():
                if line.startswith("data: ") and line != "data: [DONE]":
                    events.append(json.loads(line[6:]))
        assert [e["event"] for e in events][:2] == ["started", "baseline"]
        assert events[-1]["event"] == "finished" and events[-1]["status"] == "fixed", events[-1]
        missing = httpx.post(server.base + "/v1/fix", json={"workspace": str(root)}, timeout=30)
        assert missing.status_code == 404
    finally:
        stop(server)
    assert tree_state(root) == before


def test_candidates_sampled_side_by_side_equal_those_sampled_one_at_a_time() -> None:
    """Answers of one prompt decoded in one batch per step (``Engine.run_many``, the fix loop's candidates) are
    the answers the same sampling gives alone: greedy and seeded alike."""
    import asyncio

    from codespark.config import Settings
    from codespark.engine.backend import SamplingParams
    from codespark.engine.chat import Message
    from codespark.engine.loader import load_engines
    from codespark.services.state import AppState

    settings = Settings()
    engines = load_engines(settings, only=("codex",))
    try:
        sampler = AppState.build(settings, engines).fix.samplers("codex")[0][0]
        messages = [Message("user", "Write a Python function is_prime(n) in one ```python code block.")]
        params = [
            SamplingParams(max_tokens=48, temperature=0.0 if i == 0 else 0.9, top_p=0.95, seed=i) for i in range(3)
        ]

        async def both() -> tuple[list[str], list[str]]:
            alone = [await sampler.sample(messages, p) for p in params]
            return alone, await sampler.sample_many(messages, params)

        alone, together = asyncio.run(both())
    finally:
        engines.close()
    assert together == alone
    assert len(set(together)) > 1  # the sampled ones are not all the greedy answer
