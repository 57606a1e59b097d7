"""FIM quality: HumanEval single-line infilling through ``/infill``, executed for real.

Takes ``--tasks`` evenly spaced tasks from the shared set, asks each engine for
the missing line (greedy), and runs ``prompt + middle + suffix + test`` in a
subprocess.  Reports the pass rate and the median TTFT per engine.

    python benchmarks/fim_quality.py --tasks 100 --engines spark codex
    python benchmarks/fim_quality.py --tasks 100 --env CODESPARK_MGD=off   # without monitor-guided decoding
    python benchmarks/fim_quality.py --tasks 100 --upstream infill qwen   # FIM through a llama-server upstream

``--upstream KIND...``: codespark with a llama-server (the 1.5B, built by ``benchmarks/peers.py``) as its
``codex_upstream`` with ``fim = KIND``; keystrokes name no model and a generous budget, so the router
sends them upstream; each answer's ``X-Codespark-Engine`` is counted.
"""

from __future__ import annotations

import argparse
import gzip
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.harness import codespark_server

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "humaneval-infilling"


def load_tasks(path: Path, n: int) -> list[dict[str, Any]]:
    """``n`` tasks evenly spaced over the file (all of them if n >= the total)."""
    with gzip.open(path, "rt") as fh:
        rows = [json.loads(line) for line in fh]
    if n >= len(rows):
        return rows
    return [rows[i * len(rows) // n] for i in range(n)]


def passes(task: dict[str, Any], middle: str, timeout_s: float = 15) -> bool:
    program = task["prompt"] + middle + task["suffix"] + "\n" + task["test"] + f"\ncheck({task['entry_point']})\n"
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as fh:
        fh.write(program)
    try:
        proc = subprocess.run([sys.executable, fh.name], capture_output=True, timeout=timeout_s, check=False)
        return proc.returncode == 0
    except subprocess.TimeoutExpired:
        return False
    finally:
        Path(fh.name).unlink(missing_ok=True)


def evaluate(
    base: str, engine: str, tasks: list[dict[str, Any]], n_predict: int, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    results = []
    with httpx.Client(timeout=600) as http:
        for i, task in enumerate(tasks):
            model = {} if extra is not None else {"model": engine}
            r = http.post(
                base + "/infill",
                json={
                    **model,
                    "input_prefix": task["prompt"],
                    "input_suffix": task["suffix"],
                    "n_predict": n_predict,
                    "temperature": 0,
                    **(extra or {}),
                },
            )
            r.raise_for_status()
            body = r.json()
            ok = passes(task, body["content"])
            results.append(
                {
                    "task_id": task["task_id"],
                    "pass": ok,
                    "route": r.headers.get("X-Codespark-Engine", engine),
                    "middle": body["content"],
                    # llama-server reports prompt_ms where codespark reports ttft_ms.
                    "ttft_ms": body["timings"].get("ttft_ms", body["timings"].get("prompt_ms", 0.0)),
                    "prompt_n": body["timings"].get("prompt_n", 0),
                }
            )
            done = sum(x["pass"] for x in results)
            print(f"\r{engine}: {i + 1}/{len(tasks)} pass {done}", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    return {
        "engine": engine,
        "tasks": len(results),
        "routes": {route: sum(x["route"] == route for x in results) for route in {x["route"] for x in results}},
        "pass_rate": sum(x["pass"] for x in results) / len(results),
        "median_ttft_ms": statistics.median(x["ttft_ms"] for x in results),
        "results": results,
    }


def with_editor_stops(task: dict[str, Any], middle: str) -> str:
    """``middle`` cut by codespark's FIM stop rules, applied on the client (for servers without them)."""
    from codespark.engine.fim import FimStops
    from codespark.engine.text import TextAssembler

    text = TextAssembler(policy=FimStops(task["prompt"], task["suffix"]))
    return text.push(middle.encode()) + text.finish()


def rescore(report: dict[str, Any], tasks: list[dict[str, Any]]) -> float:
    """The pass rate of a report's answers after ``with_editor_stops``."""
    by_id = {t["task_id"]: t for t in tasks}
    return sum(
        passes(by_id[r["task_id"]], with_editor_stops(by_id[r["task_id"]], r["middle"])) for r in report["results"]
    ) / len(report["results"])


def through_upstream(kinds: list[str], tasks: list[dict[str, Any]], n_predict: int, out: Path) -> list[dict[str, Any]]:
    """codespark in front of a llama-server upstream (1.5B), once per ``fim`` kind."""
    from benchmarks.peers import llama_server
    from codespark.config import Settings
    from codespark.models.catalog import find

    spec = find("1.5b")
    assert spec is not None
    reports = []
    with llama_server(Settings().models_dir / spec.filename, [], out / "fim_upstream_peer.log") as peer:
        for kind in kinds:
            upstream = {"name": "gpu", "base_url": peer + "/v1", "model": "qwen", "fim": kind, "timeout_s": 600}
            env = {"CODESPARK_UPSTREAMS": json.dumps([upstream]), "CODESPARK_CODEX_UPSTREAM": "gpu"}
            with codespark_server(out / f"fim_upstream_{kind}.log", env) as base:
                report = evaluate(base, f"upstream-{kind}", tasks, n_predict, extra={"max_latency_ms": 600_000})
            reports.append(report)
    return reports


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=100, help="evenly spaced tasks to run (default 100)")
    parser.add_argument("--engines", nargs="+", default=["spark", "codex"], help="engines to score")
    parser.add_argument("--n-predict", type=int, default=64, help="most tokens per answer")
    parser.add_argument("--data", type=Path, default=DATA / "HumanEval-SingleLineInfilling.jsonl.gz")
    parser.add_argument("--url", help="use a running server instead of starting one")
    parser.add_argument(
        "--peer",
        choices=["0.5b", "1.5b"],
        help="score llama.cpp's llama-server (PSM, built by benchmarks/peers.py) on this model; "
        "also reports its answers re-scored with codespark's stop rules applied client-side",
    )
    parser.add_argument("--upstream", nargs="+", choices=["infill", "suffix", "qwen"],
                        help="codespark with a llama-server codex upstream doing FIM this way")  # fmt: skip
    parser.add_argument("--env", nargs="*", default=[], help="KEY=VALUE settings for the codespark server")
    parser.add_argument("--out", type=Path, default=Path("bench-out/fim_quality.json"))
    args = parser.parse_args()
    tasks = load_tasks(args.data, args.tasks)
    started = time.time()
    if args.url:
        reports = [evaluate(args.url, e, tasks, args.n_predict) for e in args.engines]
    elif args.upstream:
        reports = through_upstream(args.upstream, tasks, args.n_predict, args.out.parent)
    elif args.peer:
        from benchmarks.peers import llama_server
        from codespark.config import Settings
        from codespark.models.catalog import find

        spec = find(args.peer)
        assert spec is not None
        with llama_server(
            Settings().models_dir / spec.filename, ["--cache-reuse", "16"], args.out.parent / "fim_quality_peer.log"
        ) as base:
            reports = [evaluate(base, f"llama-server-{args.peer}", tasks, args.n_predict)]
        reports[0]["pass_rate_with_editor_stops"] = rescore(reports[0], tasks)
        print(
            f"llama-server {args.peer} with codespark's stop rules client-side: "
            f"{reports[0]['pass_rate_with_editor_stops']:.2f}"
        )
    else:
        env = dict(kv.split("=", 1) for kv in args.env)
        with codespark_server(args.out.parent / "fim_quality_server.log", env) as base:
            reports = [evaluate(base, e, tasks, args.n_predict) for e in args.engines]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"data": args.data.name, "reports": reports}, indent=1) + "\n")
    for rep in reports:
        print(
            f"{rep['engine']}: pass rate {rep['pass_rate']:.2f} over {rep['tasks']} tasks, "
            f"median TTFT {rep['median_ttft_ms']:.0f} ms"
        )
    print(f"({time.time() - started:.0f} s; details in {args.out})")


if __name__ == "__main__":
    main()
