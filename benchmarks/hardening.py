"""Under load and faults: a real ``codespark serve`` with the real models, driven hard.

Three parts, each on its own fresh server:

- **load**: N concurrent clients (32 by default) mixing streaming FIM (``/infill``), chat and
  ``/v1/sql`` for a while, then the same mix from 1 client.  Every answer must be served (200)
  or shed (429/503 with ``Retry-After``); shed clients wait the ``Retry-After`` and go on, as
  real clients do.  Reported: the status counts, the shed rate, p50/p95 time to first token
  and total time of admitted FIM requests, peak RSS of the server, and whether it stayed up.
- **fuzz**: schemathesis against the server's own OpenAPI schema, every route, positive and
  negative bodies; at least ``--fuzz-cases`` cases; responses >= 500 counted; alive after.
- **faults**: an upstream that accepts connections and never answers, and one that is down
  (time until the local fallback answers); kill -9 mid-generation (time until a restarted
  server answers again).

Usage: python benchmarks/hardening.py [--clients 32] [--seconds 120] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import signal
import subprocess
import sys
import sysconfig
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.harness import codespark_process, cpu_name, free_port, print_report, quantiles, silent_server
from benchmarks.sql_dev.build import build_sqlite

OUT = Path("bench-out")
QUESTIONS = [
    q["q"] for q in json.loads((Path(__file__).parent / "sql_dev" / "questions.json").read_text()) if q["db"] == "shop"
]


def _code_windows(n: int, seed: int = 0) -> list[tuple[str, str]]:
    """(prefix, suffix) pairs cut from real stdlib files at random lines: 40 lines above, 10 below."""
    rng = random.Random(seed)
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    files = [stdlib / name for name in ("json/decoder.py", "shutil.py", "textwrap.py", "csv.py", "glob.py")]
    out = []
    for i in range(n):
        lines = files[i % len(files)].read_text().splitlines(keepends=True)
        at = rng.randrange(40, len(lines) - 10)
        cut = rng.randrange(0, max(1, len(lines[at]) - 1))
        prefix = "".join(lines[at - 40 : at]) + lines[at][:cut]
        suffix = lines[at][cut:] + "".join(lines[at + 1 : at + 10])
        out.append((prefix, suffix))
    return out


def _peak_rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class Tally:
    """What the clients saw."""

    def __init__(self) -> None:
        self.status: Counter[str] = Counter()
        self.fim_ttft_ms: list[float] = []
        self.fim_total_ms: list[float] = []
        self.missing_retry_after = 0
        self.transport_errors = 0


async def _fim(http: httpx.AsyncClient, window: tuple[str, str], session: str, tally: Tally) -> float | None:
    body = {"input_prefix": window[0], "input_suffix": window[1], "n_predict": 24, "stream": True}
    started = time.perf_counter()
    async with http.stream("POST", "/infill", json=body, headers={"X-Session": session}) as r:
        tally.status[f"fim {r.status_code}"] += 1
        if r.status_code != 200:
            await r.aread()
            return _retry_after(r, tally)
        first = None
        async for line in r.aiter_lines():
            if line.startswith("data: ") and first is None:
                first = time.perf_counter()
        tally.fim_ttft_ms.append(((first or time.perf_counter()) - started) * 1000)
        tally.fim_total_ms.append((time.perf_counter() - started) * 1000)
    return None


async def _chat(http: httpx.AsyncClient, rng: random.Random, tally: Tally) -> float | None:
    topic = rng.choice(["a Python list comprehension", "SQL joins", "a git rebase", "unit tests"])
    body = {"messages": [{"role": "user", "content": f"Explain {topic} in one sentence."}], "max_tokens": 32}
    r = await http.post("/v1/chat/completions", json=body)
    tally.status[f"chat {r.status_code}"] += 1
    return _retry_after(r, tally) if r.status_code != 200 else None


async def _sql(http: httpx.AsyncClient, rng: random.Random, tally: Tally) -> float | None:
    r = await http.post("/v1/sql", json={"question": rng.choice(QUESTIONS), "db": "shop", "repair": False})
    tally.status[f"sql {r.status_code}"] += 1
    return _retry_after(r, tally) if r.status_code != 200 else None


def _retry_after(r: httpx.Response, tally: Tally) -> float | None:
    if r.status_code in (429, 503):
        value = r.headers.get("retry-after")
        if value is None:
            tally.missing_retry_after += 1
            return 1.0
        return float(value)
    return None


async def _client(base: str, index: int, until: float, tally: Tally) -> None:
    rng = random.Random(index)
    windows = _code_windows(8, seed=index)
    async with httpx.AsyncClient(base_url=base, timeout=600) as http:
        n = 0
        while time.monotonic() < until:
            kind = rng.choices(["fim", "chat", "sql"], weights=[60, 25, 15])[0]
            try:
                if kind == "fim":
                    wait = await _fim(http, windows[n % len(windows)], f"client-{index}-{n % 3}", tally)
                elif kind == "chat":
                    wait = await _chat(http, rng, tally)
                else:
                    wait = await _sql(http, rng, tally)
            except httpx.TransportError:
                tally.transport_errors += 1
                wait = 1.0
            n += 1
            if wait:
                await asyncio.sleep(min(wait, max(0.0, until - time.monotonic())))


def _drive(base: str, pid: int, clients: int, seconds: float) -> dict[str, Any]:
    tally = Tally()
    peak = [0.0]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], _peak_rss_mb(pid))
            stop.wait(0.5)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()

    async def main() -> None:
        until = time.monotonic() + seconds
        await asyncio.gather(*(_client(base, i, until, tally) for i in range(clients)))

    started = time.monotonic()
    asyncio.run(main())
    stop.set()
    sampler.join()
    total = sum(tally.status.values())
    shed = sum(n for key, n in tally.status.items() if key.endswith((" 429", " 503")))
    errors = sum(n for key, n in tally.status.items() if not key.endswith((" 200", " 429", " 503")))
    return {
        "clients": clients,
        "seconds": round(time.monotonic() - started, 1),
        "requests": total,
        "status": dict(sorted(tally.status.items())),
        "shed_rate": round(shed / total, 3) if total else 0.0,
        "other_errors": errors,
        "shed_without_retry_after": tally.missing_retry_after,
        "transport_errors": tally.transport_errors,
        "fim_ttft_ms": quantiles(tally.fim_ttft_ms),
        "fim_total_ms": quantiles(tally.fim_total_ms),
        "peak_rss_mb": round(_peak_rss_mb(pid) or peak[0], 1),
    }


def load(clients: int, seconds: float, env: dict[str, str]) -> dict[str, Any]:
    results = {}
    for name, n, duration in (("single", 1, seconds / 2), ("concurrent", clients, seconds)):
        with codespark_process(OUT / f"hardening-load-{name}.log", env) as served:
            print(f"load: {n} client(s) for {duration:.0f} s", file=sys.stderr, flush=True)
            figures = _drive(served.base, served.proc.pid, n, duration)
            figures["alive_after"] = served.proc.poll() is None and _healthy(served.base)
            results[name] = figures
    return results


def _healthy(base: str) -> bool:
    try:
        return httpx.get(base + "/health", timeout=10).status_code == 200
    except httpx.HTTPError:
        return False


def fuzz(cases: int, env: dict[str, str]) -> dict[str, Any]:
    # Short generations, so the run measures the server's input handling rather than decoding.
    # The spark model serves every route here (codex 'none'): the same routing and validation code, twice as fast.
    # A 1,024-token context bounds each prefill (generated bodies are long): a bigger prompt is a quick 400.
    fuzz_env = {
        **env,
        "CODESPARK_N_CTX": "1024",
        "CODESPARK_MAX_TOKENS_LIMIT": "16",
        "CODESPARK_DEFAULT_FIM_MAX_TOKENS": "8",
        "CODESPARK_CODEX_MODEL": "none",
    }
    with codespark_process(OUT / "hardening-fuzz.log", fuzz_env) as served:
        cli = Path(sys.executable).with_name("schemathesis")
        per_operation = max(50, cases // 3)  # hypothesis stops early where inputs run out (GET routes: 1 case)
        started = time.monotonic()
        proc = subprocess.run(
            [str(cli), "run", served.base + "/openapi.json", "--checks", "not_a_server_error",
             "--max-examples", str(per_operation), "--mode", "all", "--phases", "examples,fuzzing",
             "--workers", "2", "--suppress-health-check", "all", "--request-timeout", "120", "--seed", "11"],
            capture_output=True, text=True,
        )  # fmt: skip
        counts = re.search(r"(\d+) generated, (\d+) passed", proc.stdout)
        failures = re.findall(r"Server error", proc.stdout)
        (OUT / "hardening-fuzz.txt").write_text(proc.stdout + proc.stderr)
        return {
            "cases": int(counts.group(1)) if counts else 0,
            "passed": int(counts.group(2)) if counts else 0,
            "server_errors": len(failures),
            "exit_code": proc.returncode,
            "seconds": round(time.monotonic() - started, 1),
            "alive_after": served.proc.poll() is None and _healthy(served.base),
        }


def _fallback_ms(base_url: str, env: dict[str, str], name: str) -> dict[str, Any]:
    upstream = [{"name": "gpu", "base_url": base_url, "model": "m", "retries": 1, "connect_timeout_s": 3}]
    upstream_env = {**env, "CODESPARK_UPSTREAMS": json.dumps(upstream), "CODESPARK_CODEX_UPSTREAM": "gpu"}
    with codespark_process(OUT / f"hardening-{name}.log", upstream_env) as served:
        body = {"messages": [{"role": "user", "content": "Say hi."}], "max_tokens": 8}
        started = time.perf_counter()
        r = httpx.post(served.base + "/v1/chat/completions", json=body, timeout=600)
        return {
            "status": r.status_code,
            "fallback": r.headers.get("x-codespark-fallback", ""),
            "ms": round((time.perf_counter() - started) * 1000),
        }


def faults(env: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with silent_server() as port:
        out["upstream_never_answers"] = _fallback_ms(f"http://127.0.0.1:{port}/v1", env, "silent-upstream")
    out["upstream_down"] = _fallback_ms(f"http://127.0.0.1:{free_port()}/v1", env, "down-upstream")
    with codespark_process(OUT / "hardening-kill.log", env) as served:
        body = {"model": "spark", "prompt": "def fib(n):", "max_tokens": 1000, "stream": True}
        with httpx.stream("POST", served.base + "/v1/completions", json=body, timeout=600) as r:
            for i, _ in enumerate(r.iter_lines()):
                if i >= 10:
                    served.proc.send_signal(signal.SIGKILL)
                    break
        served.proc.wait(30)
    started = time.perf_counter()
    with codespark_process(OUT / "hardening-restart.log", env) as served:
        r = httpx.post(served.base + "/v1/completions", json={"prompt": "x = ", "max_tokens": 4}, timeout=600)
        out["kill_9_then_restart"] = {
            "status": r.status_code,
            "ms_to_first_answer": round((time.perf_counter() - started) * 1000),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=120.0, help="Length of the concurrent load phase.")
    parser.add_argument("--fuzz-cases", type=int, default=1000)
    parser.add_argument("--parts", default="load,fuzz,faults", help="Comma-separated: load, fuzz, faults.")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    OUT.mkdir(exist_ok=True)
    shop = build_sqlite("shop", OUT / "hardening-shop.db")
    env = {"CODESPARK_DATABASES": json.dumps([{"name": "shop", "url": f"sqlite:///{shop.resolve()}"}])}
    parts = args.parts.split(",")
    report: dict[str, Any] = {"cpu": cpu_name(), "command": " ".join(sys.argv)}
    runs: dict[str, Callable[[], dict[str, Any]]] = {
        "load": lambda: load(args.clients, args.seconds, env),
        "fuzz": lambda: fuzz(args.fuzz_cases, env),
        "faults": lambda: faults(env),
    }
    for part, run in runs.items():
        if part in parts:
            report[part] = run()
            (OUT / f"hardening-{part}.json").write_text(json.dumps(report[part], indent=2) + "\n")  # as it goes
    print_report(report, args.json)


if __name__ == "__main__":
    main()
