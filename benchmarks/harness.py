"""Shared benchmark plumbing: start a real ``codespark serve`` on a free loopback port."""

from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, NamedTuple

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
    with running_process(cmd, base, log, env, timeout_s, health) as proc:
        del proc
        yield base


@contextmanager
def running_process(
    cmd: list[str],
    base: str,
    log: Path,
    env: dict[str, str] | None = None,
    timeout_s: float = 900,
    health: str = "/health",
) -> Iterator[subprocess.Popen[bytes]]:
    """Like ``http_process``, yielding the process (for its pid, or to kill it)."""
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
        yield proc
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


class Served(NamedTuple):
    base: str
    proc: subprocess.Popen[bytes]


@contextmanager
def codespark_process(log: Path, env: dict[str, str] | None = None) -> Iterator[Served]:
    """Run ``codespark serve`` on a free loopback port; yield its base URL and process (pid, kill)."""
    port = free_port()
    full_env = {**os.environ, "CODESPARK_HOST": "127.0.0.1", "CODESPARK_PORT": str(port), **(env or {})}
    base = f"http://127.0.0.1:{port}"
    with running_process([sys.executable, "-m", "codespark", "serve"], base, log, full_env) as proc:
        yield Served(base, proc)


def cpu_name() -> str:
    """The CPU model and its widest SIMD, for figures that name their machine."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "unknown CPU"
    name = next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name")), "?")
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    simd = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2"
    return f"{name} ({simd}, {os.cpu_count()} cores)"


def print_report(report: dict[str, Any], path: Path | None) -> None:
    """Print ``report`` as JSON, and write it to ``path`` too when one is given."""
    text = json.dumps(report, indent=2)
    print(text)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n")


@contextmanager
def silent_server() -> Iterator[int]:
    """A loopback port that accepts connections and never says a word (an upstream that hangs)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    listener.settimeout(0.2)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(2)
        for conn in held:
            conn.close()
        listener.close()


def quantiles(values: list[float], digits: int = 1) -> dict[str, float]:
    """``n``, median and 95th percentile (nearest rank) of ``values``."""
    if not values:
        return {"n": 0}
    ordered = sorted(values)
    return {
        "n": len(ordered),
        "p50": round(statistics.median(ordered), digits),
        "p95": round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], digits),
    }
