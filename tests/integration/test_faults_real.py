"""Faults on the real server and model: kill -9 mid-generation then a restart, and a truncated
model file, which must be a clear error and never a crash."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from codespark.config import Settings
from codespark.models.catalog import find
from codespark.models.provision import model_path
from tests.helpers import free_port
from tests.integration.conftest import launch, stop

pytestmark = pytest.mark.integration

SPARK_ONLY = {"CODESPARK_CODEX_MODEL": "none"}


def test_kill_9_during_generation_then_a_restart_serves_again(tmp_path: Path) -> None:
    server = launch(SPARK_ONLY, tmp_path / "first.log")
    body = {"model": "spark", "prompt": "def fib(n):", "max_tokens": 2000, "stream": True, "temperature": 0.8}
    with httpx.stream("POST", server.base + "/v1/completions", json=body, timeout=120) as r:
        assert r.status_code == 200
        chunks = 0
        for line in r.iter_lines():
            chunks += line.startswith("data: {")
            if chunks >= 5:
                server.proc.send_signal(signal.SIGKILL)
                break
    server.proc.wait(timeout=30)
    assert server.proc.returncode == -signal.SIGKILL
    again = launch(SPARK_ONLY, tmp_path / "second.log")
    try:
        r = httpx.post(again.base + "/v1/completions", json={"prompt": "x = ", "max_tokens": 4}, timeout=120)
        assert r.status_code == 200 and r.json()["choices"][0]["text"] is not None
    finally:
        stop(again)


def test_a_truncated_model_file_is_a_clear_error_not_a_crash(tmp_path: Path) -> None:
    spec = find("spark")
    assert spec is not None
    source = model_path(spec, Settings().models_dir)
    truncated = tmp_path / "truncated.gguf"
    with source.open("rb") as src, truncated.open("wb") as out:
        out.write(src.read(64 * 2**20))  # the header and the first tensors, then nothing
    env = {**os.environ, **SPARK_ONLY, "CODESPARK_SPARK_MODEL": str(truncated), "CODESPARK_PORT": str(free_port())}
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "codespark", "serve"], capture_output=True, text=True, env=env, timeout=300
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode > 0, output  # an exit with a message, not a signal (a segfault is negative)
    assert "could not load" in output and "valid GGUF" in output and "Traceback" not in output
    assert time.monotonic() - started < 120
