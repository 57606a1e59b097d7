"""Shared benchmark plumbing: start a real ``codespark serve`` on a free loopback port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def codespark_server(log: Path, env: dict[str, str] | None = None, timeout_s: float = 900) -> Iterator[str]:
    """Run ``codespark serve`` until the block ends; yield its base URL."""
    port = free_port()
    full_env = {**os.environ, "CODESPARK_HOST": "127.0.0.1", "CODESPARK_PORT": str(port), **(env or {})}
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "codespark", "serve"], stdout=out, stderr=subprocess.STDOUT, env=full_env
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"codespark serve exited with {proc.returncode}; see {log}")
            try:
                if httpx.get(base + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"codespark serve did not become healthy; see {log}")
            time.sleep(0.5)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
