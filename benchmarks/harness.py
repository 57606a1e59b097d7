"""Shared benchmark plumbing: start a real ``codespark serve`` on a free loopback port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def http_process(
    cmd: list[str],
    base: str,
    log: Path,
    env: dict[str, str] | None = None,
    timeout_s: float = 900,
    health: str = "/health",
) -> Iterator[str]:
    """Run ``cmd`` until the block ends, once ``base + health`` answers 200; yield ``base``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{cmd[0]} exited with {proc.returncode}; see {log}")
            try:
                if httpx.get(base + health, timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{cmd[0]} did not become healthy; see {log}")
            time.sleep(0.5)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def codespark_server(log: Path, env: dict[str, str] | None = None) -> AbstractContextManager[str]:
    """Run ``codespark serve`` on a free loopback port; yield its base URL."""
    port = free_port()
    full_env = {**os.environ, "CODESPARK_HOST": "127.0.0.1", "CODESPARK_PORT": str(port), **(env or {})}
    return http_process([sys.executable, "-m", "codespark", "serve"], f"http://127.0.0.1:{port}", log, full_env)
