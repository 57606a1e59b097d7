"""Run code under test: its own process group, a wall-clock timeout that kills the whole group, CPU,
memory and process rlimits, capped output, a temporary HOME and, where ``unshare`` allows, no network.

The environment is minimal on purpose: API keys and tokens in the caller's environment never reach the
code under test.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

# Variables the code under test may see (besides the ones set here); everything else is dropped.
_PASS_ENV = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "VIRTUAL_ENV", "GOPATH", "GOCACHE", "GOFLAGS", "CARGO_HOME",
             "RUSTUP_HOME", "NODE_PATH")  # fmt: skip


@dataclass(frozen=True)
class Limits:
    """What one run may use."""

    timeout_s: float = 60.0
    cpu_s: int = 120
    memory_bytes: int = 8 * 2**30
    processes: int = 1024
    output_bytes: int = 256 * 1024
    network: bool = False


@dataclass(frozen=True)
class RunResult:
    returncode: int | None  # None when killed for the timeout
    output: str  # stdout and stderr together, head and tail kept when over the cap
    timed_out: bool
    truncated: bool
    seconds: float

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out


_live: set[int] = set()  # process groups running now (killed by ``terminate_all`` when a run is cancelled)
_live_lock = threading.Lock()


def terminate_all() -> None:
    """Kill every command still running (Ctrl-C, a cancelled request): no test outlives its fix run."""
    with _live_lock:
        groups = list(_live)
    for pid in groups:
        _kill_group(pid)


@functools.cache
def network_isolation() -> tuple[str, ...]:
    """The prefix that runs a command without network (an empty network namespace), or () where the
    kernel or the user may not create one."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return ()
    for prefix in ((unshare, "-n"), (unshare, "-rn")):
        try:
            done = subprocess.run([*prefix, "true"], capture_output=True, timeout=10, check=False)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if done.returncode == 0:
            return prefix
    return ()


def _limiter(limits: Limits) -> list[str]:
    """A tiny launcher that sets the rlimits and then execs the command (no preexec_fn, which is unsafe
    in a threaded server)."""
    code = (
        "import os,resource as r,sys;"
        f"r.setrlimit(r.RLIMIT_CPU,({limits.cpu_s},{limits.cpu_s}));"
        f"r.setrlimit(r.RLIMIT_AS,({limits.memory_bytes},{limits.memory_bytes}));"
        f"r.setrlimit(r.RLIMIT_NPROC,({limits.processes},{limits.processes}));"
        "r.setrlimit(r.RLIMIT_CORE,(0,0));"
        "os.execvp(sys.argv[1],sys.argv[1:])"
    )
    return [sys.executable, "-S", "-c", code]


class _Capped:
    """Keeps the first and the last ``cap / 2`` bytes of a stream."""

    def __init__(self, cap: int) -> None:
        self.half = max(1024, cap // 2)
        self.head = bytearray()
        self.tail = bytearray()
        self.dropped = 0

    def feed(self, chunk: bytes) -> None:
        room = self.half - len(self.head)
        if room > 0:
            self.head += chunk[:room]
            chunk = chunk[room:]
        self.tail += chunk
        if len(self.tail) > self.half:
            self.dropped += len(self.tail) - self.half
            del self.tail[: len(self.tail) - self.half]

    def text(self) -> str:
        middle = f"\n[... {self.dropped} bytes of output dropped ...]\n".encode() if self.dropped else b""
        return (bytes(self.head) + middle + bytes(self.tail)).decode("utf-8", errors="replace")


def run(
    command: str,
    cwd: Path,
    limits: Limits = Limits(),
    env: Mapping[str, str] | None = None,
) -> RunResult:
    """Run the shell ``command`` in ``cwd`` under ``limits``; never raises for the command's own failure."""
    home = Path(tempfile.mkdtemp(prefix="codespark-home-"))
    environ = {k: v for k, v in os.environ.items() if k in _PASS_ENV}
    environ.update(HOME=str(home), TMPDIR=str(home), TERM="dumb", NO_COLOR="1", PYTHONDONTWRITEBYTECODE="1",
                   PYTHONHASHSEED="0", CI="true")  # fmt: skip
    environ.update(env or {})
    argv = [*(() if limits.network else network_isolation()), *_limiter(limits), "/bin/sh", "-c", command]
    started = time.perf_counter()
    capped = _Capped(limits.output_bytes)
    try:
        proc = subprocess.Popen(
            argv, cwd=cwd, env=environ, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    except OSError as exc:
        shutil.rmtree(home, ignore_errors=True)
        return RunResult(127, f"cannot start {command!r}: {exc}", False, False, 0.0)
    assert proc.stdout is not None
    stdout = proc.stdout

    def pump() -> None:
        while chunk := os.read(stdout.fileno(), 65536):
            capped.feed(chunk)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    timed_out = False
    with _live_lock:
        _live.add(proc.pid)
    try:
        proc.wait(timeout=limits.timeout_s)
    except subprocess.TimeoutExpired:
        timed_out = True
    finally:
        with _live_lock:
            _live.discard(proc.pid)
        _kill_group(proc.pid)  # also strays left behind by a command that exited
        proc.wait()
        reader.join(timeout=5)
        stdout.close()
        shutil.rmtree(home, ignore_errors=True)
    output = capped.text()
    if timed_out:
        output += f"\n[codespark: killed after the {limits.timeout_s:.0f} s timeout]\n"
    return RunResult(None if timed_out else proc.returncode, output, timed_out, capped.dropped > 0,
                     time.perf_counter() - started)  # fmt: skip


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
