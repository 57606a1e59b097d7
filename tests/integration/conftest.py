"""A real ``codespark serve`` on a free loopback port, with the real shipped models."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from tests.helpers import free_port

STARTUP_TIMEOUT_S = 600  # first run may provision the models (~1.6 GB)


class Server:
    def __init__(self, base: str, proc: subprocess.Popen[bytes], log: Path) -> None:
        self.base = base
        self.proc = proc
        self.log = log

    def client(self) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.base + "/v1", api_key="unused", max_retries=0, timeout=300)

    def alive(self) -> bool:
        return self.proc.poll() is None


def launch(env: dict[str, str], log: Path, cwd: Path | None = None) -> Server:
    """Start ``codespark serve`` with ``env`` on a free port; wait until it is healthy."""
    port = free_port()
    env = {**os.environ, "CODESPARK_PORT": str(port), "CODESPARK_HOST": "127.0.0.1", **env}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "codespark", "serve"], stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd
        )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(base + "/health", timeout=1).status_code == 200:
                return Server(base, proc, log)
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    proc.kill()
    pytest.fail("server did not become healthy in time:\n" + log.read_text()[-3000:])


def stop(server: Server) -> None:
    server.proc.terminate()
    try:
        server.proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.proc.kill()


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    log = tmp_path_factory.mktemp("server") / "server.log"
    running = launch({"CODESPARK_N_CTX": "8192"}, log)
    yield running
    stop(running)
